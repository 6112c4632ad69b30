"""End-to-end: the filters of stages/filters/ in the real binary, stdin -> json -> ... -> file outputs."""
import json
import subprocess

from conftest import examples, read_ndjson


def run_with_stdin(hbf, tmp_path, config, lines):
    h = hbf(config, stdin=subprocess.PIPE)
    h.proc.stdin.write(("\n".join(lines) + "\n").encode())
    h.proc.stdin.close()
    assert h.wait(30) == 0, h.log()
    return h


def lines_of(path):
    return path.read_text().splitlines()


def test_route_splits_major_and_unmatched_into_two_files(hbf, tmp_path):
    config = """
[inputs.in]
type = "stdin"

[filters.parse]
type = "json"
inputs = ["in"]

[filters.r]
type = "route"
inputs = ["parse"]
[filters.r.routes]
major = '.severity in ["major", "critical"]'
info = '.severity == "normal"'

[outputs.all]
type = "file"
inputs = ["parse"]
path = "all.ndjson"

[outputs.major]
type = "file"
inputs = ["r.major"]
path = "major.ndjson"

[outputs.rest]
type = "file"
inputs = ["r._unmatched"]
path = "rest.ndjson"
"""
    run_with_stdin(hbf, tmp_path, config, examples())
    every = lines_of(tmp_path / "all.ndjson")
    assert len(every) == len(examples()) == 12
    sev = [json.loads(l).get("severity") for l in every]
    # Byte for byte: each route file holds exactly its events, in input order.
    assert lines_of(tmp_path / "major.ndjson") == [l for l, s in zip(every, sev) if s in ("major", "critical")]
    assert lines_of(tmp_path / "rest.ndjson") == [l for l, s in zip(every, sev) if s not in ("major", "critical", "normal")]
    assert len(lines_of(tmp_path / "major.ndjson")) == 7 and len(lines_of(tmp_path / "rest.ndjson")) == 4


def test_select_then_dedupe_passes_each_open_alarm_once(hbf, tmp_path):
    config = """
[inputs.in]
type = "stdin"

[filters.parse]
type = "json"
inputs = ["in"]

[filters.open]
type = "select"
inputs = ["parse"]
drop_where = '.severity == "normal"'

[filters.once]
type = "dedupe"
inputs = ["open"]
window = "5m"

[outputs.all]
type = "file"
inputs = ["parse"]
path = "all.ndjson"

[outputs.out]
type = "file"
inputs = ["once"]
path = "out.ndjson"
"""
    ex = examples()
    run_with_stdin(hbf, tmp_path, config, ex + ex + ex)  # at-least-once delivery, three times over
    every = lines_of(tmp_path / "all.ndjson")
    assert len(every) == 3 * len(ex)
    want = [l for l in every[:len(ex)] if json.loads(l)["severity"] != "normal"]
    assert lines_of(tmp_path / "out.ndjson") == want
    assert len(want) == 11


def test_fields_and_lookup_tag_events_with_site(hbf, tmp_path):
    (tmp_path / "devices.csv").write_text('device-id,site,region\nmx304-pe1.fra,"Amsterdam, AMS1",eu-west\n')
    config = """
[inputs.in]
type = "stdin"

[filters.f]
type = "fields"
inputs = ["in"]
rename = { "keys._playbook_name" = "playbook" }
parse_json = ["keys._instance_id"]

[filters.site]
type = "lookup"
inputs = ["f"]
file = "devices.csv"
key = "device-id"
on_missing = "default"
default = { site = "unknown" }

[outputs.out]
type = "file"
inputs = ["site"]
path = "out.ndjson"
"""
    run_with_stdin(hbf, tmp_path, config, examples()[:3])
    out = read_ndjson(tmp_path / "out.ndjson")
    assert [o["site"] for o in out] == ["Amsterdam, AMS1", "Amsterdam, AMS1", "unknown"]
    assert [o.get("region") for o in out] == ["eu-west", "eu-west", None]
    assert out[0]["playbook"] == "interface-kpis-playbook" and out[0]["keys"]["_instance_id"] == ["pe-intf"]
    assert "_playbook_name" not in out[0]["keys"]
