"""Helpers for the http input's end-to-end tests: a pipeline config, requests, and replies read raw."""
import http.client
import json
import socket
import time

from conftest import examples, read_ndjson, wait_for


def pipeline(port, http_opts="", service="", out_path="out.ndjson"):
    """http -> json -> file, with extra TOML lines for the http input and [service]."""
    return f"""
[service]
log_level = "info"
{service}

[inputs.hb]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/healthbot"]
{http_opts}

[filters.parse]
type = "json"
inputs = ["hb"]

[outputs.out]
type = "file"
inputs = ["parse"]
path = "{out_path}"
"""


def listening(port, timeout=10.0):
    def ok():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_for(ok, timeout, what=f"port {port} to listen")


def notification(seq, base=0):
    """One of the HealthBot examples, marked with a unique seq so the output can be matched to the replies."""
    ex = examples()
    ev = json.loads(ex[(seq + base) % len(ex)])
    ev["seq"] = seq
    return ev


def post(port, body, headers=None, path="/healthbot", method="POST", timeout=10.0):
    """One request on its own connection: (status, headers with lowercase names, parsed JSON body or None)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, (json.loads(data) if data else None)
    finally:
        c.close()


def read_responses(sock, count, timeout=10.0):
    """Reads `count` HTTP responses from a raw socket: list of (status, headers dict, body bytes)."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    end = time.time() + timeout
    while len(out) < count and time.time() < end:
        while b"\r\n\r\n" in buf and len(out) < count:
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
            n = int(hdrs.get("content-length", "0"))
            if status == 100:
                buf = rest
                continue
            if len(rest) < n:
                break
            out.append((status, hdrs, rest[:n]))
            buf = rest[n:]
        if len(out) >= count:
            break
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return out


def raw_post(seq_or_body, path="/healthbot", extra_headers="", close=False):
    """The bytes of one POST with Content-Length."""
    body = seq_or_body if isinstance(seq_or_body, bytes) else json.dumps(seq_or_body).encode()
    conn = "Connection: close\r\n" if close else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra_headers}{conn}\r\n").encode() + body


def stop_and_read(h, out="out.ndjson"):
    """Stops hbforward (SIGTERM: drain and flush), checks it exited 0, returns the events written."""
    assert h.stop() == 0, h.log()
    return read_ndjson(h.tmp / out)


def seqs(events):
    return sorted(e["seq"] for e in events)
