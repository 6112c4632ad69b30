"""Sends pre-packed Forward frames as fast as one connection takes them; the last frame asks for
an ack, which the forward input sends once the file output wrote it (so all before it too).
Usage: blast.py PORT FRAMES_FILE   (FRAMES_FILE from `blast.py --pack NDJSON OUT`). Prints seconds."""
import json
import socket
import struct
import sys
import time

import msgpack


def pack(src, dst, per_frame=1000):
    t = msgpack.ExtType(0, struct.pack(">II", 1764000000, 0))
    with open(src) as f, open(dst, "wb") as out:
        entries = []
        last = None
        for line in f:
            entries.append(msgpack.packb([t, json.loads(line)]))
            if len(entries) == per_frame:
                out.write(msgpack.packb(["bench", b"".join(entries)]))
                entries = []
        out.write(msgpack.packb(["bench", b"".join(entries), {"chunk": "last"}]))


def blast(port, path):
    data = open(path, "rb").read()
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.monotonic()
    s.sendall(data)
    un = msgpack.Unpacker(raw=False)
    while True:
        d = s.recv(100)
        if not d:
            sys.exit("connection closed before the ack")
        un.feed(d)
        for obj in un:
            assert obj == {"ack": "last"}, obj
            print(f"{time.monotonic() - t0:.3f}")
            return


if __name__ == "__main__":
    if sys.argv[1] == "--pack":
        pack(sys.argv[2], sys.argv[3])
    else:
        blast(int(sys.argv[1]), sys.argv[2])
