"""Seeded garbage against the webhook: the process survives, and exactly what got 200 is written."""
import gzip
import json
import random
import socket
import time

from conftest import examples, free_port, read_ndjson, wait_for
from hbhttp import pipeline, read_responses


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(b)) if b else 0
        op = rng.random()
        if op < 0.3 and b:
            b[i] = rng.randrange(256)
        elif op < 0.6:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        elif b:
            del b[i:i + rng.randint(1, 10)]
    return bytes(b)


def read_reply(sock):
    """One HTTP reply: (status, parsed JSON body), or None when the server closed."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return int(head.split()[1]), json.loads(rest[:length] or b"{}")


def test_garbage_never_crashes_the_webhook_or_costs_other_data(hbf, tmp_path):
    port = free_port()
    h = hbf(pipeline(port, 'max_body = "64KiB"'))
    h.wait_log("listening on")
    rng = random.Random(20261125)
    ex = [e.encode() for e in examples()]
    accepted = refused = 0
    end = time.time() + 4
    while time.time() < end:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        for _ in range(rng.randint(1, 20)):
            r = rng.random()
            if r < 0.5:
                body = mutate(rng, rng.choice(ex))
            elif r < 0.6:
                body = b"[" + b",".join(rng.sample(ex, 3)) + b"]"
            elif r < 0.7:
                body = mutate(rng, b"\n".join(rng.sample(ex, 4)))
            elif r < 0.8:
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            else:
                body = rng.choice(ex)
            ctype = rng.choice(["application/json", "application/x-ndjson", "text/plain", "application/json; charset=utf-8"])
            head = f"POST /healthbot HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            if rng.random() < 0.1:
                body = gzip.compress(body) if rng.random() < 0.7 else body
                head += "Content-Encoding: gzip\r\n"
            head = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
            if rng.random() < 0.05:
                head = mutate(rng, head)
            try:
                s.sendall(head + body)
                reply = read_reply(s)
            except OSError:
                reply = None
            if reply is None:
                break
            status, j = reply
            if status == 200:
                accepted += j["accepted"]
            else:
                refused += 1
                assert 400 <= status < 500 and "error" in j, (status, j)
        s.close()
    assert h.proc.poll() is None, "the process died:\n" + h.log()
    assert accepted > 100 and refused > 100
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == accepted, what="every accepted event in the file")
    assert h.stop() == 0
    assert len(read_ndjson(tmp_path / "out.ndjson")) == accepted


def test_pipelined_mixes_split_at_random_are_answered_in_order(hbf, tmp_path):
    # Seeded mixes of valid, invalid, refused, empty and closing requests, each mix written on one
    # connection in random pieces: every reply comes in request order with the status the
    # request calls for, nothing behind a "Connection: close" is answered, and exactly the events
    # of the requests answered 200 are written, in order.
    port = free_port()
    h = hbf(pipeline(port))
    h.wait_log("listening on")
    rng = random.Random(20261130)
    ex = [json.loads(e) for e in examples()]
    seq = 0
    expect_seqs = []

    def valid(n):
        nonlocal seq
        evs = []
        for _ in range(n):
            e = dict(rng.choice(ex))
            e["seq"] = seq
            seq += 1
            evs.append(e)
        return evs

    for _ in range(60):
        reqs, want, seqs_if_ok = [], [], []
        for _ in range(rng.randint(1, 90)):
            kind = rng.random()
            path, extra, close = "/healthbot", "", False
            evs = []
            if kind < 0.55:
                evs = valid(rng.randint(1, 3))
                body, status = (json.dumps(evs[0]) if len(evs) == 1 else json.dumps(evs)).encode(), 200
            elif kind < 0.65:
                body, status = b'{"seq": -1, oops}', 400
            elif kind < 0.72:
                body, status, path = json.dumps(valid(1)[0]).encode(), 404, "/elsewhere"
            elif kind < 0.78:
                body, status = b"[]", 200
            elif kind < 0.86:
                evs = valid(1)
                body, status, extra = json.dumps(evs[0]).encode(), 200, "Expect: 100-continue\r\n"
            else:
                evs = valid(1)
                body, status, close = json.dumps(evs[0]).encode(), 200, rng.random() < 0.3
            head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}" + ("Connection: close\r\n" if close else "") + "\r\n").encode()
            reqs.append(head + body)
            want.append(status)
            seqs_if_ok.append([e["seq"] for e in evs] if status == 200 else [])
            if close:
                break
        data = b"".join(reqs)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            at = 0
            while at < len(data):
                n = rng.choice([1, 7, 100, 1000, 5000, len(data)])
                s.sendall(data[at:at + n])
                at += n
                if rng.random() < 0.2:
                    time.sleep(0.001)
            got = read_responses(s, len(reqs), timeout=10)
        assert [st for st, _, _ in got] == want, (want, got)
        for w in seqs_if_ok:
            expect_seqs.extend(w)
    assert h.proc.poll() is None, "the process died:\n" + h.log()
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == len(expect_seqs), what="every accepted event in the file")
    assert h.stop() == 0
    assert [e["seq"] for e in read_ndjson(tmp_path / "out.ndjson")] == expect_seqs
