"""The http input over TLS: a self-signed certificate made by the openssl CLI, requests by curl."""
import json
import socket
import subprocess
import time

from conftest import examples, free_port, read_ndjson, wait_for
from hbhttp import listening, pipeline, post

CURL = "/usr/bin/curl"


def make_cert(d, name="server"):
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_opts(cert, key):
    return f'tls = {{ cert = "{cert}", key = "{key}" }}'


def curl_post(port, cert, body, *extra):
    """(status, body) of one HTTPS POST by curl, checking the server against cert."""
    r = subprocess.run([CURL, "-sS", "--cacert", str(cert), "-H", "Content-Type: application/json", "--data-binary", "@-",
                        "-w", "\n%{http_code}", *extra, f"https://127.0.0.1:{port}/healthbot"],
                       input=body.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    text, _, code = r.stdout.decode().rpartition("\n")
    return int(code), text


def test_http_tls_posts_over_https_reach_the_output(hbf, tmp_path):
    cert, key = make_cert(tmp_path)
    port = free_port()
    h = hbf(pipeline(port, tls_opts(cert, key)))
    h.wait_log("with TLS")
    ex = examples()
    for i, line in enumerate(ex):
        code, body = curl_post(port, cert, line)
        assert (code, json.loads(body)) == (200, {"accepted": 1}), (i, body)
    # Several requests on one kept-alive TLS connection (curl reuses it across URLs).
    r = subprocess.run([CURL, "-sS", "--cacert", str(cert), "-H", "Content-Type: application/json",
                        "--data-binary", json.dumps({"device-id": "ka", "seq": 1}), "-w", "%{http_code} %{num_connects}\n",
                        "-o", "/dev/null", f"https://127.0.0.1:{port}/healthbot", "--next", "--cacert", str(cert),
                        "-H", "Content-Type: application/json", "--data-binary", json.dumps({"device-id": "ka", "seq": 2}),
                        "-w", "%{http_code} %{num_connects}\n", "-o", "/dev/null", f"https://127.0.0.1:{port}/healthbot"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["200 1", "200 0"], r.stdout  # the second request made no new connection
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == len(ex) + 2, what="every event in the output")
    got = read_ndjson(tmp_path / "out.ndjson")
    assert got[:len(ex)] == [json.loads(l) for l in ex]
    assert [e["seq"] for e in got[len(ex):]] == [1, 2]
    # The certificate is checked: curl without --cacert refuses the self-signed server.
    r = subprocess.run([CURL, "-sS", "-d", "{}", f"https://127.0.0.1:{port}/healthbot"], capture_output=True, timeout=30)
    assert r.returncode == 60, r.stderr  # CURLE_PEER_FAILED_VERIFICATION
    assert h.stop() == 0


def test_http_tls_port_refuses_plain_http_and_broken_handshakes_without_crashing(hbf, tmp_path):
    cert, key = make_cert(tmp_path)
    port = free_port()
    h = hbf(pipeline(port, tls_opts(cert, key) + '\nread_timeout = "1s"'))
    listening(port)
    # Plain HTTP: a plain 400 that says to use https, and nothing queued.
    status, _, body = post(port, {"device-id": "plain"})
    assert status == 400 and "https" in body["error"], (status, body)
    # A handshake cut off after its first bytes, and garbage that starts like a TLS record.
    for junk in (b"\x16\x03\x01\x00", b"\x16\x03\x03\x00\x05hello" + b"\x00" * 64):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            assert s.recv(4096) is not None  # the server closes (an alert or EOF), it does not hang
    # A client that connects and never starts its handshake is closed after read_timeout.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t0 = time.time()
        assert s.recv(4096) == b""
        assert time.time() - t0 < 5
    assert h.proc.poll() is None
    code, body = curl_post(port, cert, json.dumps({"device-id": "after", "seq": 9}))
    assert code == 200, body
    wait_for(lambda: read_ndjson(tmp_path / "out.ndjson"), what="the https event")
    assert [e["device-id"] for e in read_ndjson(tmp_path / "out.ndjson")] == ["after"]
    log = h.log()
    assert "refused a plain-HTTP connection on the TLS port" in log and "TLS handshake failed" in log, log
    assert h.stop() == 0


def test_http_tls_bad_files_fail_at_start_with_a_clear_message(hbf, tmp_path):
    cert, key = make_cert(tmp_path)
    other_cert, other_key = make_cert(tmp_path, "other")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases = [
        (tls_opts(cert, tmp_path / "missing.key"), f"tls.key: cannot read {tmp_path / 'missing.key'}: No such file or directory"),
        (tls_opts(tmp_path / "missing.pem", key), "tls.cert: cannot read"),
        (tls_opts(cert, other_key), f"tls.key: {other_key} does not match the certificate in {cert}"),
        (tls_opts(not_pem, key), f"tls.cert: {not_pem} is not a PEM certificate"),
        (tls_opts(cert, not_pem), f"tls.key: {not_pem} is not a PEM private key"),
        (f'tls = {{ cert = "{cert}" }}', "tls needs both cert and key"),
    ]
    for i, (opts, message) in enumerate(cases):
        h = hbf(pipeline(free_port(), opts), name=f"bad{i}")
        rc = h.wait(30)
        assert rc != 0 and message in h.log(), (opts, rc, h.log())
