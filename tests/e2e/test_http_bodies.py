"""http input: every body form HealthBot and other senders use, and what lands in the output file."""
import gzip
import json
import socket

import pytest

from conftest import compact, examples, free_port
from hbhttp import listening, notification, pipeline, post, read_responses, seqs, stop_and_read


def test_http_each_body_form_is_accepted_and_written_compact(hbf):
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    accepted = []

    def send(body, ctype, expect_events, seq_list):
        st, _, reply = post(port, body, {"Content-Type": ctype})
        assert st == 200, (st, reply)
        assert reply == {"accepted": expect_events}
        accepted.extend(seq_list)

    # One compact object, as most senders write it.
    send(json.dumps(notification(1), separators=(",", ":")), "application/json", 1, [1])
    # Pretty-printed, sorted keys with ", " and ": " (HealthBot's Python serializer), charset parameter.
    send(json.dumps(notification(2), indent=2, sort_keys=True), "application/json; charset=utf-8", 1, [2])
    # A JSON array of objects: each element one event.
    send(json.dumps([notification(3), notification(4), notification(5)]), "application/json", 3, [3, 4, 5])
    # NDJSON, with a blank line and CRLF line ends.
    nd = json.dumps(notification(6)) + "\r\n\n" + json.dumps(notification(7)) + "\n"
    send(nd, "application/x-ndjson", 2, [6, 7])
    # An empty array is valid and holds no event.
    send("[]", "application/json", 0, [])
    # Gzip-compressed body.
    st, _, reply = post(port, gzip.compress(json.dumps([notification(8), notification(9)]).encode()),
                        {"Content-Encoding": "gzip"})
    assert (st, reply) == (200, {"accepted": 2})
    accepted += [8, 9]

    out = stop_and_read(h)
    assert seqs(out) == sorted(accepted)
    # The file holds each event compact and otherwise unchanged (escapes as the sender wrote them).
    raw = (h.tmp / "out.ndjson").read_text().splitlines()
    for line in raw:
        ev = json.loads(line)
        assert line == compact(line)
        assert ev == notification(ev["seq"])


def test_http_examples_roundtrip_byte_for_byte(hbf):
    """Every sample (quotes, backslashes, \\u escapes, UTF-8, legacy keys, 1 KB message) comes out as its compact form."""
    port = free_port()
    h = hbf(pipeline(port))
    listening(port)
    for line in examples():
        st, _, reply = post(port, line)
        assert (st, reply) == (200, {"accepted": 1})
    stop_and_read(h)
    got = (h.tmp / "out.ndjson").read_text().splitlines()
    want = [compact(l) for l in examples()]
    assert any("\\u00fc" in l for l in want) and any("é" in l for l in want)
    assert got == want


@pytest.mark.parametrize("on_error", ["drop", "pass", "wrap"])
def test_http_json_filter_output_is_the_same_whatever_its_on_error(hbf, on_error):
    """The http input validates and compacts; the json filter after it passes its batches on.
    Whatever json's on_error, valid bodies in every form come out as their compact text."""
    port = free_port()
    h = hbf(pipeline(port).replace('type = "json"', f'type = "json"\non_error = "{on_error}"'))
    listening(port)
    ex = examples()
    assert post(port, ex[0])[0] == 200
    assert post(port, "[" + ", ".join(ex[1:4]) + "]")[0] == 200
    assert post(port, "\n".join(ex[4:]) + "\n", {"Content-Type": "application/x-ndjson"})[0] == 200
    stop_and_read(h)
    assert (h.tmp / "out.ndjson").read_text().splitlines() == [compact(l) for l in ex]


def test_http_header_value_not_utf8_is_still_dropped_by_the_json_filter(hbf):
    """A copied header value is not validated by the input: invalid UTF-8 there makes the event
    invalid JSON. The input then does not mark its batch as validated, and json drops the event
    (counted, logged) as it did before the mark existed; the other batches pass."""
    port = free_port()
    h = hbf(pipeline(port, 'headers = ["X-Tag"]'))
    listening(port)

    def request(seq, tag):
        body = json.dumps(notification(seq)).encode()
        return (b"POST /healthbot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Tag: " + tag + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    with socket.create_connection(("127.0.0.1", port)) as s:
        for seq, tag in [(1, b"plain"), (2, b"caf\xe9"), (3, "caf\u00e9".encode())]:
            s.sendall(request(seq, tag))
            (status, _, reply), = read_responses(s, 1)
            assert (status, json.loads(reply)) == (200, {"accepted": 1})
    out = stop_and_read(h)
    assert [(e["seq"], e["x-tag"]) for e in out] == [(1, "plain"), (3, "caf\u00e9")]
    assert "invalid JSON event" in h.log()


def test_http_adds_path_headers_and_remote_address_on_request(hbf):
    port = free_port()
    opts = 'path_field = "http_path"\nheaders = ["X-Request-Id", "User-Agent"]\nremote_addr_field = "peer"\n'
    h = hbf(pipeline(port, opts).replace('paths = ["/healthbot"]', 'paths = ["/healthbot", "/hb2"]'))
    listening(port)
    st, _, _ = post(port, notification(1), {"X-Request-Id": "r-1", "User-Agent": "HealthBot"})
    assert st == 200
    st, _, _ = post(port, {}, {"User-Agent": "x\"y"}, path="/hb2?token=1")
    assert st == 200
    out = stop_and_read(h)
    assert len(out) == 2
    assert out[0]["http_path"] == "/healthbot" and out[0]["x-request-id"] == "r-1"
    assert out[0]["user-agent"] == "HealthBot" and out[0]["peer"] == "127.0.0.1"
    assert out[0]["seq"] == 1
    assert out[1] == {"http_path": "/hb2", "user-agent": "x\"y", "peer": "127.0.0.1"}
