"""Helpers for the Forward protocol tests: configs, a raw msgpack client, EventTime, gzip."""
import gzip
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
