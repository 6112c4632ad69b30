"""forward output: into a second hbforward and into a msgpack test server that checks every frame."""
import json
import signal
import subprocess
import time

import pytest

from conftest import HBF, examples, free_port, read_ndjson, wait_for
from hbfwd import FakeServer, forward_in, listening, wait_events


def sender(servers, opts=""):
    return f"""
[inputs.in]
type = "stdin"

[filters.parse]
type = "json"
inputs = ["in"]

[outputs.fwd]
type = "forward"
inputs = ["parse"]
servers = [{", ".join(f'"127.0.0.1:{p}"' for p in servers)}]
{opts}
"""


def lines(n):
    ex = examples()
    out = []
    for i in range(n):
        ev = json.loads(ex[i % len(ex)])
        ev["seq"] = i
        ev["text"] = "caf\u00e9 \"q\" \\ \t end"
        ev["big"] = 2**64 - 1
        ev["neg"] = -2**63
        ev["f"] = 0.1 * i
        out.append(ev)
    return out


def run_sender(tmp_path, cfg, events, env=None, timeout=60):
    (tmp_path / "send.toml").write_text(cfg)
    data = "".join(json.dumps(e) + "\n" for e in events).encode()
    return subprocess.run([str(HBF), "run", "-c", "send.toml"], cwd=tmp_path, input=data, capture_output=True,
                          timeout=timeout, env=env)


def strip(ev):
    return {k: v for k, v in ev.items() if k not in ("tag", "time")}


@pytest.mark.parametrize("opts", ['require_ack = true\ncompression = "gzip"', "require_ack = false"])
def test_into_a_second_hbforward_every_event_arrives(hbf, tmp_path, opts):
    port = free_port()
    rx = hbf(forward_in(port, 'tag_field = "tag"\ntime_field = "time"'), name="rx")
    listening(port)
    sent = lines(3000)
    p = run_sender(tmp_path, sender([port], 'tag = "healthbot.{severity}"\n' + opts), sent)
    assert p.returncode == 0, p.stderr.decode()
    got = wait_events(tmp_path / "out.ndjson", len(sent))
    assert sorted((strip(e) for e in got), key=lambda e: e["seq"]) == sent
    assert all(e["tag"] == "healthbot." + e["severity"] for e in got)
    assert rx.stop() == 0


@pytest.mark.parametrize("gz,ack", [(True, True), (False, False), (False, True)])
def test_frames_are_packed_forward_with_the_options_asked_for(tmp_path, gz, ack):
    port = free_port()
    srv = FakeServer(port)
    try:
        sent = lines(500)
        for i, e in enumerate(sent):
            e["at"] = f"2026-01-02T03:04:{i % 60:02d}.000000{i % 1000:03d}Z"
        opts = f'tag = "hb.{{group|nogroup}}"\ntime_field = "at"\nrequire_ack = {str(ack).lower()}\n'
        opts += 'compression = "gzip"' if gz else ""
        p = run_sender(tmp_path, sender([port], opts), sent)
        assert p.returncode == 0, p.stderr.decode()
        wait_for(lambda: len(srv.records()) >= len(sent), what="events at the test server")
        for f in srv.frames:
            assert len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], bytes)   # [tag, bin, option]
            want = {"size"} | ({"chunk"} if ack else set()) | ({"compressed"} if gz else set())
            assert set(f[2]) == want
            if gz:
                assert f[2]["compressed"] == "gzip" and f[1][:2] == b"\x1f\x8b"
        assert sum(f[2]["size"] for f in srv.frames) == len(sent)
        if ack:
            assert len({f[2]["chunk"] for f in srv.frames}) == len(srv.frames)
        assert sorted(srv.records(), key=lambda r: r["seq"]) == sent
        for t, rec in srv.events:
            assert t[0] == "EventTime"
            i = rec["seq"]
            assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t[1])) == f"2026-01-02T03:04:{i % 60:02d}"
            assert t[2] == i % 1000
        tags = {f[0] for f in srv.frames}
        assert tags == {"hb." + g for g in {r["group"] for r in sent}}
    finally:
        srv.close()


def test_a_peer_that_never_acks_gets_the_chunk_again(tmp_path):
    port = free_port()
    srv = FakeServer(port, ack=lambda n: n >= 2)   # the first two frames are never acknowledged
    try:
        sent = lines(10)
        p = run_sender(tmp_path, sender([port], 'require_ack = true\nack_timeout = "1s"'), sent)
        assert p.returncode == 0, p.stderr.decode()
        assert "did not acknowledge chunk" in p.stderr.decode()
        assert len(srv.frames) >= 2
        assert {r["seq"] for r in srv.records()} == set(range(10))   # at least once: duplicates allowed
    finally:
        srv.close()


def test_a_server_that_goes_down_and_comes_back_loses_nothing_with_require_ack(hbf, tmp_path):
    port = free_port()
    srv = FakeServer(port, ack=lambda n: False)    # takes frames, never acks, then dies
    (tmp_path / "send.toml").write_text(sender([port], 'require_ack = true\nack_timeout = "20s"'))
    tx = subprocess.Popen([str(HBF), "run", "-c", "send.toml"], cwd=tmp_path, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sent = lines(200)
        tx.stdin.write("".join(json.dumps(e) + "\n" for e in sent[:100]).encode())
        tx.stdin.flush()
        wait_for(lambda: len(srv.records()) >= 100, what="the first events at the server")
        srv.close()                                # down, without having acked anything
        tx.stdin.write("".join(json.dumps(e) + "\n" for e in sent[100:]).encode())
        tx.stdin.close()
        time.sleep(1.0)
        srv2 = FakeServer(port)                    # back, acking
        try:
            assert tx.wait(60) == 0
            assert {r["seq"] for r in srv2.records()} == set(range(200))
        finally:
            srv2.close()
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()


def test_failover_to_the_second_server(tmp_path):
    dead, live = free_port(), free_port()
    srv = FakeServer(live)
    try:
        sent = lines(300)
        p = run_sender(tmp_path, sender([dead, live], 'require_ack = true'), sent)
        assert p.returncode == 0, p.stderr.decode()
        assert f"127.0.0.1:{dead}: Connection refused" in p.stderr.decode()
        assert sorted(srv.records(), key=lambda r: r["seq"]) == sent
    finally:
        srv.close()


def test_balance_spreads_frames_over_both_servers(tmp_path):
    a, b = free_port(), free_port()
    sa, sb = FakeServer(a), FakeServer(b)
    try:
        sent = lines(2000)
        p = run_sender(tmp_path, sender([a, b], 'mode = "balance"\nrequire_ack = true'), sent)
        assert p.returncode == 0, p.stderr.decode()
        assert sa.frames and sb.frames
        assert sorted(sa.records() + sb.records(), key=lambda r: r["seq"]) == sent
    finally:
        sa.close()
        sb.close()


def test_shared_key_handshake_with_hbforward_and_a_wrong_key(hbf, tmp_path):
    port = free_port()
    rx = hbf(forward_in(port, 'shared_key = "k3y"\nself_hostname = "rx"'), name="rx")
    listening(port)
    sent = lines(50)
    p = run_sender(tmp_path, sender([port], 'require_ack = true\nshared_key = "k3y"\nself_hostname = "tx"'), sent)
    assert p.returncode == 0, p.stderr.decode()
    assert sorted(read_ndjson(tmp_path / "out.ndjson"), key=lambda e: e["seq"]) == sent
    # A wrong key: refused with a reason and retried; nothing is delivered, and at shutdown the events are failed.
    (tmp_path / "bad.toml").write_text(sender([port], 'require_ack = true\nshared_key = "wrong"') +
                                       '\n[service]\nshutdown_timeout = "2s"\n')
    tx = subprocess.Popen([str(HBF), "run", "-c", "bad.toml"], cwd=tmp_path, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        tx.stdin.write((json.dumps(sent[0]) + "\n").encode())
        tx.stdin.flush()
        rx.wait_log("shared_key mismatch")
        tx.send_signal(signal.SIGTERM)
        assert tx.wait(30) == 1
        assert "handshake refused by the server: shared_key mismatch" in tx.stderr.read().decode()
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()
    rx.wait_log("shared_key mismatch")
    assert len(read_ndjson(tmp_path / "out.ndjson")) == 50
    assert rx.stop() == 0


def test_tls_to_a_second_hbforward(hbf, tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    rx = hbf(forward_in(port, f'tls = {{ cert = "{cert}", key = "{key}" }}'), name="rx")
    listening(port)
    sent = lines(100)
    p = run_sender(tmp_path, sender([port], f'require_ack = true\ntls = {{ ca = "{cert}" }}'), sent)
    assert p.returncode == 0, p.stderr.decode()
    assert sorted(read_ndjson(tmp_path / "out.ndjson"), key=lambda e: e["seq"]) == sent
    assert rx.stop() == 0


def test_users_in_the_handshake(hbf, tmp_path):
    port = free_port()
    rx = hbf(forward_in(port, 'shared_key = "k"\nusers = { alice = "pw" }'), name="rx")
    listening(port)
    sent = lines(20)
    p = run_sender(tmp_path, sender([port], 'require_ack = true\nshared_key = "k"\nusername = "alice"\npassword = "pw"'), sent)
    assert p.returncode == 0, p.stderr.decode()
    assert sorted(read_ndjson(tmp_path / "out.ndjson"), key=lambda e: e["seq"]) == sent
    (tmp_path / "bad.toml").write_text(sender([port], 'require_ack = true\nshared_key = "k"\nusername = "alice"\npassword = "no"') +
                                       '\n[service]\nshutdown_timeout = "2s"\n')
    tx = subprocess.Popen([str(HBF), "run", "-c", "bad.toml"], cwd=tmp_path, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        tx.stdin.write((json.dumps(sent[0]) + "\n").encode())
        tx.stdin.flush()
        rx.wait_log("username/password mismatch")
        tx.send_signal(signal.SIGTERM)
        assert tx.wait(30) == 1
        assert "handshake refused by the server: username/password mismatch" in tx.stderr.read().decode()
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()
    assert len(read_ndjson(tmp_path / "out.ndjson")) == 20
    assert rx.stop() == 0


def test_an_idle_connection_the_server_closed_is_reopened_quietly(tmp_path):
    port = free_port()
    srv = FakeServer(port)
    (tmp_path / "send.toml").write_text(sender([port], "require_ack = true"))
    tx = subprocess.Popen([str(HBF), "run", "-c", "send.toml"], cwd=tmp_path, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sent = lines(20)
        tx.stdin.write("".join(json.dumps(e) + "\n" for e in sent[:10]).encode())
        tx.stdin.flush()
        wait_for(lambda: len(srv.records()) == 10 and srv.all_answered(), what="the first events, acked")
        time.sleep(0.2)                                # the sender reads the ack
        srv.drop_connections()
        time.sleep(1.0)                                # the sender notices the close while idle
        tx.stdin.write("".join(json.dumps(e) + "\n" for e in sent[10:]).encode())
        tx.stdin.close()
        assert tx.wait(30) == 0
        assert sorted(srv.records(), key=lambda r: r["seq"]) == sent
        assert "warn" not in tx.stderr.read().decode()   # nothing failed: no warning, no resend
    finally:
        if tx.poll() is None:
            tx.kill()
            tx.wait()
        srv.close()
