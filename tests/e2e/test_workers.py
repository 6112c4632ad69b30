"""Filters with `workers`: successive batches of a file run through json and enrich on several
threads, and the file output still gets exactly the input's lines, in the input's order."""

from pathlib import Path

from conftest import run_cli, wait_for

PIPE = """
[service]
batch_events = {batch}

[inputs.f]
type = "file"
path = "{src}"

[filters.parse]
type = "json"
inputs = ["f"]
workers = {workers}

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = {{ collector = "edge-01" }}

[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
"""


def lines(n):
    # Sizes vary from line to line so batches take different times; every 997th is not JSON.
    out = []
    for i in range(n):
        if i % 997 == 500:
            out.append("not json %d" % i)
        else:
            out.append('{ "seq": %d, "pad": "%s" }' % (i, "x" * (i * 37 % 300)))
    return out


def test_a_file_through_filters_with_workers_comes_out_whole_and_in_order(hbf, tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(lines(40000)) + "\n")
    for workers, batch in ((2, 64), (4, 7)):
        out = tmp_path / "out.ndjson"
        if out.exists():
            out.unlink()
        h = hbf(PIPE.format(src=src, workers=workers, batch=batch))
        assert h.wait(120) == 0, h.log()
        got = out.read_text().splitlines()
        want = ['{"seq":%d,"pad":"%s","collector":"edge-01"}' % (i, "x" * (i * 37 % 300))
                for i in range(40000) if i % 997 != 500]
        assert len(got) == len(want), (workers, batch)
        assert got == want, (workers, batch)


def test_workers_on_a_stateful_filter_is_refused_by_validate(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.in]\ntype = "stdin"\n[filters.d]\ntype = "dedupe"\ninputs = ["in"]\nworkers = 2\n'
                   '[outputs.o]\ntype = "null"\ninputs = ["d"]\n')
    r = run_cli("validate", "-c", str(cfg))
    assert r.returncode != 0
    assert "filters.d cannot run on several workers: a dedupe filter keeps state from one batch to the next" in r.stdout + r.stderr


def test_threads_carry_their_stage_names(hbf, tmp_path):
    # top -H, ps -L and gdb show which stage a busy thread is: Linux keeps 15 bytes of a name.
    h = hbf("""
[inputs.gen]
type = "generate"
rate = 100
[filters.parse]
type = "json"
inputs = ["gen"]
workers = 2
[filters.a_filter_with_a_long_name]
type = "enrich"
inputs = ["parse"]
fields = { x = "y" }
[outputs.out]
type = "null"
inputs = ["parse", "a_filter_with_a_long_name"]
""")
    h.wait_log("running")

    def names():
        return {p.read_text().strip() for p in Path(f"/proc/{h.proc.pid}/task").glob("*/comm")}
    want = {"gen", "parse/1", "parse/2", "out", "a_filter_with_a"}  # a thread names itself as it starts
    wait_for(lambda: want <= names(), what=f"threads named {want}")
    assert h.stop() == 0, h.log()
