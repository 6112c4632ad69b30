"""Disk buffers with the real binary: kill -9 loses no event that got a 200, drop_newest counts
exactly, an unusable buffer directory fails at start, and the records on disk carry CRC32Cs that
an independent implementation (python3-crc32c) agrees with."""
import http.client
import json
import os
import random
import re
import signal
import struct
import threading
import time
from pathlib import Path

import crc32c

from conftest import free_port, read_ndjson, wait_for
from hbhttp import listening
from kafka_helpers import broker, consume  # noqa: F401 (fixture)


def config(port, data_dir, output, buffer, api_port=None):
    api = f'api_address = "127.0.0.1:{api_port}"' if api_port else ""
    return f"""
[service]
data_dir = "{data_dir}"
shutdown_timeout = "10s"
{api}

[inputs.hb]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/healthbot"]
ack = "accepted"

[filters.parse]
type = "json"
inputs = ["hb"]

[outputs.out]
inputs = ["parse"]
buffer = {buffer}
{output}
"""


class Load(threading.Thread):
    """Posts NDJSON bodies of `per` events numbered cid*10**7 + n on one keep-alive connection
    until stopped; records the numbers of every event whose request got a 200."""

    def __init__(self, port, cid, per=20):
        super().__init__(daemon=True)
        self.port, self.cid, self.per = port, cid, per
        self.acked, self.statuses = [], {}
        self.stop = threading.Event()

    def run(self):
        n = 0
        conn = None
        while not self.stop.is_set():
            seqs = [self.cid * 10**7 + n + i for i in range(self.per)]
            n += self.per
            body = "".join(json.dumps({"seq": s, "device-id": f"d{self.cid}", "severity": "major"}) + "\n" for s in seqs)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/healthbot", body=body, headers={"Content-Type": "application/x-ndjson"})
                r = conn.getresponse()
                r.read()
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if r.status == 200:
                    self.acked.extend(seqs)
            except (OSError, http.client.HTTPException):
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.01)


def run_load(port, seconds, clients=4, per=20, before_stop=None, first_cid=0, min_acked=0):
    """Sends for `seconds`, and on until `min_acked` events got a 200 (at most 20 s more: a loaded machine is slow)."""
    loads = [Load(port, first_cid + c, per) for c in range(clients)]
    for l in loads:
        l.start()
    time.sleep(seconds)
    until = time.monotonic() + 20
    while sum(len(l.acked) for l in loads) < min_acked and time.monotonic() < until:
        time.sleep(0.05)
    if before_stop:
        before_stop()
    for l in loads:
        l.stop.set()
    for l in loads:
        l.join(10)
    return loads


def metric(port, name, stage="out"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + "{") and f'stage="{stage}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_kill_9_under_load_loses_no_event_that_got_a_200_file_output(hbf, tmp_path):
    port = free_port()
    out = tmp_path / "out.ndjson"
    cfg = config(port, tmp_path / "data", f'type = "file"\npath = "{out}"',
                 '{ type = "disk", max_size = "64MiB", sync = "batch" }')
    h = hbf(cfg, name="first")
    listening(port)
    loads = run_load(port, random.uniform(0.5, 2.0), before_stop=lambda: h.proc.send_signal(signal.SIGKILL), min_acked=1001)
    h.wait(10)
    acked = {s for l in loads for s in l.acked}
    assert len(acked) > 1000, [l.statuses for l in loads]

    h2 = hbf(cfg, name="second")
    listening(port)
    wait_for(lambda: acked <= {e["seq"] for e in read_ndjson(out)}, timeout=30,
             what="every event that got a 200 in the output after the restart")
    assert h2.stop() == 0, h2.log()


def test_kill_9_during_a_broker_outage_loses_no_event_that_got_a_200_kafka_output(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "buffered"\nkey = "{{device-id}}"'
    cfg = config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "256MiB", sync = "batch" }', api)
    h = hbf(cfg, name="first")
    listening(port)
    before = run_load(port, 0.5)  # delivered while the broker is up
    broker.control("down 1")
    during = run_load(port, random.uniform(1.0, 2.0), before_stop=lambda: h.proc.send_signal(signal.SIGKILL), min_acked=501)
    h.wait(10)
    acked = {s for l in before + during for s in l.acked}
    acked_during = {s for l in during for s in l.acked}
    assert len(acked_during) > 500, [l.statuses for l in during]  # the outage did not stop the 200s
    broker.control("up 1")

    h2 = hbf(cfg, name="second")
    listening(port)

    def on_topic():
        return {json.loads(l)["seq"] for l in consume(broker.bootstrap, "buffered").decode().splitlines()}
    wait_for(lambda: acked <= on_topic(), timeout=60, interval=0.5, what="every event that got a 200 on the topic")
    assert metric(api, "hbf_buffer_replayed_events_total") is not None
    assert h2.stop() == 0, h2.log()


def test_drop_newest_counts_exactly_what_it_dropped(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    broker.control("down 1")  # nothing leaves: the buffer fills
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "dropping"'
    cfg = config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "1MiB", when_full = "drop_newest", sync = "none" }', api)
    h = hbf(cfg)
    listening(port)
    loads = run_load(port, 2.0, clients=2, per=50)
    sent = {s for l in loads for s in l.acked}
    assert all(set(l.statuses) == {200} for l in loads), [l.statuses for l in loads]  # dropping still answers 200
    dropped = metric(api, "hbf_buffer_dropped_events_total")
    assert dropped > 0
    broker.control("up 1")

    def on_topic():
        return {json.loads(l)["seq"] for l in consume(broker.bootstrap, "dropping").decode().splitlines()}
    wait_for(lambda: len(on_topic()) + dropped == len(sent), timeout=60, interval=0.5,
             what=f"{len(sent)} sent = delivered + {dropped} dropped")
    assert on_topic() <= sent
    assert "dropping new events (when_full = drop_newest)" in h.log()
    assert h.stop() == 0, h.log()


def test_a_buffer_directory_that_cannot_be_used_fails_at_start_with_its_path(hbf, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data_dir should be\n")
    port = free_port()
    h = hbf(config(port, blocker, f'type = "file"\npath = "{tmp_path / "out.ndjson"}"',
                   '{ type = "disk", max_size = "8MiB" }'))
    assert h.wait(20) == 1
    assert f"disk buffer {blocker}/buffer/out: cannot create the directory" in h.log(), h.log()
    if os.geteuid() != 0:  # root writes through permissions
        d = tmp_path / "ro"
        (d / "buffer" / "out").mkdir(parents=True)
        (d / "buffer" / "out").chmod(0o500)
        h = hbf(config(port, d, f'type = "file"\npath = "{tmp_path / "out.ndjson"}"', '{ type = "disk", max_size = "8MiB" }'),
                name="ro")
        assert h.wait(20) == 1
        assert f"disk buffer {d}/buffer/out" in h.log(), h.log()


def test_records_on_disk_carry_crc32c_that_python_agrees_with(hbf, tmp_path):
    """Writes with the output stopped at once, then reads the segment files as the format says."""
    port = free_port()
    data = tmp_path / "data"
    cfg = config(port, data, f'type = "file"\npath = "{tmp_path / "out.ndjson"}"', '{ type = "disk", max_size = "8MiB" }')
    h = hbf(cfg)
    listening(port)
    loads = run_load(port, 0.5, clients=1, per=5)
    h.proc.send_signal(signal.SIGKILL)
    h.wait(10)
    acked = {s for l in loads for s in l.acked}
    seen, records = set(), 0
    for seg in sorted((data / "buffer" / "out").glob("*.seg")):
        b = seg.read_bytes()
        off = 0
        while off + 32 <= len(b):
            magic, crc, length, events, seq, _ = struct.unpack_from("<IIIIQq", b, off)
            assert magic == 0x524248FE, f"{seg}:{off}"
            assert off + 32 + length <= len(b)
            assert crc32c.crc32c(b[off + 8:off + 32 + length]) == crc, f"{seg}:{off}: CRC mismatch"
            text = b[off + 32 + 8 * events:off + 32 + length].decode()
            seen |= {json.loads(l)["seq"] for l in text.splitlines()}
            records += 1
            off += 32 + length
        assert off == len(b)
    assert records > 0
    # Segments hold what the output has not settled; everything else reached the file.
    assert acked <= seen | {e["seq"] for e in read_ndjson(tmp_path / "out.ndjson")}


def buffered_during_an_outage(hbf, broker, tmp_path, topic, flush_timeout, shutdown_timeout="10s"):
    """hbforward with a disk-buffered Kafka output whose broker is down, after a second of webhook
    load: returns it, its config, ports and the events that got a 200, once all are in the buffer."""
    port, api = free_port(), free_port()
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "{topic}"\nflush_timeout = "{flush_timeout}"'
    cfg = config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "64MiB" }', api)
    cfg = cfg.replace('shutdown_timeout = "10s"', f'shutdown_timeout = "{shutdown_timeout}"')
    broker.control("down 1")
    h = hbf(cfg, name="first")
    listening(port)
    loads = run_load(port, 1.0, clients=2)
    acked = {s for l in loads for s in l.acked}
    assert acked
    wait_for(lambda: metric(api, "hbf_buffer_events") == len(acked), what="every acknowledged event in the buffer")
    return h, cfg, port, api, acked


def test_sigterm_during_an_outage_keeps_the_buffer_and_the_next_start_delivers_it(hbf, broker, tmp_path):
    h, cfg, port, api, acked = buffered_during_an_outage(hbf, broker, tmp_path, "kept", "1s")
    t0 = time.time()
    assert h.stop() == 0, h.log()  # undelivered but kept: not a failure
    assert time.time() - t0 < 10
    assert f"kept {len(acked)} events for the next start" in h.log(), h.log()

    broker.control("up 1")
    h2 = hbf(cfg, name="second")
    listening(port)

    def on_topic():
        return {json.loads(l)["seq"] for l in consume(broker.bootstrap, "kept").decode().splitlines()}
    wait_for(lambda: acked <= on_topic(), timeout=60, interval=0.5, what="the kept events on the topic")
    wait_for(lambda: metric(api, "hbf_buffer_events") == 0, what="the buffer emptied")
    assert metric(api, "hbf_buffer_replayed_events_total") > 0  # the output had them in hand before
    assert h2.stop() == 0, h2.log()


def test_a_flush_longer_than_the_shutdown_timeout_ends_in_time_and_the_buffer_keeps_the_rest(hbf, broker, tmp_path):
    # flush_timeout (60 s) is longer than shutdown_timeout (2 s): the output's last flush must end
    # before the runtime gives up, so the disk buffer closes, says what it kept, and the exit is 0.
    # The flush used to run a whole shutdown_timeout from when the output's queue emptied, ending
    # with the runtime's deadline: "did not finish within the shutdown timeout", exit 1.
    h, _, _, _, acked = buffered_during_an_outage(hbf, broker, tmp_path, "late", "60s", shutdown_timeout="2s")
    t0 = time.time()
    assert h.stop() == 0, h.log()
    assert time.time() - t0 < 4
    assert f"kept {len(acked)} events for the next start" in h.log(), h.log()
    assert "did not finish within the shutdown timeout" not in h.log(), h.log()


def test_a_full_disk_is_backpressure_and_an_error_on_health_then_recovers(hbf, broker, tmp_path):
    """The buffer on a 2 MiB tmpfs (root only: it mounts one) with the broker down fills the disk:
    503s, /health names ENOSPC and the path; when the broker is back the buffer drains, its
    segments go, writes succeed again and every event that got a 200 is on the topic."""
    import subprocess
    import pytest
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(data)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        port, api = free_port(), free_port()
        broker.control("down 1")
        kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "full"'
        h = hbf(config(port, data, kafka, '{ type = "disk", max_size = "64MiB", sync = "none" }', api))
        listening(port)
        loads = []
        for i in range(10):  # until the disk is full: a loaded machine sends less per second
            round_ = [Load(port, 2 * i + c, per=50) for c in range(2)]  # distinct numbers each round
            for l in round_:
                l.start()
            time.sleep(1.5)
            for l in round_:
                l.stop.set()
            for l in round_:
                l.join(10)
            loads += round_
            if any(l.statuses.get(503) for l in loads):
                break
        statuses = {k: sum(l.statuses.get(k, 0) for l in loads) for k in (200, 503)}
        acked = {s for l in loads for s in l.acked}

        def health():
            c = http.client.HTTPConnection("127.0.0.1", api, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            return r.status, r.read().decode()
        code, body = health()
        assert statuses[503] > 0 and statuses[200] > 0, statuses
        assert code == 503 and "No space left on device" in body and str(data) in body, body
        assert metric(api, "hbf_buffer_write_errors_total") > 0
        broker.control("up 1")

        def on_topic():
            return {json.loads(l)["seq"] for l in consume(broker.bootstrap, "full").decode().splitlines()}
        wait_for(lambda: acked <= on_topic(), timeout=60, interval=0.5, what="every event that got a 200 on the topic")
        wait_for(lambda: health()[0] == 200, timeout=30, what="/health back to 200")
        assert h.stop() == 0, h.log()
    finally:
        subprocess.run(["umount", "-l", str(data)])


def test_a_buffer_left_by_a_renamed_output_is_reported_and_an_emptied_one_is_not(hbf, broker, tmp_path):
    port = free_port()
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "renamed"\nflush_timeout = "1s"'
    buffered = '{ type = "disk", max_size = "8MiB" }'
    broker.control("down 1")
    h = hbf(config(port, tmp_path / "data", kafka, buffered), name="first")
    listening(port)
    assert run_load(port, 0.5, clients=1)[0].acked
    assert h.stop() == 0, h.log()
    assert "events for the next start" in h.log()
    broker.control("up 1")
    renamed = config(port, tmp_path / "data", kafka, buffered).replace("[outputs.out]", "[outputs.kafka]")
    h = hbf(renamed, name="second")
    listening(port)
    assert run_load(port, 0.3, clients=1)[0].acked  # written to its new buffer, delivered, settled
    assert h.stop() == 0
    assert f"disk buffer {tmp_path / 'data' / 'buffer' / 'out'} belongs to no output" in h.log(), h.log()
    # Under its new name the output's own buffer was emptied and closed without segments: set to
    # memory, a third start finds nothing to warn about in it.
    h = hbf(renamed.replace(buffered, '{ type = "memory" }'), name="third")
    listening(port)
    assert h.stop() == 0
    assert "buffer/kafka belongs" not in h.log() and "buffer/out belongs" in h.log(), h.log()


def on_topic(broker, topic):
    return {json.loads(l)["seq"] for l in consume(broker.bootstrap, topic).decode().splitlines()}


def test_a_disk_buffer_set_back_to_memory_between_runs_is_sent_first_and_its_directory_removed(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "back"\nflush_timeout = "1s"'
    broker.control("down 1")
    h = hbf(config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "64MiB" }', api), name="first")
    listening(port)
    first = {s for l in run_load(port, 0.5, clients=2) for s in l.acked}
    assert first
    assert h.stop() == 0, h.log()
    assert f"kept {len(first)} events for the next start" in h.log(), h.log()

    broker.control("up 1")
    h2 = hbf(config(port, tmp_path / "data", kafka, '{ type = "memory" }', api), name="second")
    listening(port)
    # New events flow beside the backlog.
    second = {s for l in run_load(port, 0.3, clients=1, first_cid=7) for s in l.acked}
    wait_for(lambda: first | second <= on_topic(broker, "back"), timeout=60, interval=0.5, what="the backlog and the new events on the topic")
    buf = tmp_path / "data" / "buffer" / "out"
    wait_for(lambda: not buf.exists(), what="the backlog's directory removed")
    assert h2.stop() == 0, h2.log()
    log = h2.log()
    assert f"sending the {len(first)} events left in that directory first" in log, log
    assert "directory removed" in log and "belongs to no output" not in log, log


def test_a_reload_from_disk_to_memory_hands_the_buffer_to_the_new_version(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "todisk"\nflush_timeout = "1s"'
    cfg = config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "64MiB" }', api).replace('"10s"', '"2s"')
    broker.control("down 1")
    h = hbf(cfg, name="hbf")
    listening(port)
    first = {s for l in run_load(port, 0.5, clients=2) for s in l.acked}
    assert first
    wait_for(lambda: metric(api, "hbf_buffer_events") == len(first), what="every acknowledged event in the buffer")
    # Broker still down: the old version cannot drain, gives up after the shutdown timeout and
    # leaves the rest on disk, where the new memory-buffered version finds it.
    h.config.write_text(cfg.replace('{ type = "disk", max_size = "64MiB" }', '{ type = "memory" }'))
    h.signal(signal.SIGHUP)
    h.wait_log("config generation 2")
    h.wait_log("sending the", timeout=20)
    broker.control("up 1")
    second = {s for l in run_load(port, 0.3, clients=1, first_cid=7) for s in l.acked}
    wait_for(lambda: first | second <= on_topic(broker, "todisk"), timeout=60, interval=0.5, what="the buffer's and the new events on the topic")
    wait_for(lambda: not (tmp_path / "data" / "buffer" / "out").exists(), what="the directory removed")
    assert h.stop() == 0, h.log()


def test_a_reload_from_memory_to_disk_hands_the_queued_events_to_the_disk_buffer(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    # A small librdkafka queue: with the broker down, the output blocks and events queue in front of it.
    kafka = (f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "tomem"\nflush_timeout = "1s"\n'
             'librdkafka = { "queue.buffering.max.messages" = "50" }')
    cfg = config(port, tmp_path / "data", kafka, '{ type = "memory" }', api).replace('"10s"', '"2s"')
    cfg = cfg.replace("[service]", "[service]\nqueue_events = 3000")
    broker.control("down 1")
    h = hbf(cfg, name="hbf")
    listening(port)
    first = {s for l in run_load(port, 1.0, clients=2) for s in l.acked}
    assert len(first) > 500
    h.config.write_text(cfg.replace('{ type = "memory" }', '{ type = "disk", max_size = "64MiB" }'))
    h.signal(signal.SIGHUP)
    h.wait_log("config generation 2")
    h.wait_log("queued events to the new version's disk buffer")
    handed = int(h.log().split("reload: handed ")[1].split()[0])
    assert handed > 400, h.log()
    # What was queued is now in the disk buffer, and a restart does not lose it. (The old
    # version's own librdkafka queue, in hand when the reload came, cannot be delivered:
    # memory-buffered events, reported failed, so the exit code may be 1.)
    wait_for(lambda: (metric(api, "hbf_buffer_events") or 0) >= handed, what="the handed events in the disk buffer")
    h.stop()
    broker.control("up 1")
    h2 = hbf(cfg.replace('{ type = "memory" }', '{ type = "disk", max_size = "64MiB" }'), name="second")
    listening(port)
    wait_for(lambda: metric(api, "hbf_buffer_events") == 0, timeout=60, interval=0.5, what="the buffer drained")
    assert len(on_topic(broker, "tomem") & first) >= handed
    assert h2.stop() == 0, h2.log()


def test_a_reload_while_an_unreachable_output_blocks_its_inputs_does_not_wait_for_it(hbf, broker, tmp_path):
    """The generator blocks in its push (the output's queue is full, its broker down): a reload
    that changes the output must not wait for that queue, and the blocked events go to the new
    version."""
    api = free_port()
    cfg = f"""
[service]
api_address = "127.0.0.1:{api}"
shutdown_timeout = "2s"
queue_events = 1000
[inputs.gen]
type = "generate"
rate = 20000
sequence_field = "seq"
[filters.parse]
type = "json"
inputs = ["gen"]
[outputs.out]
type = "kafka"
inputs = ["parse"]
brokers = "{broker.bootstrap}"
topic = "before"
flush_timeout = "1s"
librdkafka = {{ "queue.buffering.max.messages" = "50" }}
"""
    broker.control("down 1")
    h = hbf(cfg, name="hbf")
    h.wait_log("running")
    wait_for(lambda: (metric(api, "hbf_queue_events") or 0) >= 900, what="the output's queue full")
    time.sleep(0.5)  # the generator blocked in its push
    h.config.write_text(cfg.replace('topic = "before"', 'topic = "after"'))
    t0 = time.time()
    h.signal(signal.SIGHUP)
    h.wait_log("config generation 2", timeout=15)
    assert time.time() - t0 < 10
    broker.control("up 1")
    wait_for(lambda: len(consume(broker.bootstrap, "after").splitlines()) > 2000, timeout=60, interval=0.5,
             what="events flowing to the new version's topic")
    assert h.stop() in (0, 1), h.log()  # the old version's librdkafka queue may be reported failed
