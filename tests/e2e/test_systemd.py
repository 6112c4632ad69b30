"""Running under systemd: sd_notify (READY, RELOADING, STOPPING, the watchdog), journal logging,
and the man page the package installs. systemd itself is played by a datagram socket in
NOTIFY_SOCKET and a JOURNAL_STREAM naming stderr's file, as systemd sets them."""
import os
import re
import signal
import socket
import subprocess
import time

from conftest import HBF, Hbf, free_port, run_cli, wait_for

WEBHOOK = """
[service]
shutdown_timeout = "5s"
[inputs.hook]
type = "http"
address = "127.0.0.1:{port}"
[filters.parse]
type = "json"
inputs = ["hook"]
[outputs.out]
type = "file"
inputs = ["parse"]
path = "out.ndjson"
"""


class NotifySocket:
    """What systemd listens on for a Type=notify service."""

    def __init__(self, tmp):
        self.path = str(tmp / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []

    def next(self, want, timeout=10.0):
        """Messages up to and including the first holding the line `want`; fails on timeout."""
        end = time.time() + timeout
        got = []
        while time.time() < end:
            self.sock.settimeout(max(0.01, end - time.time()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            got.append(msg)
            self.seen.append(msg)
            if want in msg.split("\n"):
                return got
        raise AssertionError(f"no {want!r} within {timeout}s; received {got!r}")

    def close(self):
        self.sock.close()


def test_ready_only_once_every_stage_runs_then_reloading_ready_and_stopping(tmp_path, hbf):
    ns = NotifySocket(tmp_path)
    port = free_port()
    h = hbf(WEBHOOK.format(port=port), env={"NOTIFY_SOCKET": ns.path})
    msgs = ns.next("READY=1")
    assert len(msgs) == 1 and "STATUS=running" in msgs[0]
    # READY means the webhook is already listening.
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    h.signal(signal.SIGHUP)
    msgs = ns.next("READY=1")
    assert "RELOADING=1" in msgs[0].split("\n"), msgs
    assert any(l.startswith("MONOTONIC_USEC=") for l in msgs[0].split("\n"))
    assert "config generation 2" in msgs[-1]
    h.signal(signal.SIGTERM)
    ns.next("STOPPING=1")
    assert h.wait() == 0
    ns.close()


def test_a_stage_that_cannot_start_sends_no_ready(tmp_path, hbf):
    ns = NotifySocket(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    h = hbf(WEBHOOK.format(port=taken.getsockname()[1]), env={"NOTIFY_SOCKET": ns.path})
    assert h.wait() == 1
    ns.sock.settimeout(0.2)
    msgs = []
    try:
        while True:
            msgs.append(ns.sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert not any("READY=1" in m for m in msgs), msgs
    taken.close()
    ns.close()


def test_watchdog_is_pinged_at_half_its_interval_only_when_asked(tmp_path, hbf):
    ns = NotifySocket(tmp_path)
    h = hbf(WEBHOOK.format(port=free_port()), env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    ns.next("READY=1")
    start = time.time()
    ns.next("WATCHDOG=1", timeout=2)
    ns.next("WATCHDOG=1", timeout=2)
    ns.next("WATCHDOG=1", timeout=2)
    elapsed = time.time() - start
    assert elapsed < 2.0, elapsed  # three pings at about 200 ms apart
    h.stop()
    ns.close()
    # Without WATCHDOG_USEC: READY, then nothing until STOPPING.
    sub = tmp_path / "nowd"
    sub.mkdir()
    ns = NotifySocket(sub)
    h2 = Hbf(sub, WEBHOOK.format(port=free_port()), env={"NOTIFY_SOCKET": ns.path})
    try:
        ns.next("READY=1")
        ns.sock.settimeout(0.6)
        try:
            extra = ns.sock.recv(4096).decode()
        except socket.timeout:
            extra = ""
        assert "WATCHDOG=1" not in extra
        h2.stop()
    finally:
        h2.close()
        ns.close()


def test_journal_stream_drops_the_timestamp_and_prefixes_the_priority(tmp_path, hbf):
    log = tmp_path / "hbf.log"
    log.write_bytes(b"")
    st = os.stat(log)
    h = hbf(WEBHOOK.format(port=free_port()), env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    h.wait_log("running")
    h.stop()
    lines = [l for l in h.log().splitlines() if l]
    assert lines, h.log()
    for l in lines:
        assert re.match(r"^<[2-7]>(trace|debug|info|warn|error|critical) *\[", l), l
    assert any(l.startswith("<6>info  [hbforward] hbforward ") for l in lines), lines


def test_a_journal_stream_naming_another_file_keeps_timestamps(tmp_path, hbf):
    # A child of a service that redirected its stderr inherits JOURNAL_STREAM: it must not apply.
    h = hbf(WEBHOOK.format(port=free_port()), env={"JOURNAL_STREAM": "1:1"})
    h.wait_log("running")
    h.stop()
    first = h.log().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info ", first), first


def test_man_page_lists_every_command_and_stage_and_renders_cleanly(tmp_path):
    r = run_cli("manpage")
    assert r.returncode == 0, r.stderr
    page = r.stdout
    assert page.startswith(".TH HBFORWARD 1 ")
    for cmd in ("run", "validate", "stages", "top", "dev\\-broker", "test", "tap"):
        assert f".SS hbforward {cmd}" in page, cmd
    assert "\\-\\-watch\\-config" in page
    stages = run_cli("stages").stdout
    for kind, typ in re.findall(r"^(input|filter|output) ([a-z_]+):", stages, re.M):
        assert f".SS {kind} {typ}\n" in page, (kind, typ)
    assert "manpage" not in run_cli("--help").stdout  # a build tool, not a user command
    (tmp_path / "hbforward.1").write_text(page)
    g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "hbforward.1")], capture_output=True, text=True, timeout=30)
    assert g.returncode == 0 and g.stderr == "", g.stderr
