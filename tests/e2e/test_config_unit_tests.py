"""`hbforward test -c FILE`: the config's [[tests]] run through its own filters, nothing started."""
import socket
from pathlib import Path

from conftest import ROOT, run_cli

ROUTING = """
[inputs.hook]
type = "http"
address = "127.0.0.1:{port}"
[filters.parse]
type = "json"
inputs = ["hook"]
[filters.route]
type = "route"
inputs = ["parse"]
[filters.route.routes]
major = '.severity == "major"'
[outputs.kafka]
type = "kafka"
inputs = ["route.major"]
brokers = "127.0.0.1:1"
topic = "t"
[outputs.rest]
type = "file"
inputs = ["route._unmatched"]
path = "rest.ndjson"
"""

PASSING = """
[[tests]]
name = "major goes to kafka"
[[tests.inputs]]
insert_at = "parse"
value = '{"device-id":"mx1","severity":"major"}'
[[tests.outputs]]
extract_from = "route.major"
count = 1
conditions = ['.severity == "major"']
[[tests.outputs]]
extract_from = "rest"
count = 0

[[tests]]
name = "log_fields build the event"
[[tests.inputs]]
insert_at = "hook"
log_fields = { "device-id" = "mx2", severity = "minor", hops = [1, 2] }
[[tests.outputs]]
extract_from = "rest"
count = 1
conditions = ['.hops[1] == 2', '.device-id == "mx2"']
"""


def write(tmp_path, text, name="t.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_passing_tests_exit_0_without_starting_inputs_or_outputs(tmp_path):
    # The webhook's port is taken and the broker unreachable: nothing may start.
    busy = taken_port()
    cfg = write(tmp_path, ROUTING.format(port=busy.getsockname()[1]) + PASSING)
    r = run_cli("test", "-c", str(cfg), cwd=tmp_path, timeout=20)
    busy.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test major goes to kafka ... passed" in r.stdout
    assert "test log_fields build the event ... passed" in r.stdout
    assert r.stdout.rstrip().endswith("2 passed, 0 failed")
    assert not (tmp_path / "rest.ndjson").exists()


def test_failures_name_each_test_and_what_differed(tmp_path):
    failing = """
[[tests]]
name = "a minor alarm wrongly expected on the kafka route"
[[tests.inputs]]
insert_at = "parse"
value = '{"device-id":"mx1","severity":"minor"}'
[[tests.outputs]]
extract_from = "route.major"
count = 1

[[tests]]
name = "a condition that does not hold"
[[tests.inputs]]
insert_at = "parse"
value = '{"device-id":"mx1","severity":"major"}'
[[tests.outputs]]
extract_from = "kafka"
conditions = ['.device-id == "mx9"']
"""
    cfg = write(tmp_path, ROUTING.format(port=1) + PASSING + failing)
    r = run_cli("test", "-c", str(cfg), cwd=tmp_path, timeout=20)
    assert r.returncode == 1
    out = r.stdout
    assert "test major goes to kafka ... passed" in out
    assert f"test a minor alarm wrongly expected on the kafka route ... FAILED ({cfg}:" in out
    assert "    route.major: expected 1 event, got 0" in out
    assert "test a condition that does not hold ... FAILED" in out
    assert "    kafka: event 1 does not satisfy '.device-id == \"mx9\"': {\"device-id\":\"mx1\",\"severity\":\"major\"}" in out
    assert out.rstrip().endswith("2 passed, 2 failed")


def test_test_reports_mistakes_in_tests_with_positions_and_validate_accepts_tests(tmp_path):
    cfg = write(tmp_path, ROUTING.format(port=1) + PASSING)
    r = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    bad = """
[[tests]]
name = "mistakes"
[[tests.inputs]]
insert_at = "prase"
value = '{}'
[[tests.outputs]]
extract_from = "route.mjaor"
count = 1
conditon = ['.a == 1']
[[tests.outputs]]
extract_from = "rest"
conditions = ['.severity === "major"']
"""
    cfg = write(tmp_path, ROUTING.format(port=1) + bad, "bad.toml")
    assert run_cli("validate", "-c", str(cfg), cwd=tmp_path).returncode == 0  # validate leaves [[tests]] to test
    r = run_cli("test", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr
    base = len(ROUTING.format(port=1).splitlines())
    assert f"bad.toml:{base + 5}:13: test 'mistakes' input 1: insert_at names no stage: 'prase' (did you mean 'parse'?)" in lines
    assert f"bad.toml:{base + 8}:16: test 'mistakes' output 1: 'route.mjaor' names no port of route; its ports: major, _unmatched" in lines
    assert f"bad.toml:{base + 10}:1: unknown option 'conditon' in test 'mistakes' output 1 (did you mean 'conditions'?)" in lines
    assert "test 'mistakes': invalid condition" in lines
    assert "no test ran" in lines


def test_a_config_without_tests_is_an_error_for_test(tmp_path):
    cfg = write(tmp_path, ROUTING.format(port=1))
    r = run_cli("test", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1 and "no [[tests]] to run" in r.stderr


def test_the_shipped_configs_pass_their_own_tests():
    for f in ["conf/hbforward.toml", "conf/severity-routing.toml", "packaging/hbforward.toml"]:
        r = run_cli("test", "-c", str(ROOT / f), cwd=ROOT, timeout=30)
        assert r.returncode == 0, f"{f}:\n{r.stdout}{r.stderr}"
        assert ", 0 failed" in r.stdout
