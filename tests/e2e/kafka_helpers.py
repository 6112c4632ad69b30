"""Helpers for the Kafka end-to-end tests: a dev broker (the real `hbforward dev-broker`) and kcat."""
import json
import os
import subprocess
import time

import pytest

from conftest import HBF

KCAT = "/usr/bin/kcat"


class DevBroker:
    """`hbforward dev-broker --port 0`, controlled through its stdin ("down 1", "up 1")."""

    def __init__(self, topics="", brokers=1):
        args = [str(HBF), "dev-broker", "--port", "0", "--brokers", str(brokers)]
        if topics:
            args += ["--topics", topics]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("bootstrap "), f"dev-broker said {line!r}: {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.bootstrap = line.split()[1]
        self.proc.stdout.readline()  # "brokers ..."

    def control(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        assert reply.startswith("ok"), reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def broker():
    if os.environ.get("HBF_E2E_NO_KAFKA"):
        # .ci/run's ThreadSanitizer stage: librdkafka starts its threads with C11 thrd_create, which
        # the TSan runtime does not intercept, so a TSan build crashes in the first one.
        pytest.skip(f"HBF_E2E_NO_KAFKA: {os.environ['HBF_E2E_NO_KAFKA']}")
    b = DevBroker()
    yield b
    b.close()


def topics(bootstrap):
    """{topic: partition count} from the broker's metadata."""
    out = subprocess.run([KCAT, "-b", bootstrap, "-L", "-J"], capture_output=True, text=True, timeout=20, check=True).stdout
    return {t["topic"]: len(t["partitions"]) for t in json.loads(out)["topics"]}


def consume(bootstrap, topic, fmt="%s\\n", timeout=20):
    """Every message of a topic from the beginning, as kcat prints them with `fmt`."""
    out = subprocess.run([KCAT, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt],
                         capture_output=True, timeout=timeout, check=True).stdout
    return out


def end_offsets(bootstrap, topic, partitions):
    """Sum of the partitions' high watermarks (kcat -Q), for counts the mock cannot keep in full."""
    total = 0
    for p in range(partitions):
        out = subprocess.run([KCAT, "-b", bootstrap, "-Q", "-t", f"{topic}:{p}:-1"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
        total += int(out.strip().split()[-1])
    return total


def produce(bootstrap, topic, lines, key_sep=None):
    """Produces text lines with kcat -P (one message a line; with key_sep, 'key<sep>value')."""
    args = [KCAT, "-b", bootstrap, "-P", "-t", topic]
    if key_sep:
        args += ["-K", key_sep]
    subprocess.run(args, input="".join(l + "\n" for l in lines).encode(), timeout=30, check=True)


def wait_lines(path, n, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                got = f.read().count(b"\n")
            if got >= n:
                return got
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {n} lines after {timeout}s")
