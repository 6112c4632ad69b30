"""Helpers for the Forward protocol tests: configs, a raw msgpack client, EventTime, gzip."""
import gzip
import io
import threading
import socket
import struct
import time

import msgpack

from conftest import read_ndjson, wait_for


def forward_in(port, opts="", out_path="out.ndjson", service=""):
    """forward -> file."""
    return f"""
[service]
log_level = "info"
{service}

[inputs.fluent]
type = "forward"
address = "127.0.0.1:{port}"
{opts}

[outputs.out]
type = "file"
inputs = ["fluent"]
path = "{out_path}"
"""


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def packed(entries):
    return b"".join(msgpack.packb(e, use_bin_type=True) for e in entries)


def gzip_members(*parts):
    return b"".join(gzip.compress(p) for p in parts)


def listening(port, timeout=10.0):
    def ok():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_for(ok, timeout, what=f"port {port} to listen")


class Client:
    """A raw Forward connection: send msgpack objects, read the server's replies."""

    def __init__(self, port=None, sock=None, timeout=10.0):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, obj):
        self.sock.sendall(msgpack.packb(obj, use_bin_type=True))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=10.0):
        """The next object from the server, or None when the connection closed."""
        self.sock.settimeout(timeout)
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(65536)
            if not data:
                return None
            self.unpacker.feed(data)

    def closed_by_peer(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def wait_events(path, n, timeout=10.0):
    return wait_for(lambda: (lambda evs: evs if len(evs) >= n else None)(read_ndjson(path)), timeout,
                    what=f"{n} events in {path}")


def _ext_hook(code, data):
    if code == 0 and len(data) == 8:
        return ("EventTime",) + struct.unpack(">II", data)
    return msgpack.ExtType(code, data)


def unpack_entries(data):
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False, ext_hook=_ext_hook, strict_map_key=False))


class FakeServer:
    """A Forward server built on python3-msgpack: records every frame as received and answers
    acks as told (ack(frame_number) -> bool), optionally after the shared_key handshake."""

    def __init__(self, port, ack=lambda n: True, shared_key=None, hostname="fake-server"):
        self.port, self.ack, self.shared_key, self.hostname = port, ack, shared_key, hostname
        self.frames, self.events, self.conns = [], [], []
        self.answered = 0  # frames handled to the end, their ack (if any) sent
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.listener.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        import hashlib
        import os
        un = msgpack.Unpacker(raw=False, ext_hook=_ext_hook, strict_map_key=False)
        c.settimeout(0.2)
        nonce = os.urandom(16)
        authed = self.shared_key is None
        if not authed:
            c.sendall(msgpack.packb(["HELO", {"nonce": nonce, "auth": b"", "keepalive": True}], use_bin_type=True))
        while self.running:
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            un.feed(data)
            for obj in un:
                if not authed:
                    _, host, salt, digest, _, _ = obj
                    salt = salt if isinstance(salt, bytes) else salt.encode()
                    ok = digest == hashlib.sha512(salt + host.encode() + nonce + self.shared_key.encode()).hexdigest()
                    mine = hashlib.sha512(salt + self.hostname.encode() + nonce + self.shared_key.encode()).hexdigest()
                    c.sendall(msgpack.packb(["PONG", ok, "" if ok else "shared_key mismatch", self.hostname, mine if ok else ""]))
                    authed = ok
                    continue
                with self.lock:
                    n = len(self.frames)
                    self.frames.append(obj)
                    opt = obj[2] if len(obj) > 2 else {}
                    raw = obj[1]
                    if opt.get("compressed") == "gzip":
                        raw = gzip.decompress(raw)
                    self.events.extend(unpack_entries(raw))
                if "chunk" in opt and self.ack(n):
                    c.sendall(msgpack.packb({"ack": opt["chunk"]}))
                with self.lock:
                    self.answered += 1

    def records(self):
        with self.lock:
            return [e[1] for e in self.events]

    def all_answered(self):
        with self.lock:
            return self.answered == len(self.frames)

    def drop_connections(self):
        """Closes the open connections, as a server closing idle keep-alive connections does."""
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns = []

    def close(self):
        self.running = False
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.thread.join(2)
