"""The syslog input against the real senders on every Linux box: util-linux's `logger` and rsyslogd
(omfwd, TCP and UDP), plus raw sockets for Junos structured data, TLS and malformed messages."""
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, read_ndjson, wait_for
from test_ops import get, samples, stage_value

LOGGER = "/usr/bin/logger"
RSYSLOGD = "/usr/sbin/rsyslogd"


def config(port, mode="tcp", opts="", api=0):
    return f"""
[service]
log_level = "info"
api_address = "{f'127.0.0.1:{api}' if api else ''}"

[inputs.sl]
type = "syslog"
address = "127.0.0.1:{port}"
mode = "{mode}"
{opts}

[outputs.out]
type = "file"
inputs = ["sl"]
path = "out.ndjson"
"""


def started(h, port, mode="tcp"):
    h.wait_log(f"listening for syslog on {mode} 127.0.0.1:{port}")


def events(tmp_path, n, timeout=10):
    return wait_for(lambda: (lambda e: e if len(e) >= n else None)(read_ndjson(tmp_path / "out.ndjson")), timeout,
                    what=f"{n} events in out.ndjson")


def logger(port, *args):
    subprocess.run([LOGGER, "-n", "127.0.0.1", "-P", str(port), *args], check=True, timeout=10)


def test_syslog_tcp_from_logger_rfc5424_octet_counted_lf_framed_and_rfc3164(hbf, tmp_path):
    port = free_port()
    h = hbf(config(port))
    started(h, port)
    logger(port, "--tcp", "--rfc5424", "--octet-count", "-t", "rpd", "--msgid", "SNMP_TRAP_LINK_DOWN", "-p", "local4.warning",
           "--sd-id", "junos@2636.1.1.1.2.57", "--sd-param", 'snmp-interface-index="545"', "--sd-param", 'interface-name="xe-0/1/4"',
           "xe-0/1/4 is down")
    logger(port, "--tcp", "--rfc5424", "-t", "mgd", "--id=4242", "lf framed")
    logger(port, "--tcp", "--rfc3164", "-t", "sshd", "--id=77", "-p", "auth.info", "bsd style")
    ev = events(tmp_path, 3)
    a, b, c = ev
    assert a["facility"] == "local4" and a["severity"] == "warning"
    assert a["app_name"] == "rpd" and a["msgid"] == "SNMP_TRAP_LINK_DOWN" and a["message"] == "xe-0/1/4 is down"
    assert a["structured_data"]["junos@2636.1.1.1.2.57"] == {"snmp-interface-index": "545", "interface-name": "xe-0/1/4"}
    assert a["hostname"] == socket.gethostname()
    assert a["timestamp"].startswith(time.strftime("%Y-"))
    assert b["app_name"] == "mgd" and b["procid"] == "4242" and b["message"] == "lf framed" and b["severity"] == "notice"
    assert c == {"facility": "auth", "severity": "info", "timestamp": c["timestamp"], "hostname": socket.gethostname(),
                 "app_name": "sshd", "procid": "77", "message": "bsd style"}
    assert c["timestamp"].endswith("Z")  # TZ is unset here: the local zone is UTC


def test_a_udp_syslog_input_shares_its_port_with_a_tcp_input_and_a_reload_does_not_stop_one_for_the_other(hbf, tmp_path):
    """A UDP and a TCP socket on one port do not conflict: both inputs start, and a reload that
    changes the syslog input and removes the tcp one does not make the new syslog input wait for
    the tcp input (only for its own old version, which holds its UDP socket)."""
    port = free_port()
    both = f"""
[service]
log_level = "info"
[inputs.sl]
type = "syslog"
address = "127.0.0.1:{port}"
mode = "udp"
[inputs.t]
type = "tcp"
address = "127.0.0.1:{port}"
[outputs.out]
type = "file"
inputs = ["sl", "t"]
path = "out.ndjson"
"""
    h = hbf(both)
    started(h, port, "udp")
    h.wait_log(f"listening on 127.0.0.1:{port} for NDJSON lines")
    logger(port, "--udp", "--rfc5424", "-t", "rpd", "over udp")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b'{"over": "tcp"}\n')
    ev = events(tmp_path, 2)
    assert {e.get("message", e.get("over")) for e in ev} == {"over udp", "tcp"}
    h.config.write_text(both.replace('inputs = ["sl", "t"]', 'inputs = ["sl"]')
                        .replace(f'[inputs.t]\ntype = "tcp"\naddress = "127.0.0.1:{port}"\n', "")
                        .replace('mode = "udp"', 'mode = "udp"\nmax_line = 4096'))
    h.signal(signal.SIGHUP)
    h.wait_log("reloaded")
    assert "[sl] stopping before its new version starts" in h.log()
    assert "[t] stopping before its new version starts" not in h.log()
    logger(port, "--udp", "--rfc5424", "-t", "rpd", "after the reload")
    assert events(tmp_path, 3)[-1]["message"] == "after the reload"
    assert h.stop() == 0


def test_syslog_udp_from_logger_both_formats(hbf, tmp_path):
    port = free_port()
    h = hbf(config(port, "udp"))
    started(h, port, "udp")
    logger(port, "--udp", "--rfc5424", "-t", "a5424", "udp five")
    logger(port, "--udp", "--rfc3164", "-t", "a3164", "udp three")
    ev = sorted(events(tmp_path, 2), key=lambda e: e["app_name"])
    assert [(e["app_name"], e["message"]) for e in ev] == [("a3164", "udp three"), ("a5424", "udp five")]
    assert "timeQuality" in ev[1]["structured_data"]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_syslog_from_rsyslog_omfwd_rfc5424(hbf, tmp_path, proto):
    port, rs_port = free_port(), free_port()
    h = hbf(config(port, proto))
    started(h, port, proto)
    framing = ' TCP_Framing="octet-counted"' if proto == "tcp" else ""
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}")
module(load="imtcp")
input(type="imtcp" port="{rs_port}" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="{proto}" template="RSYSLOG_SyslogProtocol23Format"{framing})
""")
    rs = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")], cwd=tmp_path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", rs_port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, what="rsyslogd listening")
        for i in range(20):
            logger(rs_port, "--tcp", "--rfc5424", "-t", "relayed", "--sd-id", "junos@2636.1.1.1.2.57", "--sd-param", f'n="{i}"',
                   f"message {i}")
        ev = events(tmp_path, 20)
    finally:
        rs.terminate()
        rs.wait(10)
    assert sorted(int(e["structured_data"]["junos@2636.1.1.1.2.57"]["n"]) for e in ev) == list(range(20))
    assert all(e["app_name"] == "relayed" and e["message"] == f"message {e['structured_data']['junos@2636.1.1.1.2.57']['n']}" for e in ev)
    assert all("parse_error" not in e for e in ev)


def test_syslog_junos_structured_data_and_escapes(hbf, tmp_path):
    port = free_port()
    h = hbf(config(port))
    started(h, port)
    msg = ('<30>1 2026-11-29T15:00:00.123+01:00 mx480-pe2.ams mgd 12345 UI_COMMIT_COMPLETED '
           '[junos@2636.1.1.1.2.57 username="admin" comment="change \\"ge-0\\" \\]ok\\]"] commit complete')
    with socket.create_connection(("127.0.0.1", port)) as s:
        data = msg.encode()
        s.sendall(f"{len(data)} ".encode() + data)
    (e,) = events(tmp_path, 1)
    assert e == {"facility": "daemon", "severity": "info", "timestamp": "2026-11-29T15:00:00.123+01:00", "hostname": "mx480-pe2.ams",
                 "app_name": "mgd", "procid": "12345", "msgid": "UI_COMMIT_COMPLETED",
                 "structured_data": {"junos@2636.1.1.1.2.57": {"username": "admin", "comment": 'change "ge-0" ]ok]'}},
                 "message": "commit complete"}


def test_syslog_malformed_messages_are_kept_counted_and_never_stop_the_input(hbf, tmp_path):
    port, uport, api = free_port(), free_port(), free_port()
    cfg = config(port, "tcp", 'max_line = "200"', api=api) + f"""
[inputs.su]
type = "syslog"
address = "127.0.0.1:{uport}"
mode = "udp"
max_line = "200"
"""
    cfg = cfg.replace('inputs = ["sl"]', 'inputs = ["sl", "su"]')
    h = hbf(cfg)
    started(h, port)
    started(h, uport, "udp")
    bad = [b"no pri at all", b"<999>1 - - - - - - too big", b"<13>1 not-a-time h a p m - x", b"<13>1 - h a p m [broken",
           b"<13>1 - h a p m [id k=\"v\"]oops", b"<abc>x", b"<13>1 - h a p m - \xff\xfe bad utf8 \xc0\xaf"]
    with socket.create_connection(("127.0.0.1", port)) as s:
        for m in bad:
            s.sendall(m + b"\n")
        s.sendall(b"\n\r\n")                        # empty lines: nothing
        s.sendall(b"<13>" + b"x" * 500 + b"\n")     # longer than max_line: dropped, counted
        s.sendall(b"<13>1 - h - - - - after the junk\n")
        s.sendall(b"999999 <13>" + b"y" * 300)      # an octet count over max_line: skipped (to the end here)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"<13>" + b"z" * 300, ("127.0.0.1", uport))
    u.sendto(b"\x00\x01\x02 binary", ("127.0.0.1", uport))
    u.sendto(b"<13>1 - h - - - - udp ok\n", ("127.0.0.1", uport))
    u.close()
    ev = events(tmp_path, len(bad) + 3)
    time.sleep(0.3)
    ev = read_ndjson(tmp_path / "out.ndjson")
    errors = [e for e in ev if "parse_error" in e]
    assert len(errors) == len(bad)  # the bad-UTF-8 one parses; the binary datagram does not
    assert all(set(e) == {"message", "parse_error"} for e in errors)
    assert {e["message"] for e in errors} >= {"no pri at all", "<999>1 - - - - - - too big", "\x00\x01\x02 binary"}
    assert sorted(e["message"] for e in ev if "parse_error" not in e) == sorted(
        ["after the junk", "udp ok", "\ufffd\ufffd bad utf8 \ufffd\ufffd"])
    m = samples(get(api, "/metrics")[1])
    assert stage_value(m, "hbf_syslog_parse_errors_total", "sl") == len(bad) - 1  # the bad-UTF-8 one parses
    assert stage_value(m, "hbf_syslog_parse_errors_total", "su") == 1
    assert stage_value(m, "hbf_events_dropped_total", "sl", reason="too_long") == 2
    assert stage_value(m, "hbf_events_dropped_total", "su", reason="too_long") == 1
    assert "kept a message that is not syslog" in h.log()
    assert "longer than max_line" in h.log()
    assert h.proc.poll() is None


def test_syslog_rfc3164_time_in_the_local_zone_or_the_timezone_option(hbf, tmp_path):
    port = free_port()
    h = hbf(config(port), env={"TZ": "Europe/Amsterdam"}, name="tz")
    started(h, port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"<13>Nov 29 15:04:05 mx1 rpd: winter\n<13>Jul  1 15:04:05 mx1 rpd: summer\n")
    ev = events(tmp_path, 2)
    year = time.gmtime().tm_year
    stamps = {e["message"]: e["timestamp"] for e in ev}
    # July is "this year" unless that is more than half a year away from today.
    assert stamps["winter"].endswith("-11-29T15:04:05+01:00")
    assert stamps["summer"].endswith("-07-01T15:04:05+02:00")
    assert str(year) in stamps["winter"] or str(year - 1) in stamps["winter"] or str(year + 1) in stamps["winter"]
    h.stop()
    (tmp_path / "out.ndjson").unlink()
    port2 = free_port()
    h2 = hbf(config(port2, opts='timezone = "-05:30"'), name="fixed")
    started(h2, port2)
    with socket.create_connection(("127.0.0.1", port2)) as s:
        s.sendall(b"<13>Nov 29 15:04:05 mx1 rpd: fixed\n")
    (e,) = events(tmp_path, 1)
    assert e["timestamp"].endswith("-11-29T15:04:05-05:30")


def test_syslog_over_tls_and_max_connections(hbf, tmp_path):
    from test_http_tls import make_cert
    cert, key = make_cert(tmp_path)
    port = free_port()
    h = hbf(config(port, opts=f'tls = {{ cert = "{cert}", key = "{key}" }}\nmax_connections = 2'))
    started(h, port)
    ctx = ssl.create_default_context(cafile=str(cert))
    conns = []
    for i in range(2):
        raw = socket.create_connection(("127.0.0.1", port))
        conns.append(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
    for i, c in enumerate(conns):
        m = f"<13>1 - h tls - - - over tls {i}".encode()
        c.sendall(f"{len(m)} ".encode() + m)
    ev = events(tmp_path, 2)
    assert sorted(e["message"] for e in ev) == ["over tls 0", "over tls 1"]
    # A third connection is over max_connections: closed at once.
    third = socket.create_connection(("127.0.0.1", port))
    third.settimeout(5)
    assert third.recv(10) == b""
    third.close()
    for c in conns:
        c.close()
    assert "max_connections (2) reached" in h.log()
    # Plain text on the TLS port: a failed handshake, logged, the input carries on. Until the
    # input has seen the two closes, a new connection is still over max_connections: try again.
    deadline = time.time() + 10
    while "TLS handshake with" not in h.log() and time.time() < deadline:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"<13>1 - h - - - - plain\n")
            s.settimeout(5)
            try:
                s.recv(100)
            except OSError:
                pass
        time.sleep(0.2)
    h.wait_log("TLS handshake with")
    assert h.proc.poll() is None


def test_syslog_bad_options_fail_with_clear_messages(tmp_path):
    from conftest import run_cli
    for opts, text in [('mode = "sctp"', 'mode must be "tcp" or "udp"'),
                       ('address = "nowhere"', "address must be host:port"),
                       ('mode = "udp"\ntls = { cert = "a", key = "b" }', 'tls applies to mode = "tcp" only'),
                       ('timezone = "Mars/Olympus"', 'timezone must be "local", "UTC" or an offset like "+01:00"')]:
        cfg = tmp_path / "bad.toml"
        cfg.write_text(f'[inputs.sl]\ntype = "syslog"\n{opts}\n[outputs.o]\ntype = "null"\ninputs = ["sl"]\n')
        r = run_cli("validate", "-c", str(cfg))
        assert r.returncode != 0
        assert text in r.stdout + r.stderr, r.stdout + r.stderr
