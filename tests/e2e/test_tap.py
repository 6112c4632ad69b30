"""`hbforward tap STAGE`: the events a running stage emits, through the API server."""
import json
import subprocess
import urllib.request

from conftest import HBF, free_port, run_cli, wait_for

PIPELINE = """
[service]
api_address = "127.0.0.1:{api}"
[inputs.gen]
type = "generate"
rate = {rate}
sequence_field = "seq"
[filters.parse]
type = "json"
inputs = ["gen"]
[filters.route]
type = "route"
inputs = ["parse"]
[filters.route.routes]
major = '.severity == "major"'
[outputs.majors]
type = "null"
inputs = ["route.major"]
[outputs.rest]
type = "null"
inputs = ["route._unmatched"]
"""


def start(hbf, rate=300):
    api = free_port()
    h = hbf(PIPELINE.format(api=api, rate=rate))
    h.wait_log("running")
    return h, f"127.0.0.1:{api}"


def tap(addr, *args, timeout=20):
    r = subprocess.run([str(HBF), "tap", *args, "-a", addr], capture_output=True, text=True, timeout=timeout)
    return r, [json.loads(l) for l in r.stdout.splitlines()]


def test_tap_prints_what_a_stage_emits_one_json_a_line_and_stops_at_the_limit(hbf):
    h, addr = start(hbf)
    r, events = tap(addr, "parse", "--limit", "20")
    assert r.returncode == 0, r.stderr
    assert len(events) == 20
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and all("device-id" in e for e in events)


def test_where_filters_and_a_port_or_an_output_can_be_tapped(hbf):
    h, addr = start(hbf)
    r, events = tap(addr, "parse", "--limit", "10", "--where", '.severity == "major"')
    assert r.returncode == 0, r.stderr
    assert len(events) == 10 and all(e["severity"] == "major" for e in events)
    r, events = tap(addr, "route._unmatched", "--limit", "10")
    assert r.returncode == 0 and len(events) == 10 and all(e["severity"] != "major" for e in events)
    # An output emits nothing: its tap is what it receives.
    r, events = tap(addr, "majors", "--limit", "10")
    assert r.returncode == 0 and len(events) == 10 and all(e["severity"] == "major" for e in events)


def test_unknown_stage_port_or_condition_is_an_error(hbf):
    h, addr = start(hbf)
    r, _ = tap(addr, "nope")
    assert r.returncode == 1
    assert "tap: unknown stage 'nope'; running stages: gen, parse, route, majors, rest" in r.stderr
    r, _ = tap(addr, "route.minor")
    assert r.returncode == 1 and "'route.minor' names no port of route; its ports: major, _unmatched" in r.stderr
    r, _ = tap(addr, "parse", "--where", ".severity === 1")
    assert r.returncode == 1 and "invalid --where condition" in r.stderr
    r, _ = tap(f"127.0.0.1:{free_port()}", "parse")
    assert r.returncode == 1 and "cannot reach hbforward's API" in r.stderr


def test_under_load_tap_samples_and_says_how_much_it_skipped(hbf):
    h, addr = start(hbf, rate=0)  # as fast as the generator goes
    r, events = tap(addr, "parse", "--limit", "3000", timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(events) == 3000
    assert "events skipped (sampling under load)" in r.stderr
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] > 3000  # a sample, in order


def test_a_finished_tap_is_removed_and_an_abandoned_one_expires(hbf):
    h, addr = start(hbf)
    body = json.dumps({"stage": "parse"}).encode()
    req = urllib.request.Request(f"http://{addr}/tap", data=body, method="POST")
    tid = json.loads(urllib.request.urlopen(req, timeout=5).read())["id"]
    first = urllib.request.urlopen(f"http://{addr}/tap/{tid}", timeout=5).read().decode().splitlines()
    assert json.loads(first[0]).keys() == {"skipped", "gone"}
    urllib.request.urlopen(urllib.request.Request(f"http://{addr}/tap/{tid}", method="DELETE"), timeout=5).read()
    try:
        urllib.request.urlopen(f"http://{addr}/tap/{tid}", timeout=5)
        raise AssertionError("a deleted tap still answers")
    except urllib.error.HTTPError as e:
        assert e.code == 404
