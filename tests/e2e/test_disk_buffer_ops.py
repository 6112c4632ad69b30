"""Disk buffers in operation, with the real binary: `hbforward top` shows each buffer, a second
process on the same data_dir fails at start naming the lock and the first process, and a record
the output fails for good (an HTTP 400) leaves the buffer, counted, while one it can retry (503)
stays until delivered."""
import json
import time

import pytest

from collector import Collector
from conftest import free_port, run_cli, wait_for
from hbhttp import listening, post
from kafka_helpers import broker  # noqa: F401 (fixture)
from test_disk_buffer import config, metric


@pytest.fixture
def collector():
    made = []

    def make(respond=None):
        c = Collector(respond)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def http_out(url):
    return (f'type = "http"\nurl = "{url}"\nretry_backoff = "20ms"\nretry_backoff_max = "200ms"\n'
            'batch = { max_events = 100, max_wait = "20ms" }')


def test_top_shows_each_disk_buffer_with_events_bytes_and_oldest_age(hbf, broker, tmp_path):
    port, api = free_port(), free_port()
    broker.control("down 1")  # nothing leaves: the events stay in the buffer
    kafka = f'type = "kafka"\nbrokers = "{broker.bootstrap}"\ntopic = "top"\nflush_timeout = "1s"'
    h = hbf(config(port, tmp_path / "data", kafka, '{ type = "disk", max_size = "8MiB" }', api))
    listening(port)
    assert post(port, [{"seq": i} for i in range(25)])[0] == 200
    wait_for(lambda: metric(api, "hbf_buffer_events") == 25, what="25 events in the buffer")
    time.sleep(1.2)  # an oldest age of at least a second
    r = run_cli("top", "-a", f"127.0.0.1:{api}", "-n", "1", timeout=10)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if "disk buffer:" in l]
    assert len(lines) == 1, r.stdout
    line = lines[0]
    assert " 25 events, " in line and " / 8.0 MiB, oldest " in line, line
    age = line.split("oldest ")[1].split("s")[0]
    assert 1 <= int(age) < 60, line
    out_row = [l for l in r.stdout.splitlines() if l.startswith("out ")]
    assert out_row and "[" in out_row[0] and "%" in out_row[0], r.stdout  # the buffer's fill as the queue bar
    assert h.stop() == 0, h.log()


def test_a_second_process_on_the_same_data_dir_fails_at_start_naming_the_lock_and_the_first(hbf, tmp_path):
    data = tmp_path / "data"
    out = f'type = "file"\npath = "{tmp_path / "out.ndjson"}"'
    first = hbf(config(free_port(), data, out, '{ type = "disk", max_size = "8MiB" }'), name="first")
    wait_for(lambda: (data / "lock").exists() and (data / "lock").read_text().strip() == str(first.proc.pid),
             what="the first process's pid in the data_dir lock")
    # A different output name: its own buffer directory is free, the data_dir is not.
    second_cfg = config(free_port(), data, out.replace("out.ndjson", "other.ndjson"), '{ type = "disk", max_size = "8MiB" }')
    second = hbf(second_cfg.replace("[outputs.out]", "[outputs.other]"), name="second")
    assert second.wait(20) == 1
    assert (f"data_dir {data} is in use by another hbforward process (pid {first.proc.pid}): {data / 'lock'} is locked; "
            "two hbforward processes cannot share a data_dir") in second.log(), second.log()
    assert first.proc.poll() is None
    assert first.stop() == 0, first.log()
    third = hbf(second_cfg, name="third")  # the lock went with the first process
    listening_port = int(second_cfg.split('address = "127.0.0.1:')[1].split('"')[0])
    listening(listening_port)
    assert third.stop() == 0, third.log()


def test_a_record_failed_for_good_leaves_the_buffer_counted_while_a_retryable_one_stays(hbf, collector, tmp_path):
    state = {"down": True}

    def respond(req):
        if any(e.get("poison") for e in req.events()):
            return 400, {}, b'{"error":"field poison is not allowed"}'
        if state["down"]:
            return 503, {}, b"down"
        return 200, {}, b"ok"

    c = collector(respond)
    port, api = free_port(), free_port()
    cfg = config(port, tmp_path / "data", http_out(f"http://127.0.0.1:{c.port}/x"), '{ type = "disk", max_size = "8MiB" }', api)
    h = hbf(cfg)
    listening(port)
    assert post(port, [{"seq": 1, "poison": True}, {"seq": 2, "poison": True}])[0] == 200  # on disk: accepted
    wait_for(lambda: metric(api, "hbf_buffer_failed_events_total") == 2, what="the refused events counted as failed")
    wait_for(lambda: metric(api, "hbf_buffer_events") == 0, what="the refused record removed")
    assert "2 events the output failed for good removed from the buffer: POST " in h.log(), h.log()
    assert 'answered 400: {"error":"field poison is not allowed"}' in h.log()
    poisoned = sum(1 for r in c.requests if any(e.get("poison") for e in r.events()))
    assert post(port, [{"seq": 3}, {"seq": 4}])[0] == 200
    wait_for(lambda: sum(1 for r in c.requests if any(e.get("seq") == 3 for e in r.events())) >= 2,
             what="the 503-answered record sent again")
    assert metric(api, "hbf_buffer_events") == 2  # retryable: still in the buffer
    assert metric(api, "hbf_buffer_failed_events_total") == 2
    state["down"] = False
    wait_for(lambda: sorted(c.seqs()) == [3, 4], timeout=20, what="the retried events delivered")
    wait_for(lambda: metric(api, "hbf_buffer_events") == 0, what="the buffer emptied")
    # The refused record was never sent again.
    assert sum(1 for r in c.requests if any(e.get("poison") for e in r.events())) == poisoned == 1
    assert h.stop() == 0, h.log()
