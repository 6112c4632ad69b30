"""A scriptable HTTP collector for the http output's tests (Python's http.server, on loopback).

Each POST is answered by `respond(req)`, a function of the request (a Req: headers, decoded body,
its events, the request's number) returning (status, headers, body) or CLOSE (the connection is
closed without an answer). Every request is recorded; `accepted` holds the events of the
requests answered 2xx (for Elasticsearch bulk, only the items answered 2xx).
"""
import gzip
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLOSE = "close"


class Req:
    def __init__(self, n, headers, raw, body):
        self.n = n
        self.headers = headers
        self.raw = raw
        self.body = body
        self.at = time.time()

    def events(self):
        """The events of the body, whatever the format: ndjson, JSON array, bulk (documents only), HEC."""
        text = self.body.decode()
        if text.startswith("["):
            return json.loads(text)
        lines = [json.loads(l) for l in text.splitlines() if l.strip()]
        if lines and set(lines[0].keys()) <= {"index", "create"}:
            return lines[1::2]
        return lines


def decode(headers, raw):
    enc = (headers.get("content-encoding") or "").lower()
    if enc == "gzip":
        return gzip.decompress(raw)
    if enc == "zstd":
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=raw, capture_output=True, check=True, timeout=30).stdout
    return raw


class Collector:
    def __init__(self, respond=None, tls=None):
        self.respond = respond or (lambda req: (200, {}, b'{"ok":true}'))
        self.requests = []
        self.accepted = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        c = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                with c.lock:
                    c.active += 1
                    c.max_active = max(c.max_active, c.active)
                try:
                    raw = self.rfile.read(int(headers.get("content-length", "0")))
                    with c.lock:
                        req = Req(len(c.requests), headers, raw, decode(headers, raw))
                        c.requests.append(req)
                    answer = c.respond(req)
                    if answer == CLOSE:
                        self.close_connection = True
                        return
                    status, hdrs, body = answer
                    if isinstance(body, (dict, list)):
                        body = json.dumps(body).encode()
                    if 200 <= status < 300:
                        evs = req.events()
                        if isinstance(answer[2], dict) and "items" in answer[2]:
                            evs = [e for e, it in zip(evs, answer[2]["items"]) if 200 <= list(it.values())[0]["status"] < 300]
                        with c.lock:
                            c.accepted.extend(evs)
                    self.send_response(status)
                    for k, v in hdrs.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with c.lock:
                        c.active -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def seqs(self):
        with self.lock:
            return sorted(e["seq"] for e in self.accepted)
