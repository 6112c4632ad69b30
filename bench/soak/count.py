#!/usr/bin/python3
"""Counts the soak's written events against what the webhook acknowledged, without keeping the
output: `add` folds finished output files into a bitmap of seen seqs (and deletes them), `report`
compares that with the bitmap of acknowledged seqs.

usage: count.py STATE add FILE...
       count.py STATE report ACKED_BITMAP
report prints: written, duplicates, lost (acknowledged, never written), extra (written, but the
answer was cut off when the load stopped)."""
import os
import re
import sys

state, cmd = sys.argv[1], sys.argv[2]
SEQ = re.compile(rb'"seq":(\d+)')
seen = bytearray(open(state + ".seen", "rb").read()) if os.path.exists(state + ".seen") else bytearray()
written, dup = map(int, open(state + ".n").read().split()) if os.path.exists(state + ".n") else (0, 0)

if cmd == "add":
    for path in sys.argv[3:]:
        with open(path, "rb") as f:
            rest = b""
            while chunk := f.read(32 << 20):
                chunk = rest + chunk
                cut = chunk.rfind(b"\n") + 1
                rest = chunk[cut:]
                for m in SEQ.finditer(chunk, 0, cut):
                    s = int(m.group(1))
                    written += 1
                    if s >> 3 >= len(seen):
                        seen.extend(bytes(max(s >> 3, 1 << 16)))
                    if seen[s >> 3] >> (s & 7) & 1:
                        dup += 1
                    seen[s >> 3] |= 1 << (s & 7)
        os.unlink(path)
    open(state + ".seen", "wb").write(seen)
    open(state + ".n", "w").write(f"{written} {dup}")
else:
    acked = open(sys.argv[3], "rb").read()
    n = max(len(acked), len(seen))
    a = int.from_bytes(acked.ljust(n, b"\0"), "little")
    s = int.from_bytes(bytes(seen).ljust(n, b"\0"), "little")
    lost, extra = bin(a & ~s).count("1"), bin(s & ~a).count("1")
    print(f"written {written}, duplicates {dup}, lost {lost}, extra {extra}")
