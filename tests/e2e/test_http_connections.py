"""http input: keep-alive, pipelining, many connections, connection limits, start-up and shutdown."""
import json
import os
import re
import selectors
import signal
import socket
import struct
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, read_ndjson, run_cli, wait_for
from hbhttp import listening, notification, pipeline, post, raw_post, read_responses, seqs, stop_and_read


def test_http_pipelined_requests_are_answered_in_order(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    reqs = [raw_post(notification(1)), raw_post(b'{"seq": 100, bad}'), raw_post(notification(2), path="/nope"),
            raw_post([notification(3), notification(4)]), raw_post(notification(5))]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(reqs))      # all at once: each request pipelined behind the previous
        got = read_responses(s, len(reqs))
    assert [st for st, _, _ in got] == [200, 400, 404, 200, 200]
    assert [json.loads(b) for _, _, b in got][3] == {"accepted": 2}
    assert all("connection" not in hd for _, hd, _ in got)   # kept alive throughout
    assert seqs(stop_and_read(h)) == [1, 3, 4, 5]


def batches_written(api_port):
    """How many batches the file output "out" has written (its batch latency histogram's count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == "hbf_batch_latency_seconds_count" and smp.labels.get("stage") == "out":
                return smp.value
    return None


def order(events):
    return [e["seq"] for e in events]


def test_http_pipelined_requests_join_one_round_and_one_batch(hbf):
    # 20 requests written at once are read together: they join the same event-loop round, so
    # their events travel in one batch (not one batch per request) and are answered together.
    port, api = free_port(), free_port()
    h = hbf(pipeline(port, service=f'api_address = "127.0.0.1:{api}"'))
    listening(port)
    n = 20
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(raw_post(notification(i)) for i in range(n)))
        got = read_responses(s, n)
        assert [st for st, _, _ in got] == [200] * n
        assert all(json.loads(b) == {"accepted": 1} for _, _, b in got)
        wait_for(lambda: (batches_written(api) or 0) >= 1, what="the output's first batch")
        written = batches_written(api)
        assert written <= 3, f"{written} batches for {n} pipelined requests read together"
        s.sendall(raw_post(notification(n)))           # the connection reads on after the round
        assert read_responses(s, 1)[0][0] == 200
    assert order(stop_and_read(h)) == list(range(n + 1))


def test_http_replies_a_client_reads_late_are_all_written_in_order(hbf):
    # Replies go to the socket at once when its send buffer takes them. A client that pipelines
    # more replies than that buffer holds (up to 4 MB here) before it reads leaves the rest to be
    # written as the buffer drains, in order, with nothing lost.
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    n = 60000                                                        # ~88-byte replies: 5 MB
    payload = b"".join(raw_post(b'{"seq":%d}' % i) for i in range(n))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        # Read nothing until every request is answered (its event written): the replies back up.
        wait_for(lambda: len(read_ndjson(h.tmp / "out.ndjson")) == n, 60, what="every request to be written")
        got = read_responses(s, n, timeout=20)
        sender.join(10)
    assert len(got) == n
    assert all(st == 200 and b == b'{"accepted":1}' for st, _, b in got)
    assert order(stop_and_read(h)) == list(range(n))


def test_http_replies_ready_early_wait_behind_the_pipelined_requests_ahead(hbf):
    # Refusals and bad bodies behind requests waiting for their flush are answered after them, in
    # order; nothing is read past a request that closes the connection.
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    reqs = [raw_post(notification(1)), raw_post(notification(2)), raw_post(notification(3), path="/nope"),
            raw_post(notification(4)), raw_post(b'{"seq": 100, bad}'), raw_post([notification(5), notification(6)]),
            raw_post(b"[]"), raw_post(notification(7)), raw_post(notification(8), close=True), raw_post(notification(9))]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(reqs))
        got = read_responses(s, len(reqs), timeout=5)
        assert [st for st, _, _ in got] == [200, 200, 404, 200, 400, 200, 200, 200, 200]
        assert [json.loads(b).get("accepted") for _, _, b in got] == [1, 1, None, 1, None, 2, 0, 1, 1]
        assert all("connection" not in hd for _, hd, _ in got[:-1])
        assert got[-1][1]["connection"] == "close"
        s.settimeout(5)
        assert s.recv(100) == b""                        # request 9 was never read
    assert order(stop_and_read(h)) == [1, 2, 4, 5, 6, 7, 8]


def test_http_pipelined_request_expecting_100_continue_is_answered_in_order(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw_post(notification(1)) + raw_post(notification(2), extra_headers="Expect: 100-continue\r\n"))
        s.settimeout(5)
        buf = b""
        while buf.count(b"HTTP/1.1 ") < 3:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        assert re.findall(rb"HTTP/1\.1 (\d+) ", buf) == [b"200", b"100", b"200"]
    assert order(stop_and_read(h)) == [1, 2]


def test_http_client_close_is_honoured(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw_post(notification(1), close=True) + raw_post(notification(2)))
        got = read_responses(s, 2, timeout=3)
        assert [st for st, _, _ in got] == [200]
        assert got[0][1]["connection"] == "close"
        assert s.recv(100) == b""
    assert seqs(stop_and_read(h)) == [1]


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_http_bytes_or_a_reset_while_a_request_waits_do_not_spin(hbf):
    """A plain connection is read on readiness from a level-triggered epoll set: a connection whose
    request waits for its round (here for ever: every write to /dev/full fails) stops asking for
    reads when more bytes come, and closes on a reset, instead of being reported on every pass."""
    port = free_port()
    h = hbf(pipeline(port, 'ack = "delivered"\nack_timeout = "30s"', service='shutdown_timeout = "1s"', out_path="/dev/full"))
    listening(port)
    pipelined = socket.create_connection(("127.0.0.1", port))
    reset = socket.create_connection(("127.0.0.1", port))
    pipelined.sendall(raw_post(notification(1)))
    reset.sendall(raw_post(notification(2)))
    h.wait_log("No space left on device; retrying until it succeeds")
    time.sleep(0.2)
    pipelined.sendall(raw_post(notification(3)))  # arrives while request 1 waits
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()                                   # an RST while request 2 waits
    time.sleep(0.3)
    before = _cpu_seconds(h.proc.pid)
    time.sleep(1.5)
    used = _cpu_seconds(h.proc.pid) - before
    assert used < 0.5, f"hbforward used {used:.2f} s of CPU in 1.5 s with two connections waiting"
    h.signal()
    got = read_responses(pipelined, 1, timeout=10)  # request 1 hears the output's failure, then the connection ends
    assert [st for st, _, _ in got] == [503]
    pipelined.close()
    assert h.wait() == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_http_1000_concurrent_keepalive_connections(hbf, threads):
    port = free_port()
    h = hbf(pipeline(port, f"threads = {threads}"))
    listening(port)
    n, rounds = 1000, 3
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port)))
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    statuses = []
    seq = 0
    deadline = time.time() + 60
    sent = {}
    for r in range(rounds):
        for s in socks:
            sent[s] = seq
            s.sendall(raw_post(notification(seq)))
            seq += 1
        pending = set(socks)
        while pending and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                chunk = s.recv(65536)
                assert chunk, "a connection was closed"
                bufs[s] += chunk
                if b"\r\n\r\n" in bufs[s]:
                    head, rest = bufs[s].split(b"\r\n\r\n", 1)
                    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
                    if len(rest) >= length:
                        statuses.append(int(head.split()[1]))
                        bufs[s] = rest[length:]
                        pending.discard(s)
        assert not pending, f"{len(pending)} connections got no reply in round {r}"
    metrics_ok = h.proc.poll() is None
    for s in socks:
        s.close()
    assert metrics_ok
    assert statuses == [200] * (n * rounds)
    assert seqs(stop_and_read(h)) == list(range(n * rounds))


def test_http_max_connections_refuses_extra_connections_with_503(hbf):
    port = free_port()
    h = hbf(pipeline(port, "max_connections = 3"))
    listening(port)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw_post(notification(100)))
        got = read_responses(s, 1)
        assert got and got[0][0] == 503 and "retry-after" in got[0][1]
    held[0].sendall(raw_post(notification(1)))
    assert read_responses(held[0], 1)[0][0] == 200
    for s in held:
        s.close()
    time.sleep(0.3)
    assert post(port, notification(2))[0] == 200     # slots free again
    assert seqs(stop_and_read(h)) == [1, 2]


def test_http_idle_keepalive_connection_is_closed(hbf):
    port = free_port()
    h = hbf(pipeline(port, 'idle_timeout = "1s"'))
    listening(port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw_post(notification(1)))
        assert read_responses(s, 1)[0][0] == 200
        s.settimeout(5)
        t0 = time.time()
        assert s.recv(100) == b""
        assert 0.5 < time.time() - t0 < 3
    assert seqs(stop_and_read(h)) == [1]


def test_http_graceful_shutdown_finishes_the_request_in_flight(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    idle = socket.create_connection(("127.0.0.1", port))
    req = raw_post(notification(1))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req[:-10])                 # a request half sent
        time.sleep(0.3)
        h.signal(signal.SIGTERM)
        time.sleep(0.3)
        # Stopped accepting: new connections are refused.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        # The idle keep-alive connection was closed.
        idle.settimeout(2)
        assert idle.recv(100) == b""
        s.sendall(req[-10:])                 # the request in flight completes
        got = read_responses(s, 1)
        assert got[0][0] == 200 and got[0][1]["connection"] == "close"
    assert h.wait() == 0
    assert seqs(stop_and_read(h)) == [1]


def test_http_bind_failure_exits_1_naming_the_address(hbf):
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        h = hbf(pipeline(port))
        assert h.wait() == 1
        assert f"127.0.0.1:{port}" in h.log() and "Address already in use" in h.log()


def test_http_default_config_is_the_webhook_pipeline():
    r = run_cli("validate", "-c", "conf/hbforward.toml", cwd=str(__import__("conftest").ROOT))
    assert r.returncode == 0, r.stderr
    text = (__import__("conftest").ROOT / "conf" / "hbforward.toml").read_text()
    assert 'type = "http"' in text and "127.0.0.1:8080" in text
