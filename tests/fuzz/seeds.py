#!/usr/bin/python3
"""Writes seed inputs for the fuzz targets, made from the repository's own fixtures: the HealthBot
samples of tests/data/*.jsonl and the shipped configs of conf/*.toml (nothing outside the
repository). Each input is framed the way its target reads it (a mode byte first where the target
takes one). run.sh passes the directory given, OUT/<name>/, to each target beside its checked-in
corpus tests/fuzz/corpus/<name>/.

    tests/fuzz/seeds.py OUT
"""
import gzip
import json
import os
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def samples():
    lines = []
    for f in sorted((ROOT / "tests" / "data").glob("*.jsonl")):
        lines += [l for l in f.read_text(encoding="utf-8").splitlines() if l.strip()]
    if not lines:
        sys.exit("tests/fuzz/seeds.py: no samples in tests/data/*.jsonl")
    return lines


def main():
    out = Path(sys.argv[1])
    lines = samples()
    events = [json.loads(l) for l in lines]
    ndjson = ("\n".join(lines) + "\n").encode()
    seeds = {n: {} for n in ("http_body", "condition", "config", "lookup_table", "syslog", "forward_frame", "lines")}

    # lines: the first byte picks max_line (1 + byte % 64) and the reads; the samples with CRLF,
    # blank lines and an unfinished last line.
    mixed = "\r\n".join(lines[:3]) + "\n\n\r\n" + "\n".join(lines[3:6]) + "\n" + lines[0][:40]
    for mode in (63, 64 + 31, 200):
        seeds["lines"][f"samples-{mode}"] = bytes([mode]) + mixed.encode()
    short = "".join(f'{{"seq":{i}}}' + ("\r\n" if i % 3 else "\n\n") for i in range(40))
    seeds["lines"]["short"] = bytes([20]) + short.encode()

    # http_body: mode bit 0 = NDJSON, bit 1 = gzip/zlib, bit 2 = spliced members.
    hb = seeds["http_body"]
    for i, l in enumerate(lines):
        hb[f"object-{i}"] = b"\x00" + l.encode()
    hb["array"] = b"\x04[" + ",".join(lines).encode() + b"]"
    hb["ndjson"] = b"\x01" + ndjson
    hb["ndjson-gzip"] = b"\x03" + gzip.compress(ndjson, 6, mtime=0)
    hb["array-zlib"] = b"\x02" + zlib.compress(b"[" + ",".join(lines).encode() + b"]")

    # condition: the first line is the condition, the rest the event.
    conds = ['.severity != "normal" && .group == "edge-routers"',
             '.topic =~ "^interface\\." && .keys."interface-name" =~ "^(xe|et)-"',
             '.keys._playbook_name == "bgp-session-stats-playbook" || .topic == "protocol.bgp"',
             'exists(.keys."_instance-id")', '.device-id =~ "^(mx|ptx)" && !(.severity in ["normal"])',
             '.rtt > 40 || .hops[0].rtt <= 3']
    for i, l in enumerate(lines):
        hb_cond = conds[i % len(conds)]
        seeds["condition"][f"sample-{i}"] = (hb_cond + "\n" + l).encode()

    # config: the shipped configs.
    for f in sorted((ROOT / "conf").glob("*.toml")):
        seeds["config"][f.stem] = f.read_bytes()

    # lookup_table: mode bit 0 = JSON, bit 1 = key column device-id, bit 2 = columns, bit 3 = prefix.
    rows = [{"device-id": e.get("device-id", ""), "site": e.get("group", ""), "region": "eu"} for e in events]
    csv = "device-id,site,region\n" + "".join(f'{r["device-id"]},"{r["site"]}",{r["region"]}\n' for r in rows)
    seeds["lookup_table"]["csv"] = b"\x02" + csv.encode()
    seeds["lookup_table"]["csv-columns-prefix"] = b"\x0e" + csv.encode()
    seeds["lookup_table"]["json"] = b"\x03" + json.dumps(rows).encode()
    seeds["lookup_table"]["json-object"] = b"\x0b" + json.dumps({r["device-id"]: r for r in rows}).encode()

    # syslog: mode bit 0 = one datagram, else a TCP stream cut in two.
    for i, e in enumerate(events):
        msg = e.get("message", "")
        host = e.get("device-id", "-")
        rfc5424 = f'<188>1 2026-11-29T15:00:00.123+01:00 {host} healthbot 1234 HB [hb@2636 rule="{e.get("rule", "")}"] {msg}'
        rfc3164 = f"<188>Nov 29 15:00:00 {host} healthbot[1234]: {msg}"
        seeds["syslog"][f"udp-5424-{i}"] = b"\x01" + rfc5424.encode()
        seeds["syslog"][f"udp-3164-{i}"] = b"\x01" + rfc3164.encode()
        octets = rfc5424.encode()
        seeds["syslog"][f"tcp-{i}"] = b"\x04" + str(len(octets)).encode() + b" " + octets + rfc3164.encode() + b"\n"

    # forward_frame: Message, Forward and PackedForward modes of the samples (python3-msgpack).
    try:
        import msgpack
    except ImportError:
        msgpack = None
    if msgpack:
        t = 1795960800
        ff = seeds["forward_frame"]
        for i, e in enumerate(events):
            ff[f"message-{i}"] = b"\x07" + msgpack.packb(["hb", t, e, {"chunk": f"c{i}"}])
        ff["forward"] = b"\x03" + msgpack.packb(["hb", [[t, e] for e in events], {"chunk": "f"}])
        packed = b"".join(msgpack.packb([t, e]) for e in events)
        ff["packed"] = b"\x05" + msgpack.packb(["hb", packed, {"size": len(events)}])
        ff["compressed"] = b"\x01" + msgpack.packb(["hb", gzip.compress(packed, mtime=0),
                                                    {"size": len(events), "compressed": "gzip"}])

    for name, files in seeds.items():
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            (d / fname).write_bytes(data)
    print(f"seeds from tests/data and conf/: " + ", ".join(f"{n} {len(f)}" for n, f in seeds.items()))


if __name__ == "__main__":
    main()
