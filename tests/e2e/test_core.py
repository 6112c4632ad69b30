"""The core, end to end: the real binary with generate, stdin and file inputs and file outputs."""
import json
import os
import re
import signal
import subprocess
import time

from conftest import HBF, examples, read_ndjson, run_cli, wait_for

PIPE = """
[inputs.gen]
type = "generate"
count = {count}
seed = 3

[filters.parse]
type = "json"
inputs = ["gen"]

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = {{ collector = "edge-01" }}

[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
"""


def test_generate_to_file_writes_exactly_count_events(hbf, tmp_path):
    h = hbf(PIPE.format(count=25000))
    assert h.wait(60) == 0, h.log()
    events = read_ndjson(tmp_path / "out.ndjson")
    assert len(events) == 25000
    assert all(e["collector"] == "edge-01" for e in events)
    assert {e["severity"] for e in events} == {"major", "minor", "normal"}


def test_a_lingering_output_keeps_up_with_many_small_batches(hbf, tmp_path):
    """`linger` waits only after a take that was small and did not fill the take's array: one-event
    batches (batch_events = 1) arriving faster than one take per linger must not pile up behind
    it. Lingering after every take of 32 such batches would need 6400 / 32 x 50 ms = 10 s to drain
    here, past the 3 s the input's end gives the output, and the run would end with exit 1."""
    cfg = ('[service]\nbatch_events = 1\nlinger = "50ms"\nshutdown_timeout = "3s"\n'
           '[inputs.gen]\ntype = "generate"\ncount = 6400\nseed = 3\n'
           '[outputs.out]\ntype = "file"\ninputs = ["gen"]\npath = "out.ndjson"\n')
    h = hbf(cfg)
    assert h.wait(60) == 0, h.log()
    assert len(read_ndjson(tmp_path / "out.ndjson")) == 6400


def test_stdin_to_file_is_byte_exact(tmp_path):
    lines = examples() * 300 + ['{"n": %d, "text": "caf\u00e9 \\"q\\" \\\\ end"}' % i for i in range(2000)]
    data = ("\n".join(lines) + "\n").encode()
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.in]\ntype = "stdin"\n[outputs.out]\ntype = "file"\ninputs = ["in"]\npath = "out.ndjson"\n')
    p = subprocess.run([str(HBF), "run", "-c", str(cfg)], cwd=tmp_path, input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert (tmp_path / "out.ndjson").read_bytes() == data


def test_stdout_output_writes_ndjson(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.in]\ntype = "stdin"\n[filters.p]\ntype = "json"\ninputs = ["in"]\n'
                   '[outputs.out]\ntype = "stdout"\ninputs = ["p"]\n')
    data = "\n".join(examples()) + "\n"
    p = subprocess.run([str(HBF), "run", "-c", str(cfg)], cwd=tmp_path, input=data, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    got = [json.loads(l) for l in p.stdout.splitlines()]
    assert got == [json.loads(l) for l in examples()]


def test_sigterm_during_a_run_loses_nothing_that_was_read(hbf, tmp_path):
    h = hbf(PIPE.format(count=0).replace("seed = 3", "seed = 3\nrate = 50000"))
    h.wait_log("running")
    time.sleep(1.5)
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0, h.log()
    made = int(re.search(r"generated (\d+) events", h.log()).group(1))
    assert made > 10000
    assert len(read_ndjson(tmp_path / "out.ndjson")) == made


def test_sigterm_while_reading_a_file_writes_a_prefix_of_it(hbf, tmp_path):
    src = tmp_path / "in.ndjson"
    lines = [json.dumps({"n": i, "device-id": "mx%d" % (i % 50), "pad": "x" * 300}) for i in range(300000)]
    src.write_text("\n".join(lines) + "\n")
    h = hbf(f'[inputs.f]\ntype = "file"\npath = "{src}"\n[filters.p]\ntype = "json"\ninputs = ["f"]\n'
            '[outputs.o]\ntype = "file"\ninputs = ["p"]\npath = "out.ndjson"\n')
    h.wait_log("running")
    h.signal(signal.SIGTERM)
    assert h.wait(30) == 0, h.log()
    out = read_ndjson(tmp_path / "out.ndjson")
    assert [e["n"] for e in out] == list(range(len(out)))


def test_sigterm_stops_a_file_input_before_the_end_and_logs_the_byte(hbf, tmp_path):
    # The output is a FIFO this test reads slowly, so backpressure holds the input near the start
    # of its file when SIGTERM comes: it must stop there, not read the other 40 MB first.
    src = tmp_path / "in.ndjson"
    data = "".join(json.dumps({"n": i, "pad": "x" * 200}) + "\n" for i in range(200000)).encode()
    src.write_bytes(data)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(r, True)
    got = bytearray()
    try:
        h = hbf(f'[inputs.f]\ntype = "file"\npath = "{src}"\n[outputs.o]\ntype = "file"\ninputs = ["f"]\npath = "{fifo}"\n')
        while len(got) < (1 << 20):
            got += os.read(r, 65536)
        h.signal(signal.SIGTERM)
        while chunk := os.read(r, 1 << 20):  # the output drains what was read, then the process exits
            got += chunk
    finally:
        os.close(r)
    assert h.wait(30) == 0, h.log()
    m = re.search(r"stopped reading \S+ at byte (\d+) of (\d+)", h.log())
    assert m, h.log()
    assert int(m.group(2)) == len(data) and int(m.group(1)) < len(data) // 2
    assert bytes(got) == data[:int(m.group(1))]  # exactly the lines before that byte, once each
    assert "error" not in h.log(), h.log()  # a FIFO has nothing to fsync: no failure


def test_fan_out_gives_every_output_every_event_and_fan_in_merges(hbf, tmp_path):
    h = hbf("""
[inputs.a]
type = "generate"
count = 3000
seed = 1
[inputs.b]
type = "generate"
count = 2000
seed = 2
[filters.p]
type = "json"
inputs = ["a", "b"]
[outputs.one]
type = "file"
inputs = ["p"]
path = "one.ndjson"
[outputs.two]
type = "file"
inputs = ["p"]
path = "two.ndjson"
""")
    assert h.wait(60) == 0, h.log()
    one = (tmp_path / "one.ndjson").read_text().splitlines()
    two = (tmp_path / "two.ndjson").read_text().splitlines()
    assert len(one) == 5000
    assert sorted(one) == sorted(two)


def test_a_broken_config_exits_1_with_file_line_col_messages(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[inputs.gen]\ntype = "generate"\ncount = "ten"\n[outputs.o]\ntype = "fiel"\ninputs = ["gen"]\n')
    r = run_cli("run", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert f"{cfg}:3:9: option 'count' in inputs.gen must be an integer, not a string" in r.stderr
    assert f"{cfg}:5:8: unknown output type 'fiel' in outputs.o (did you mean 'file'?)" in r.stderr
    v = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert v.returncode == 1
    assert "2 errors" in v.stderr


def test_validate_accepts_the_shipped_configs():
    conf = HBF.parents[1] / "conf"
    for f in sorted(conf.glob("*.toml")):
        r = run_cli("validate", "-c", str(f), cwd=conf.parent)
        assert r.returncode == 0, (f, r.stderr)


def test_a_stage_that_fails_at_start_stops_the_process_with_exit_1(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.gen]\ntype = "generate"\ncount = 10\n[outputs.o]\ntype = "file"\ninputs = ["gen"]\n'
                   'path = "/proc/hbforward-cannot-write-here/out.ndjson"\n')
    r = run_cli("run", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert "stage 'o' (output file) failed to start: cannot open /proc/hbforward-cannot-write-here/out.ndjson" in r.stderr


def test_stages_lists_every_type_with_options_and_version_prints():
    r = run_cli("stages")
    assert r.returncode == 0
    for t in ["input generate", "input stdin", "input file", "filter json", "filter enrich", "output file", "output null"]:
        assert t in r.stdout
    assert re.search(r"count\s+integer\s+default 0", r.stdout)
    v = run_cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("hbforward ")


def test_log_level_flag_overrides_the_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nlog_level = "error"\n' + PIPE.format(count=10))
    r = run_cli("run", "-c", str(cfg), "--log-level", "debug", cwd=tmp_path)
    assert r.returncode == 0
    assert "debug" in r.stderr


def test_json_log_format_writes_one_object_a_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nlog_format = "json"\n' + PIPE.format(count=10))
    r = run_cli("run", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 0
    recs = [json.loads(l) for l in r.stderr.splitlines() if l.strip()]
    assert any(rec["stage"] == "gen" and "generated 10 events" in rec["msg"] for rec in recs)


def test_file_input_follows_rotation_and_resumes_from_its_checkpoint(hbf, tmp_path):
    log = tmp_path / "hb.ndjson"
    cfg = (f'[service]\ndata_dir = "{tmp_path}/state"\n[inputs.tail]\ntype = "file"\npath = "{log}"\nfollow = true\n'
           'poll_interval = "50ms"\n[outputs.o]\ntype = "file"\ninputs = ["tail"]\npath = "out.ndjson"\n')
    ex = examples()
    log.write_text("\n".join(ex[:4]) + "\n")
    h = hbf(cfg)
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 4, what="the first 4 lines")
    with open(log, "a") as f:
        f.write(ex[4] + "\n" + ex[5][:40])  # the second line is not finished yet
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 5, what="the 5th line")
    with open(log, "a") as f:
        f.write(ex[5][40:] + "\n")
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 6, what="the completed 6th line")
    os.rename(log, tmp_path / "hb.ndjson.1")  # rotate
    log.write_text(ex[6] + "\n")
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 7, what="the line of the new file")
    assert h.stop() == 0
    # Restart: nothing is read twice, and what was appended meanwhile is picked up.
    with open(log, "a") as f:
        f.write(ex[7] + "\n")
    h2 = hbf(cfg)
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == 8, what="the line appended while stopped")
    time.sleep(0.3)
    assert h2.stop() == 0
    got = [json.dumps(e, sort_keys=True) for e in read_ndjson(tmp_path / "out.ndjson")]
    want = [json.dumps(json.loads(l), sort_keys=True) for l in ex[:8]]
    assert got == want


def test_an_output_that_cannot_write_makes_the_exit_code_1(tmp_path):
    cfg = tmp_path / "c.toml"
    # The file output retries a failed write until the shutdown timeout, then reports it failed.
    cfg.write_text('[service]\nshutdown_timeout = "1s"\n[inputs.in]\ntype = "stdin"\n'
                   '[outputs.o]\ntype = "file"\ninputs = ["in"]\npath = "/dev/full"\n')
    p = subprocess.run([str(HBF), "run", "-c", str(cfg)], cwd=tmp_path, input="\n".join(examples()) + "\n",
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "write to /dev/full failed: No space left on device; retrying until it succeeds" in p.stderr
    assert "write to /dev/full failed: No space left on device; gave up at the shutdown timeout" in p.stderr


def test_validate_reports_graph_errors_and_option_semantics_together(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.i]\ntype = "stdin"\n[filters.s]\ntype = "select"\ninputs = ["nope"]\nwhere = ".severity = 1"\n'
                   '[outputs.o]\ntype = "null"\ninputs = ["s"]\n')
    r = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert f"{cfg}:5:11: filters.s reads from unknown stage 'nope'" in r.stderr
    assert f"{cfg}:6:20: invalid condition in 'where': column 11: '=' is not an operator (did you mean '=='?)" in r.stderr
    assert "2 errors" in r.stderr


def test_a_failed_batch_is_counted_and_the_file_checkpoint_moves_past_it(hbf, tmp_path):
    import urllib.request
    from conftest import free_port
    api = free_port()
    src = tmp_path / "hb.ndjson"
    src.write_text("\n".join(examples()[:3]) + "\n")
    # stdout into /dev/full: the stdout output reports each write failed at once (the file output
    # would retry).
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[service]\napi_address = "127.0.0.1:{api}"\ndata_dir = "{tmp_path}/state"\n'
                   f'[inputs.tail]\ntype = "file"\npath = "{src}"\nfollow = true\npoll_interval = "50ms"\n'
                   '[outputs.o]\ntype = "stdout"\ninputs = ["tail"]\n')
    full = open("/dev/full", "w")
    log = open(tmp_path / "hbf.log", "w")
    proc = subprocess.Popen([str(HBF), "run", "-c", str(cfg)], cwd=tmp_path, stdout=full, stderr=log)

    class H:
        def log(self):
            return (tmp_path / "hbf.log").read_text()

        def wait_log(self, text):
            wait_for(lambda: text in self.log(), what=text)

        def stop(self):
            proc.terminate()
            return proc.wait(30)
    h = H()

    def undelivered():
        text = urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith('hbf_file_undelivered_batches_total{stage="tail"}'):
                return float(line.split()[-1]) >= 1
        return False

    h.wait_log("running")
    wait_for(undelivered, what="the failed batch in the metrics")
    h.wait_log("was not delivered")
    assert h.stop() == 0
    ckpt = (tmp_path / "state" / "file-tail.checkpoint").read_text().split()
    assert int(ckpt[1]) == src.stat().st_size
