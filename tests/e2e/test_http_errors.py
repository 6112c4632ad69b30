"""http input: every refusal status, and that a refused request leaves nothing in the output."""
import gzip
import json
import select
import socket
import threading
import time

from conftest import free_port
from hbhttp import listening, notification, pipeline, post, raw_post, read_responses, seqs, stop_and_read


def test_http_basic_and_bearer_auth(hbf):
    port = free_port()
    h = hbf(pipeline(port, 'auth = { type = "basic", username = "healthbot", password = "${HB_WEBHOOK_PASSWORD}" }'),
            env={"HB_WEBHOOK_PASSWORD": "s3cret"})
    listening(port)
    import base64
    good = "Basic " + base64.b64encode(b"healthbot:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"healthbot:wrong").decode()
    assert post(port, notification(1), {"Authorization": good})[0] == 200
    assert post(port, notification(2), {"Authorization": good.replace("Basic", "basic")})[0] == 200
    for seq, hdrs in [(3, {"Authorization": bad}), (4, {}), (5, {"Authorization": "Bearer s3cret"})]:
        st, headers, reply = post(port, notification(seq), hdrs)
        assert st == 401 and headers["www-authenticate"].startswith("Basic realm=") and "error" in reply
    assert seqs(stop_and_read(h)) == [1, 2]

    port = free_port()
    h = hbf(pipeline(port, 'auth = { type = "bearer", token = "tok-123" }', out_path="bearer.ndjson"), name="bearer")
    listening(port)
    assert post(port, notification(6), {"Authorization": "Bearer tok-123"})[0] == 200
    st, headers, _ = post(port, notification(7), {"Authorization": "Bearer tok-124"})
    assert st == 401 and headers["www-authenticate"].startswith("Bearer")
    assert seqs(stop_and_read(h, "bearer.ndjson")) == [6]


def test_http_invalid_json_is_400_with_the_byte_offset_and_nothing_is_kept(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    cases = [
        ('{"seq": 100, "a": }', 18),                       # missing value
        ('{"seq": 101} trailing', 13),                     # content after the object
        ('"just a string"', 0),                            # not an object
        (json.dumps([notification(102), notification(103)])[:-1] + ', 7]', None),  # a non-object element
        (json.dumps([notification(104)]) + "x", None),     # trailing content after the array
        ('{"seq": 105, "s": "bad \\x escape"}', None),
        ('   ', 0),
    ]
    for body, offset in cases:
        st, _, reply = post(port, body)
        assert st == 400, (body, st, reply)
        assert set(reply) == {"error", "offset"}
        if offset is not None:
            assert reply["offset"] == offset, (body, reply)
    # The element offset points at the bad element of the array.
    body = '[{"seq": 106}, {"seq": 107, "x": tru}]'
    st, _, reply = post(port, body)
    assert st == 400 and body[reply["offset"]:].startswith("tru"), reply
    # NDJSON: the third line is bad; the first two are not kept either.
    nd = json.dumps(notification(108)) + "\n" + json.dumps(notification(109)) + "\n{\"seq\": 110,}\n"
    st, _, reply = post(port, nd, {"Content-Type": "application/x-ndjson"})
    assert st == 400 and nd[reply["offset"]:].startswith("}"), reply
    assert post(port, notification(1))[0] == 200
    assert seqs(stop_and_read(h)) == [1]
    assert "invalid JSON" in h.log()


def test_http_unknown_path_404_other_methods_405_encodings_415(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    st, _, reply = post(port, notification(100), path="/other")
    assert st == 404 and reply["error"]
    st, headers, _ = post(port, None, method="GET")
    assert st == 405 and headers["allow"] == "POST"
    st, headers, _ = post(port, notification(101), method="PUT")
    assert st == 405 and headers["allow"] == "POST"
    st, _, _ = post(port, notification(102), {"Content-Encoding": "br"})
    assert st == 415
    st, _, _ = post(port, b"\x1f\x8b not gzip at all", {"Content-Encoding": "gzip"})
    assert st == 400
    assert post(port, notification(1))[0] == 200
    assert seqs(stop_and_read(h)) == [1]


def test_http_length_required_411_too_large_413_header_431(hbf):
    port = free_port()
    h = hbf(pipeline(port, 'max_body = "2KiB"\nheader_limit = "2KiB"'))
    listening(port)
    # No Content-Length, no chunked encoding.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b'POST /healthbot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{"seq": 100}')
        (st, hdrs, _), = read_responses(s, 1)
        assert st == 411 and hdrs.get("connection") == "close"
    # Declared too large: refused from the header.
    big = json.dumps({"seq": 101, "pad": "x" * 3000})
    assert post(port, big)[0] == 413
    # Chunked, growing past max_body.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /healthbot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            s.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
        (st, _, _), = read_responses(s, 1)
        assert st == 413
    # Small on the wire, too large once decompressed.
    bomb = gzip.compress(json.dumps({"seq": 102, "pad": " " * 100000}).encode())
    assert len(bomb) < 2048
    assert post(port, bomb, {"Content-Encoding": "gzip"})[0] == 413
    # A header over header_limit.
    assert post(port, notification(103), {"X-Big": "y" * 4000})[0] == 431
    # Chunked within the limit is fine.
    with socket.create_connection(("127.0.0.1", port)) as s:
        body = json.dumps(notification(1)).encode()
        s.sendall(b"POST /healthbot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  b"%x\r\n" % 10 + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\n\r\n")
        (st, _, reply), = read_responses(s, 1)
        assert st == 200 and json.loads(reply) == {"accepted": 1}
    assert seqs(stop_and_read(h)) == [1]


def test_http_body_cut_off_midway_is_not_queued(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    req = raw_post(notification(100))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req[:-40])          # the header and most of the body, then the client goes away
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req[:len(req) // 2])
        s.shutdown(socket.SHUT_WR)    # half-close mid-body
        assert s.recv(100) == b""
    assert post(port, notification(1))[0] == 200
    assert seqs(stop_and_read(h)) == [1]


def test_http_slow_header_sender_gets_408_and_does_not_stall_others(hbf):
    port = free_port()
    h = hbf(pipeline(port, 'read_timeout = "2s"'))
    listening(port)
    req = raw_post(notification(100))
    result = {}

    def slowloris():
        with socket.create_connection(("127.0.0.1", port)) as s:
            t0 = time.time()
            try:
                for b in req[:30]:   # one byte a second, until the server answers
                    s.sendall(bytes([b]))
                    if select.select([s], [], [], 1.0)[0]:
                        break
            except OSError:
                pass
            s.settimeout(5)
            try:
                result["reply"] = s.recv(4096)
            except OSError as e:
                result["reply"] = repr(e).encode()
            result["after"] = time.time() - t0

    t = threading.Thread(target=slowloris)
    t.start()
    time.sleep(0.5)
    t0 = time.time()
    for i in range(1, 21):
        assert post(port, notification(i))[0] == 200
    assert time.time() - t0 < 2.0, "other clients were stalled"
    t.join(20)
    assert result["reply"].startswith(b"HTTP/1.1 408"), result
    assert result["after"] < 6, result
    assert seqs(stop_and_read(h)) == list(range(1, 21))


def _fifo_pipeline(tmp, port, http_opts):
    """An output into a FIFO that nobody reads yet: the pipeline fills and stalls."""
    import os
    fifo = tmp / "out.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    cfg = pipeline(port, http_opts, service="queue_events = 20\nshutdown_timeout = \"20s\"", out_path=str(fifo))
    return rfd, cfg


def _drain_fifo(rfd, proc, timeout=20):
    import os
    import select
    data = b""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([rfd], [], [], 0.2)
        if r:
            chunk = os.read(rfd, 1 << 16)
            if not chunk and proc.poll() is not None:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    os.close(rfd)
    return [json.loads(l) for l in data.decode().splitlines() if l.strip()]


def test_http_full_pipeline_answers_503_with_retry_after_and_queues_nothing(hbf, tmp_path):
    port = free_port()
    rfd, cfg = _fifo_pipeline(tmp_path, port, "retry_after = 2")
    h = hbf(cfg)
    listening(port)
    ok, refused, seq = [], [], 0
    deadline = time.time() + 20
    while len(refused) < 3 and time.time() < deadline:
        batch = [notification(seq + i) for i in range(10)]
        st, headers, reply = post(port, batch)
        if st == 200:
            assert reply == {"accepted": 10}
            ok += [e["seq"] for e in batch]
        else:
            assert st == 503 and headers["retry-after"] == "2", (st, reply)
            refused += [e["seq"] for e in batch]
        seq += 10
    assert refused, "the pipeline never filled"
    h.signal()
    got = _drain_fifo(rfd, h.proc)
    assert h.wait() == 0
    assert seqs(got) == sorted(ok)


def test_http_ack_delivered_200_only_after_the_output_wrote(hbf):
    port = free_port()
    h = hbf(pipeline(port, 'ack = "delivered"'))
    listening(port)
    st, _, reply = post(port, [notification(1), notification(2)])
    assert (st, reply) == (200, {"accepted": 2})
    # Delivered means written: the file holds the events as soon as the reply came.
    assert seqs([json.loads(l) for l in (h.tmp / "out.ndjson").read_text().splitlines()]) == [1, 2]
    assert seqs(stop_and_read(h)) == [1, 2]


def test_http_ack_delivered_requests_do_not_wait_for_the_linger(hbf):
    # [service] linger: after a small take a stage's thread sleeps before the next one, but not
    # after events whose sender waits for their delivery: each of these requests is sent after
    # the reply to the one before, so a linger of 500 ms after each write would make six of them
    # take 2.5 s or more.
    port = free_port()
    h = hbf(pipeline(port, 'ack = "delivered"', service='linger = "500ms"'))
    listening(port)
    t0 = time.monotonic()
    for i in range(1, 7):
        st, _, reply = post(port, [notification(i)])
        assert (st, reply) == (200, {"accepted": 1})
    took = time.monotonic() - t0
    assert took < 1.5, f"six delivered requests took {took:.2f} s"
    assert seqs(stop_and_read(h)) == [1, 2, 3, 4, 5, 6]


def test_http_ack_delivered_output_failure_is_503(hbf):
    # /dev/full: every write fails with ENOSPC. The file output retries until the shutdown
    # timeout ends it; the batch then reports failed, and the waiting request hears 503.
    port = free_port()
    h = hbf(pipeline(port, 'ack = "delivered"\nack_timeout = "30s"', service='shutdown_timeout = "1s"', out_path="/dev/full"))
    listening(port)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("reply", post(port, notification(1), timeout=30)))
    t.start()
    h.wait_log("No space left on device; retrying until it succeeds")
    h.signal()
    t.join(30)
    st, headers, reply = got["reply"]
    assert st == 503 and "retry-after" in headers and "error" in reply
    assert h.wait() == 1  # the output ended failing: exit code 1


def test_http_ack_delivered_timeout_is_504(hbf, tmp_path):
    port = free_port()
    rfd, cfg = _fifo_pipeline(tmp_path, port, 'ack = "delivered"\nack_timeout = "1s"')
    h = hbf(cfg)
    listening(port)
    ok, refused, late, seq = [], [], [], 0
    deadline = time.time() + 30
    while not late and time.time() < deadline:
        batch = [notification(seq + i) for i in range(10)]
        st, _, reply = post(port, batch)
        (ok if st == 200 else refused if st == 503 else late).extend(e["seq"] for e in batch)
        assert st in (200, 503, 504), (st, reply)
        seq += 10
    assert late, "no request timed out"
    h.signal()
    got = seqs(_drain_fifo(rfd, h.proc))
    assert h.wait() == 0
    # 200: written. 503: never queued. 504: queued, its delivery unconfirmed when the reply went.
    assert set(ok) <= set(got)
    assert not set(refused) & set(got)
    assert set(got) <= set(ok) | set(late)
