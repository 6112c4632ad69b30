#!/usr/bin/python3
"""Paced webhook load for the soak: POSTs one HealthBot-shaped notification per request, each with
a unique "seq", over keep-alive connections with a few requests pipelined on each, at a target
rate. Records which seqs were answered 200 (a bitmap file) so the soak can count lost and
duplicated events against what was written.

usage: load.py PORT RATE SECONDS BITMAP_OUT   (RATE 0 = as fast as it can; SIGTERM ends it early)
prints one JSON line: sent, ok (200), refused (503), other, unanswered, seconds, rate."""
import json
import re
import selectors
import signal
import socket
import sys
import time
from collections import deque

port, rate, seconds, bitmap_out = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
CONNS, DEPTH = 16, 8
BODY = (b'{"seq":%d,"device-id":"ptx10008-core-03","group":"core","keys":{"_instance_id":"[\\"core-isis\\"]",'
        b'"instance-id":"master","interface-id":"et-0/0/5.0"},"message":"IS-IS adjacency on et-0/0/5.0 is Down",'
        b'"rule":"check-isis-adjacencies","severity":"major","topic":"protocol.isis","trigger":"isis-p2p-adjacency-state"}')
HEAD = b"POST /healthbot HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
CL = re.compile(rb"[Cc]ontent-[Ll]ength: *(\d+)")

acked = bytearray()
counts = {"ok": 0, "refused": 0, "other": 0}
sel = selectors.DefaultSelector()
conns = []
for _ in range(CONNS):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    c = {"s": s, "inflight": deque(), "buf": b"", "out": b""}
    conns.append(c)
    sel.register(s, selectors.EVENT_READ, c)

def settle(seq, status):
    if status == 200:
        counts["ok"] += 1
        if seq >= len(acked) * 8:
            acked.extend(bytes(max(1 << 16, len(acked))))
        acked[seq >> 3] |= 1 << (seq & 7)
    elif status == 503:
        counts["refused"] += 1
    else:
        counts["other"] += 1

def read(c):
    try:
        data = c["s"].recv(262144)
    except BlockingIOError:
        return
    if not data:
        raise SystemExit("the server closed a connection")
    buf = c["buf"] + data
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            break
        m = CL.search(buf, 0, end)
        n = int(m.group(1)) if m else 0
        if len(buf) < end + 4 + n:
            break
        settle(c["inflight"].popleft(), int(buf[9:12]))
        buf = buf[end + 4 + n:]
    c["buf"] = buf

sent = 0
t0 = time.monotonic()
stop_at = t0 + seconds


def stop_now(*_):
    global stop_at
    stop_at = 0


signal.signal(signal.SIGTERM, stop_now)
rr = 0
while True:
    now = time.monotonic()
    if now >= stop_at:
        stop_at = now
        break
    allowed = int((now - t0) * rate) if rate > 0 else sent + CONNS * DEPTH
    # Hand out what the pace allows to connections with room in their pipeline.
    for _ in range(CONNS):
        if sent >= allowed:
            break
        c = conns[rr % CONNS]
        rr += 1
        room = DEPTH - len(c["inflight"])
        k = min(room, allowed - sent)
        if k <= 0:
            continue
        out = []
        for _ in range(k):
            body = BODY % sent
            out.append(HEAD % len(body) + body)
            c["inflight"].append(sent)
            sent += 1
        c["s"].sendall(b"".join(out))  # small: fits the socket buffer
    for key, _ in sel.select(timeout=0.001):
        read(key.data)

# Collect the answers still on their way.
deadline = time.monotonic() + 10
while any(c["inflight"] for c in conns) and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.05):
        read(key.data)
elapsed = time.monotonic() - t0
unanswered = sum(len(c["inflight"]) for c in conns)
for c in conns:
    c["s"].close()
with open(bitmap_out, "wb") as f:
    f.write(acked)
print(json.dumps({"sent": sent, **counts, "unanswered": unanswered, "seconds": round(elapsed, 1),
                  "rate": round((sent - unanswered) / max(min(elapsed, stop_at - t0), 1e-9), 0)}))
