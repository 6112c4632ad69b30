"""tcp input and output: NDJSON lines over TCP and TLS, between hbforwards and plain sockets."""
import json
import socket
import subprocess
import threading
import time

from conftest import HBF, free_port, read_ndjson, wait_for
from hbfwd import listening


def tcp_in(port, opts=""):
    return f"""
[inputs.lines]
type = "tcp"
address = "127.0.0.1:{port}"
{opts}

[outputs.out]
type = "file"
inputs = ["lines"]
path = "out.ndjson"
"""


def test_tcp_input_keeps_partial_lines_and_drops_only_the_long_one(hbf, tmp_path):
    port = free_port()
    h = hbf(tcp_in(port, 'max_line = "100"'))
    listening(port)
    a = socket.create_connection(("127.0.0.1", port))
    b = socket.create_connection(("127.0.0.1", port))
    a.sendall(b'{"c":"a","n":1}\n{"c":"a",')
    b.sendall(b'{"c":"b","n":1}\r\n{"c":"b","long":"' + b"x" * 300)
    time.sleep(0.2)
    a.sendall(b'"n":2}\n')
    b.sendall(b'"}\n{"c":"b","n":3}\n{"c":"b","n":4}')   # the last line has no newline: taken at close
    b.close()
    a.sendall(b'{"c":"a","n":3}\n')
    a.close()
    got = wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(read_ndjson(tmp_path / "out.ndjson")), what="6 events")
    assert sorted((e["c"], e["n"]) for e in got) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 3), ("b", 4)]
    h.wait_log("longer than max_line")
    assert h.stop() == 0


def test_tcp_input_max_connections(hbf, tmp_path):
    port = free_port()
    h = hbf(tcp_in(port, "max_connections = 1"))
    listening(port)
    a = socket.create_connection(("127.0.0.1", port))
    a.sendall(b'{"n":1}\n')
    wait_for(lambda: read_ndjson(tmp_path / "out.ndjson"), what="the first event")
    b = socket.create_connection(("127.0.0.1", port))
    b.settimeout(5)
    assert b.recv(1) == b""
    h.wait_log("max_connections (1) reached")
    a.sendall(b'{"n":2}\n')
    a.close()
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 2, what="the second event")
    assert h.stop() == 0


class LineServer:
    def __init__(self, port):
        self.data = bytearray()
        self.lock = threading.Lock()
        self.srv = socket.create_server(("127.0.0.1", port))
        self.srv.settimeout(0.2)
        self.running = True
        self.conns = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.running:
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            with self.lock:
                self.data += d

    def lines(self):
        with self.lock:
            return bytes(self.data).decode().splitlines()

    def close(self):
        self.running = False
        self.srv.close()
        for c in self.conns:
            c.close()
        self.t.join(2)


def sender(port, opts=""):
    return f'[inputs.in]\ntype = "stdin"\n[outputs.tcp]\ntype = "tcp"\ninputs = ["in"]\naddress = "127.0.0.1:{port}"\n{opts}\n'


def test_tcp_output_writes_every_line_byte_for_byte(tmp_path):
    port = free_port()
    srv = LineServer(port)
    try:
        lines = [json.dumps({"n": i, "text": "caf\u00e9 \"q\""}, ensure_ascii=False) for i in range(20000)]
        (tmp_path / "s.toml").write_text(sender(port))
        p = subprocess.run([str(HBF), "run", "-c", "s.toml"], cwd=tmp_path, input=("\n".join(lines) + "\n").encode(),
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        wait_for(lambda: len(srv.lines()) == len(lines), what="every line at the server")
        assert srv.lines() == lines
    finally:
        srv.close()


def test_tcp_output_holds_the_batch_until_the_server_is_there(tmp_path):
    port = free_port()
    (tmp_path / "s.toml").write_text(sender(port))
    tx = subprocess.Popen([str(HBF), "run", "-c", "s.toml"], cwd=tmp_path, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        tx.stdin.write(b'{"n":1}\n{"n":2}\n')
        tx.stdin.close()
        time.sleep(1.0)                     # nobody listens yet: the output retries with backoff
        assert tx.poll() is None
        srv = LineServer(port)
        try:
            assert tx.wait(30) == 0
            wait_for(lambda: len(srv.lines()) == 2, what="the lines")
            assert srv.lines() == ['{"n":1}', '{"n":2}']
            assert "Connection refused" in tx.stderr.read().decode()
        finally:
            srv.close()
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()


def test_tcp_output_to_tcp_input_over_tls(hbf, tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    rx = hbf(tcp_in(port, f'tls = {{ cert = "{cert}", key = "{key}" }}'), name="rx")
    listening(port)
    lines = [json.dumps({"n": i}) for i in range(5000)]
    (tmp_path / "s.toml").write_text(sender(port, f'tls = {{ ca = "{cert}" }}'))
    p = subprocess.run([str(HBF), "run", "-c", "s.toml"], cwd=tmp_path, input=("\n".join(lines) + "\n").encode(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    got = wait_for(lambda: (lambda e: e if len(e) == 5000 else None)(read_ndjson(tmp_path / "out.ndjson")), what="5000 events")
    assert [e["n"] for e in got] == list(range(5000))
    assert rx.stop() == 0
