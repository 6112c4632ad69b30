"""End-to-end test helpers: run the real hbforward binary with a real config on loopback."""
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HBF = Path(os.environ.get("HBF_BIN", ROOT / "build" / "hbforward"))
DATA = ROOT / "tests" / "data"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def examples():
    """The project's HealthBot notification samples, tests/data/healthbot.jsonl, as text lines.

    A missing or empty file fails the calling test with a message."""
    path = DATA / "healthbot.jsonl"
    try:
        lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    except OSError as e:
        pytest.fail(f"test sample {path} cannot be read ({e}): it belongs to the repository (tests/data/)")
    if not lines:
        pytest.fail(f"test sample {path} holds no notification")
    return lines


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^"\s]+|\s+')


def compact(text):
    """JSON text without the whitespace between tokens; strings (and their escapes) stay as written."""
    return "".join(t for t in _JSON_TOKEN.findall(text) if not t.isspace())


def read_ndjson(path):
    p = Path(path)
    if not p.exists():
        return []
    text = p.read_text()
    # A running writer may be half-way through its last line: read complete lines only (a file
    # that ends without its newline then reads one event short, which a count still catches).
    text = text[: text.rfind("\n") + 1]
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Hbf:
    """One hbforward process. Its stderr goes to a file so a test can read the log."""

    def __init__(self, tmp, config_text, args=(), stdin=None, env=None, name="hbf"):
        self.tmp = Path(tmp)
        self.config = self.tmp / f"{name}.toml"
        self.config.write_text(config_text)
        self.log_path = self.tmp / f"{name}.log"
        self._log = open(self.log_path, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen([str(HBF), "run", "-c", str(self.config), *args], cwd=self.tmp,
                                     stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                     stderr=self._log, env=e)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, timeout=10.0):
        return wait_for(lambda: text in self.log() or (self.proc.poll() is not None and text in self.log()),
                        timeout, what=f"log line {text!r}; log so far:\n{self.log()}")

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"hbforward did not exit within {timeout}s; log:\n{self.log()}")

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def hbf(tmp_path):
    """Factory: hbf(config_text, ...) starts hbforward in tmp_path; all are killed at teardown."""
    started = []

    def start(config_text, **kw):
        h = Hbf(tmp_path, config_text, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.close()


def run_cli(*args, cwd=None, timeout=30, input=None):
    return subprocess.run([str(HBF), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input)
