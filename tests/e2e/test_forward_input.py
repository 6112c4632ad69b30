"""forward input: real Fluent clients (python3-fluent-logger) and hand-built msgpack frames of every mode."""
import socket
import ssl
import subprocess
import time

import msgpack
import pytest
from fluent import event, sender

from conftest import free_port, read_ndjson, wait_for
from hbfwd import Client, event_time, forward_in, gzip_members, listening, packed, wait_events


def start(hbf, tmp_path, opts="", **kw):
    port = free_port()
    h = hbf(forward_in(port, 'tag_field = "tag"\ntime_field = "time"\n' + opts, **kw))
    listening(port)
    return h, port, tmp_path / "out.ndjson"


def test_fluent_logger_events_arrive_with_tag_time_and_every_value(hbf, tmp_path):
    h, port, out = start(hbf, tmp_path)
    s = sender.FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
    t0 = time.time()
    records = [{"seq": i, "msg": "caf\u00e9 \"quoted\"\n", "big": 2**64 - 1, "neg": -2**63, "f": 1.5e-7,
                "nested": {"list": [1, None, True, "x"]}} for i in range(50)]
    for r in records:
        assert s.emit("health", r), s.last_error
    s.close()
    event.sender.setup("logger", host="127.0.0.1", port=port)
    event.Event("ev", {"via": "fluent.event"}, time=1700000000)
    event.sender.close()
    got = wait_events(out, 51)
    assert [{k: v for k, v in e.items() if k not in ("tag", "time")} for e in got[:50]] == records
    assert {e["tag"] for e in got[:50]} == {"app.health"}
    assert got[50] == {"tag": "logger.ev", "time": "2023-11-14T22:13:20.000000000Z", "via": "fluent.event"}
    # nanosecond_precision sends EventTime: the time keeps its nanoseconds, close to when it was sent.
    assert got[0]["time"][:4] == time.strftime("%Y", time.gmtime(t0)) and len(got[0]["time"]) == 30
    assert h.stop() == 0


def test_every_mode_with_chunk_acks_after_the_events_are_written(hbf, tmp_path):
    h, port, out = start(hbf, tmp_path)
    c = Client(port)
    t = event_time(1700000000, 42)
    frames = [
        ("message", ["m", t, {"n": 1}, {"chunk": "c1"}], 1),
        ("forward", ["f", [[t, {"n": 2}], [1700000001, {"n": 3}], [[t, {"_meta": 1}], {"n": 4}]], {"chunk": "c2", "size": 3}], 3),
        ("packed", ["p", packed([[t, {"n": 5}], [1700000002, {"n": 6}]]), {"chunk": "c3"}], 2),
        ("compressed", ["z", gzip_members(packed([[t, {"n": 7}]]), packed([[t, {"n": 8}], [t, {"n": 9}]])),
                        {"chunk": "c4", "compressed": "gzip", "size": 3}], 3),
    ]
    total = 0
    for name, frame, n in frames:
        c.send(frame)
        reply = c.recv()
        total += n
        assert reply == {"ack": frame[-1]["chunk"]}, name
        # The ack comes once the file output has written the events.
        assert len(read_ndjson(out)) == total, name
    got = read_ndjson(out)
    assert [e["n"] for e in got] == list(range(1, 10))
    assert [e["tag"] for e in got] == ["m", "f", "f", "f", "p", "p", "z", "z", "z"]
    assert got[0]["time"] == "2023-11-14T22:13:20.000000042Z"
    assert got[2]["time"] == "2023-11-14T22:13:21.000000000Z"
    assert "_meta" not in got[3]
    c.close()
    assert h.stop() == 0


def test_frames_without_chunk_get_no_reply_and_a_heartbeat_keeps_the_connection(hbf, tmp_path):
    h, port, out = start(hbf, tmp_path)
    c = Client(port)
    c.send_raw(b"\xc0")  # nil: a heartbeat
    c.send(["t", 1, {"a": 1}])
    c.send_raw(b"\xc0")
    c.send(["t", [[2, {"a": 2}]]])
    wait_events(out, 2)
    assert not c.closed_by_peer(timeout=0.3)
    c.send(["t", 3, {"a": 3}, {"chunk": "last"}])
    assert c.recv() == {"ack": "last"}
    assert [e["a"] for e in read_ndjson(out)] == [1, 2, 3]
    assert h.stop() == 0


def test_a_failed_output_gets_no_ack_and_the_connection_is_closed(hbf, tmp_path):
    port = free_port()
    # Every write fails with ENOSPC: the file output retries until the shutdown timeout, then the
    # batch reports failed.
    h = hbf(forward_in(port, out_path="/dev/full", service='shutdown_timeout = "1s"'))
    listening(port)
    c = Client(port)
    c.send(["t", 1, {"a": 1}, {"chunk": "x"}])
    h.wait_log("No space left on device; retrying until it succeeds")
    h.signal()
    assert c.recv() is None  # closed, no ack: the sender resends
    h.wait_log("not acknowledging chunk x")
    h.stop()


@pytest.mark.parametrize("garbage,reason", [
    (b"\xdf\xff\xff\xff\xff", "more elements than the frame limit"),            # a 2^32-1 entry map
    (b"\x92\xa1t\xdb\xff\xff\xff\xff", "longer than the frame limit"),          # a 4 GiB string
    (b"\x93\xa1t\x01\xa5hello", "a record is not a map"),
    (b"GET / HTTP/1.1\r\n\r\n", "a frame must be an array"),
    (b"\x92\xa1t\xc4\x02\x92\x01", "PackedForward entries are not valid msgpack"),
    (b"\x93\xa1t\xc4\x03abc\x81\xaacompressed\xa4gzip", "corrupt gzip"),
])
def test_a_malformed_frame_closes_only_its_connection(hbf, tmp_path, garbage, reason):
    h, port, out = start(hbf, tmp_path)
    good = Client(port)
    bad = Client(port)
    bad.send(["t", 1, {"before": 1}])
    bad.send_raw(garbage)
    assert bad.closed_by_peer()
    h.wait_log(reason)
    good.send(["t", 2, {"after": 1}, {"chunk": "ok"}])
    assert good.recv() == {"ack": "ok"}
    assert [{k: v for k, v in e.items() if k not in ("tag", "time")} for e in read_ndjson(out)] == [{"before": 1}, {"after": 1}]
    assert h.stop() == 0


def test_max_frame_and_max_connections(hbf, tmp_path):
    h, port, out = start(hbf, tmp_path, 'max_frame = "4KiB"\nmax_connections = 2')
    a, b = Client(port), Client(port)
    a.send(["t", 1, {"x": "y" * 3000}, {"chunk": "fits"}])
    assert a.recv() == {"ack": "fits"}
    b.send(["t", 1, {"x": "y" * 5000}])
    assert b.closed_by_peer()
    h.wait_log("frame limit")
    c1 = Client(port)
    c2 = Client(port)  # a and c1 are open: the third is refused
    assert c2.closed_by_peer()
    h.wait_log("max_connections (2) reached")
    c1.send(["t", 2, {"ok": 1}, {"chunk": "c1"}])
    assert c1.recv() == {"ack": "c1"}
    assert h.stop() == 0


def _ping(helo, key, hostname="client-host", salt="s4lt"):
    import hashlib
    nonce = helo[1]["nonce"]
    nonce = nonce if isinstance(nonce, bytes) else nonce.encode()
    digest = hashlib.sha512(salt.encode() + hostname.encode() + nonce + key.encode()).hexdigest()
    return ["PING", hostname, salt, digest, "", ""], digest, nonce


def test_shared_key_handshake(hbf, tmp_path):
    import hashlib
    port = free_port()
    h = hbf(forward_in(port, 'shared_key = "${FWD_KEY}"\nself_hostname = "hbf-server"'), env={"FWD_KEY": "s3cret"})
    listening(port)
    out = tmp_path / "out.ndjson"
    ok = Client(port)
    helo = ok.recv()
    assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16 and helo[1]["keepalive"] is True
    ping, _, nonce = _ping(helo, "s3cret")
    ok.send(ping)
    pong = ok.recv()
    assert pong[:4] == ["PONG", True, "", "hbf-server"]
    assert pong[4] == hashlib.sha512(b"s4lt" + b"hbf-server" + nonce + b"s3cret").hexdigest()
    ok.send(["t", 1, {"authed": True}, {"chunk": "a"}])
    assert ok.recv() == {"ack": "a"}

    bad = Client(port)
    ping, _, _ = _ping(bad.recv(), "wrong")
    bad.send(ping)
    pong = bad.recv()
    assert pong[:3] == ["PONG", False, "shared_key mismatch"]
    assert bad.recv() is None

    rude = Client(port)  # events before the handshake are refused
    rude.recv()
    rude.send(["t", 1, {"sneaky": True}])
    assert rude.recv() is None
    h.wait_log("expected the handshake's PING")
    assert [e.get("authed") for e in read_ndjson(out)] == [True]
    assert h.stop() == 0


def test_tls_and_unix_socket(hbf, tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    sock_path = tmp_path / "fwd.sock"
    h = hbf(f"""
[inputs.tls]
type = "forward"
address = "127.0.0.1:{port}"
tls = {{ cert = "{cert}", key = "{key}" }}
tag_field = "tag"

[inputs.local]
type = "forward"
unix = "{sock_path}"
tag_field = "tag"

[outputs.out]
type = "file"
inputs = ["tls", "local"]
path = "out.ndjson"
""")
    listening(port)
    ctx = ssl.create_default_context(cafile=str(cert))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = Client(sock=ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
    c.send(["over.tls", 1, {"n": 1}, {"chunk": "t"}])
    assert c.recv() == {"ack": "t"}
    wait_for(sock_path.exists, what="unix socket")
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(str(sock_path))
    uc = Client(sock=u)
    uc.send(["over.unix", 1, {"n": 2}, {"chunk": "u"}])
    assert uc.recv() == {"ack": "u"}
    assert sorted((e["tag"], e["n"]) for e in read_ndjson(tmp_path / "out.ndjson")) == [("over.tls", 1), ("over.unix", 2)]
    assert h.stop() == 0
