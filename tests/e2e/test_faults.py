"""Faults: outputs that cannot deliver are reported degraded and retried, nothing acknowledged is
lost, and a batch that could not be finished is never answered as delivered."""
import json
import http.client
import re
import subprocess
import threading
import time

import pytest

from conftest import free_port, run_cli, wait_for
from hbhttp import listening
from kafka_helpers import broker  # noqa: F401 (fixture)
from test_ops import get, post as api_post, samples, stage_value


def event(seq):
    return {"seq": seq, "device-id": f"r{seq % 7}", "pad": "x" * 400}


def post_events(port, seqs, timeout=60):
    """POST the events as one JSON array; returns the status (or None when the connection failed)."""
    body = json.dumps([event(s) for s in seqs])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/hb", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return None
    finally:
        c.close()


def webhook_to_file(port, api, path, service="", http_opts=""):
    return f"""
[service]
api_address = "127.0.0.1:{api}"
{service}
[inputs.hb]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/hb"]
ack = "delivered"
{http_opts}
[outputs.out]
type = "file"
inputs = ["hb"]
path = "{path}"
"""


def health(api):
    code, body = get(api, "/health")
    return code, json.loads(body)


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs, when this machine lets us mount one."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def webhook_to_nearly_full_tmpfs(hbf, tmpfs):
    """hbforward writing the webhook's events to `tmpfs` with ~24 KiB left (~50 events):
    (its handle, webhook port, API port, the output file, the filler whose removal frees space)."""
    port, api = free_port(), free_port()
    out = tmpfs / "out.ndjson"
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (256 * 1024 - 24 * 1024))
    h = hbf(webhook_to_file(port, api, out))
    listening(port)
    return h, port, api, out, filler


def test_file_output_on_a_full_filesystem_retries_until_space_returns(hbf, tmpfs):
    h, port, api, out, filler = webhook_to_nearly_full_tmpfs(hbf, tmpfs)
    acked, failed = [], []
    stop = threading.Event()

    def send():
        seq = 0
        while not stop.is_set():
            seqs = list(range(seq, seq + 5))
            st = post_events(port, seqs)
            (acked if st == 200 else failed).extend(seqs)
            seq += 5

    t = threading.Thread(target=send)
    t.start()
    try:
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(api)), timeout=20, what="/health 503")
        assert body["status"] == "degraded", body
        assert body["stages"][0]["stage"] == "out"
        assert f"write to {out} failed: No space left on device (retrying for" in body["stages"][0]["reason"]
        m = samples(get(api, "/metrics")[1])
        assert stage_value(m, "hbf_stage_up", "out") == 0
        stuck = len(acked)
        time.sleep(1.5)
        assert len(acked) == stuck, "a request was answered 200 while the disk was full"
        filler.unlink()  # space returns: the output recovers by itself
        wait_for(lambda: len(acked) > stuck + 50, timeout=20, what="deliveries after space returned")
        assert health(api)[0] == 200
        assert stage_value(samples(get(api, "/metrics")[1]), "hbf_stage_up", "out") == 1
    finally:
        stop.set()
        t.join(70)
    assert h.stop() == 0, h.log()
    assert not failed, f"requests not answered 200: {failed[:10]}"
    lines = out.read_text().splitlines()
    got = [json.loads(l)["seq"] for l in lines]  # every line whole JSON: no partial write left
    assert sorted(got) == sorted(acked), "lost or duplicated events"
    assert "No space left on device; retrying until it succeeds" in h.log()
    assert "writing to" in h.log() and "again after" in h.log()


def test_file_output_on_a_full_filesystem_with_many_batches_a_pop_writes_each_event_once(hbf, tmpfs):
    """Four senders at once, so a pop holds several batches written together: a failed writev of
    them is cut back and retried whole once space returns; nothing twice, nothing partial."""
    h, port, api, out, filler = webhook_to_nearly_full_tmpfs(hbf, tmpfs)
    lock = threading.Lock()
    acked, failed = [], []
    stop = threading.Event()

    def send(k):
        seq = k * 1_000_000
        while not stop.is_set():
            seqs = list(range(seq, seq + 3))
            st = post_events(port, seqs)
            with lock:
                (acked if st == 200 else failed).extend(seqs)
            seq += 3

    senders = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in senders:
        t.start()
    try:
        wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(api)), timeout=20, what="/health 503")
        with lock:
            stuck = len(acked)
        time.sleep(1.5)
        with lock:
            assert len(acked) == stuck, "a request was answered 200 while the disk was full"
        filler.unlink()
        wait_for(lambda: len(acked) > stuck + 200, timeout=20, what="deliveries after space returned")
    finally:
        stop.set()
        for t in senders:
            t.join(70)
    assert h.stop() == 0, h.log()
    assert not failed, f"requests not answered 200: {failed[:10]}"
    got = [json.loads(l)["seq"] for l in out.read_text().splitlines()]  # every line whole JSON
    assert sorted(got) == sorted(acked), "lost or duplicated events"
    for k in range(4):  # each sender's events in the order it sent them
        mine = [s for s in got if s // 1_000_000 == k]
        assert mine == sorted(mine)


def test_a_stuck_output_at_the_shutdown_timeout_answers_503_not_200(hbf):
    port, api = free_port(), free_port()
    h = hbf(webhook_to_file(port, api, "/dev/full", service='shutdown_timeout = "1s"', http_opts='ack_timeout = "30s"'))
    listening(port)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("status", post_events(port, [1, 2])))
    t.start()
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(api)), what="/health 503")
    assert body == {"status": "degraded", "stages": [{"stage": "out", "reason": body["stages"][0]["reason"]}]}
    assert body["stages"][0]["reason"].startswith("write to /dev/full failed: No space left on device (retrying for ")
    h.signal()
    t.join(30)
    assert result["status"] == 503
    assert h.wait(30) == 1
    assert "write to /dev/full failed: No space left on device; gave up at the shutdown timeout" in h.log()


KAFKA_DOWN = """
[service]
api_address = "127.0.0.1:{api}"
[inputs.in]
type = "stdin"
[outputs.kafka]
type = "kafka"
inputs = ["in"]
brokers = "{brokers}"
topic = "t"
stats_interval = "200ms"
"""


def test_unreachable_kafka_brokers_make_health_degraded_within_seconds(hbf):
    api = free_port()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    h = hbf(KAFKA_DOWN.format(api=api, brokers=dead), stdin=subprocess.PIPE)
    h.wait_log("running")
    m = samples(get(api, "/metrics")[1])
    assert stage_value(m, "hbf_kafka_broker_up", "kafka", broker=dead) == 0  # from the first attempt
    t0 = time.time()
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(api)), timeout=10, what="/health 503")
    assert time.time() - t0 < 5
    assert body["status"] == "degraded"
    [st] = body["stages"]
    assert st["stage"] == "kafka"
    assert st["reason"].startswith(f"{dead}: Connection refused (all brokers down for "), st
    assert stage_value(samples(get(api, "/metrics")[1]), "hbf_stage_up", "kafka") == 0
    pipeline = json.loads(get(api, "/pipeline")[1])
    assert [s["status"] for s in pipeline["stages"] if s["name"] == "kafka"] == ["degraded"]
    down_for = lambda: int(re.search(r"all brokers down for (\d+)s", health(api)[1]["stages"][0]["reason"]).group(1))
    before = down_for()
    time.sleep(2.2)
    assert down_for() >= before + 2  # the reason says for how long
    h.proc.stdin.close()
    assert h.wait(30) == 0, h.log()  # nothing was sent: nothing undelivered


def test_kafka_health_turns_back_to_ok_when_the_broker_returns(hbf, broker):
    api = free_port()
    broker.control("down 1")
    h = hbf(KAFKA_DOWN.format(api=api, brokers=broker.bootstrap), stdin=subprocess.PIPE)
    h.wait_log("running")
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(api)), timeout=10, what="/health 503")
    assert body["status"] == "degraded" and "Connection refused" in body["stages"][0]["reason"], body
    h.proc.stdin.write(b'{"seq":1}\n')  # waits in librdkafka meanwhile
    h.proc.stdin.flush()
    broker.control("up 1")
    wait_for(lambda: health(api)[0] == 200, timeout=15, what="/health back to 200")
    m = samples(get(api, "/metrics")[1])
    assert stage_value(m, "hbf_stage_up", "kafka") == 1
    assert stage_value(m, "hbf_kafka_delivered_total", "kafka") == 1
    # up from the next statistics report (stats_interval)
    wait_for(lambda: stage_value(samples(get(api, "/metrics")[1]), "hbf_kafka_broker_up", "kafka", broker=broker.bootstrap) == 1,
             timeout=5, what="hbf_kafka_broker_up 1")
    h.proc.stdin.close()
    assert h.wait(30) == 0, h.log()


def test_top_against_an_address_where_nothing_listens_says_so_in_one_line():
    port = free_port()
    r = run_cli("top", "-a", f"127.0.0.1:{port}", "-n", "1", timeout=10)
    assert r.returncode == 1
    assert r.stdout == ""  # the screen was never taken over
    assert r.stderr == (f"hbforward top: nothing listens on 127.0.0.1:{port} (connection refused); is hbforward running "
                        f"there with [service] api_address = \"127.0.0.1:{port}\"?\n")
