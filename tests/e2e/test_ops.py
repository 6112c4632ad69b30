"""Operating hbforward: /health, /metrics, /pipeline, hot reload, `top`, logging."""
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import HBF, examples, free_port, read_ndjson, wait_for


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} from Prometheus text, parsed by prometheus_client."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def stage_value(m, name, stage, **labels):
    for (n, ls), v in m.items():
        d = dict(ls)
        if n == name and d.get("stage") == stage and all(d.get(k) == val for k, val in labels.items()):
            return v
    return None


STDIN_PIPE = """
[service]
api_address = "127.0.0.1:{port}"
[inputs.in]
type = "stdin"
[filters.parse]
type = "json"
inputs = ["in"]
[outputs.out]
type = "file"
inputs = ["parse"]
path = "out.ndjson"
"""


def test_health_metrics_and_pipeline_match_the_events_sent(hbf, tmp_path):
    port = free_port()
    h = hbf(STDIN_PIPE.format(port=port), stdin=subprocess.PIPE)
    h.wait_log("running")
    assert get(port, "/health") == (200, '{"status":"ok","generation":1}')
    good = examples() * 50
    bad = ["{not json", '{"a": tru}', "[1, 2]"]
    h.proc.stdin.write(("\n".join(good + bad) + "\n").encode())
    h.proc.stdin.flush()
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == len(good), what="events in the file")
    code, text = get(port, "/metrics")
    assert code == 200
    m = samples(text)
    assert stage_value(m, "hbf_events_in_total", "parse") == len(good) + len(bad)
    assert stage_value(m, "hbf_events_out_total", "parse") == len(good)
    assert stage_value(m, "hbf_events_dropped_total", "parse", reason="invalid_json") == len(bad)
    assert stage_value(m, "hbf_events_out_total", "out") == len(good)
    assert stage_value(m, "hbf_queue_capacity_events", "out") == 16384
    assert stage_value(m, "hbf_batch_latency_seconds_count", "out") >= 1
    assert m[("hbf_config_generation", frozenset())] == 1
    assert m[("process_resident_memory_bytes", frozenset())] > 1e6
    assert m[("process_open_fds", frozenset())] > 3
    assert ("hbf_build_info", frozenset({("version", "0.1.0")})) in m
    code, body = get(port, "/pipeline")
    p = json.loads(body)
    stages = {s["name"]: s for s in p["stages"]}
    assert stages["parse"]["inputs"] == ["in"] and stages["parse"]["dropped"] == len(bad)
    assert stages["out"]["events_out"] == len(good)
    assert get(port, "/nope")[0] == 404
    assert post(port, "/health")[0] == 405
    h.proc.stdin.close()
    assert h.wait(30) == 0


def test_health_reports_a_degraded_stage_with_its_reason(hbf, tmp_path):
    port = free_port()
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    h = hbf(f"""
[service]
api_address = "127.0.0.1:{port}"
[inputs.gen]
type = "generate"
rate = 1000
[outputs.out]
type = "file"
inputs = ["gen"]
path = "{outdir}/%S/out.ndjson"
create_dirs = true
""")
    h.wait_log("running")
    assert get(port, "/health")[0] == 200
    shutil.rmtree(outdir)
    outdir.write_text("now a file, so the next second's directory cannot be made")
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(port, "/health")), what="503 from /health")
    j = json.loads(body)
    assert j["status"] == "degraded"  # it keeps retrying: not failed for good
    assert j["stages"][0]["stage"] == "out" and "cannot open" in j["stages"][0]["reason"]
    assert "Not a directory (retrying for" in j["stages"][0]["reason"]
    outdir.unlink()  # the directory can be made again: back to ok by itself
    wait_for(lambda: get(port, "/health")[0] == 200, what="200 from /health after recovery")


RELOAD_A = """
[service]
api_address = "127.0.0.1:{port}"
[inputs.gen]
type = "generate"
rate = 4000
sequence_field = "seq"
[filters.parse]
type = "json"
inputs = ["gen"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = {{ version = "a" }}
[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
"""

# Removes the filter `parse`, changes an option of `tag`, adds the output `audit`.
RELOAD_B = """
[service]
api_address = "127.0.0.1:{port}"
[inputs.gen]
type = "generate"
rate = 4000
sequence_field = "seq"
[filters.tag]
type = "enrich"
inputs = ["gen"]
fields = {{ version = "b" }}
[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
[outputs.audit]
type = "file"
inputs = ["gen"]
path = "audit.ndjson"
"""


def test_reload_adds_removes_and_changes_stages_without_losing_or_duplicating(hbf, tmp_path):
    port = free_port()
    h = hbf(RELOAD_A.format(port=port))
    h.wait_log("running")
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) > 2000, what="events before the reload")
    (tmp_path / "hbf.toml").write_text(RELOAD_B.format(port=port))
    code, body = post(port, "/reload")
    assert code == 200, body
    assert json.loads(body)["summary"].startswith("config generation 2: 2 stages kept, 2 started, 2 stopped")
    wait_for(lambda: len(read_ndjson(tmp_path / "audit.ndjson")) > 2000, what="events into the new output")
    assert get(port, "/health")[0] == 200
    m = samples(get(port, "/metrics")[1])
    assert m[("hbf_config_generation", frozenset())] == 2
    stages = {s["name"] for s in json.loads(get(port, "/pipeline")[1])["stages"]}
    assert stages == {"gen", "tag", "out", "audit"}
    assert h.stop() == 0
    out = read_ndjson(tmp_path / "out.ndjson")
    seqs = [e["seq"] for e in out]
    assert sorted(seqs) == list(range(len(seqs))), "an event was lost or duplicated on the unchanged path"
    versions = [e["version"] for e in sorted(out, key=lambda e: e["seq"])]
    assert versions[0] == "a" and versions[-1] == "b"
    assert versions == sorted(versions), "every event after the switch went through the new filter"
    audit = [e["seq"] for e in read_ndjson(tmp_path / "audit.ndjson")]
    assert audit == list(range(audit[0], len(seqs)))


def test_a_broken_reload_keeps_the_old_pipeline_running(hbf, tmp_path):
    port = free_port()
    h = hbf(RELOAD_A.format(port=port))
    h.wait_log("running")
    (tmp_path / "hbf.toml").write_text(RELOAD_A.format(port=port).replace('type = "enrich"', 'type = "enrichh"')
                                       .replace("rate = 4000", "rate = 4000\nrat = 1"))
    code, body = post(port, "/reload")
    assert code == 400
    err = json.loads(body)["error"]
    assert "hbf.toml:7:1: unknown option 'rat' in inputs.gen (did you mean 'rate'?)" in err
    assert "unknown filter type 'enrichh'" in err
    h.signal(signal.SIGHUP)
    h.wait_log("reload of")
    assert "unknown option 'rat'" in h.log()
    n = len(read_ndjson(tmp_path / "out.ndjson"))
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) > n + 500, what="events still flowing")
    assert get(port, "/health")[0] == 200
    m = samples(get(port, "/metrics")[1])
    assert m[("hbf_config_generation", frozenset())] == 1
    assert m[("hbf_config_reloads_total", frozenset({("result", "invalid")}))] == 2
    assert h.stop() == 0


def test_sighup_and_watch_config_reload(hbf, tmp_path):
    port = free_port()
    h = hbf(RELOAD_A.format(port=port), args=["--watch-config"])
    h.wait_log("running")
    (tmp_path / "hbf.toml").write_text(RELOAD_B.format(port=port))
    h.wait_log("config generation 2", timeout=10)
    time.sleep(0.6)
    (tmp_path / "hbf.toml").write_text(RELOAD_A.format(port=port))
    h.signal(signal.SIGHUP)
    h.wait_log("config generation 3", timeout=10)
    assert h.stop() == 0


def test_sigusr2_from_outside_changes_nothing(hbf, tmp_path):
    # hbforward wakes its own main thread with SIGUSR2 when a stage finishes; one sent from outside
    # must neither end the process (SIGUSR2's default action) nor stop or reload the pipeline.
    port = free_port()
    h = hbf(RELOAD_A.format(port=port))
    h.wait_log("running")
    for _ in range(3):
        h.signal(signal.SIGUSR2)
    n = len(read_ndjson(tmp_path / "out.ndjson"))
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) > n + 500, what="events still flowing")
    assert h.proc.poll() is None
    assert get(port, "/health")[0] == 200
    assert samples(get(port, "/metrics")[1])[("hbf_config_generation", frozenset())] == 1
    assert h.stop() == 0
    seqs = [e["seq"] for e in read_ndjson(tmp_path / "out.ndjson")]
    assert seqs == list(range(1, len(seqs) + 1)) or seqs == list(range(len(seqs)))


def test_top_shows_every_stage_under_tmux_and_quits_on_q(hbf, tmp_path):
    port = free_port()
    h = hbf(RELOAD_A.format(port=port))
    h.wait_log("running")
    session = f"hbftop{port}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    f"{HBF} top -a 127.0.0.1:{port}"], check=True)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        def tag_rate(s):
            rows = [l.split() for l in s.splitlines() if l.startswith("tag ")]
            return rows and rows[0][3].isdigit() and int(rows[0][3]) > 1000

        shot = wait_for(lambda: (lambda s: s if "generation 1" in s and tag_rate(s) else None)(screen()),
                        timeout=10, what="top's screen with the rates")
        for want in ["STAGE", "IN/s", "OUT/s", "QUEUE", "gen", "parse", "tag", "out", "q: quit"]:
            assert want in shot
        row = [l for l in shot.splitlines() if l.startswith("tag ")][0].split()
        assert row[1:3] == ["filter", "enrich"]
        assert 2000 < int(row[3]) < 8000 and 2000 < int(row[4]) < 8000  # about the generator's 4000/s
        assert "%" in row[-1]
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0,
                 timeout=5, what="top to quit")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_reloading_a_changed_webhook_input_keeps_every_accepted_event(hbf, tmp_path):
    import http.client
    import threading

    port, api = free_port(), free_port()
    conf = """
[service]
api_address = "127.0.0.1:{api}"
[inputs.hb]
type = "http"
address = "127.0.0.1:{port}"
paths = {paths}
[outputs.out]
type = "file"
inputs = ["hb"]
path = "out.ndjson"
"""
    h = hbf(conf.format(api=api, port=port, paths='["/healthbot"]'))
    h.wait_log("listening on")
    accepted, stop = [], threading.Event()

    def client():
        n = 0
        while not stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                while not stop.is_set():
                    body = json.dumps({"n": n})
                    c.request("POST", "/healthbot", body, {"Content-Type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        accepted.append(n)
                    n += 1
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # the old listener closed: connect again

    t = threading.Thread(target=client)
    t.start()
    try:
        wait_for(lambda: len(accepted) > 200, what="requests before the reload")
        (tmp_path / "hbf.toml").write_text(conf.format(api=api, port=port, paths='["/healthbot", "/hb2"]'))
        code, body = post(api, "/reload")
        assert code == 200, body
        before = len(accepted)
        wait_for(lambda: len(accepted) > before + 200, what="requests after the reload")
    finally:
        stop.set()
        t.join(10)
    assert h.stop() == 0
    got = sorted(e["n"] for e in read_ndjson(tmp_path / "out.ndjson"))
    assert got == sorted(accepted), "every request that got 200 is in the file, once"
