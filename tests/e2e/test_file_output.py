"""The file output and files rotated underneath it (logrotate, mv, rm), its own rotation with
background compression, and create_dirs."""
import gzip
import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, run_cli, wait_for
from hbhttp import listening
from test_disk_buffer import metric
from test_faults import post_events, webhook_to_file


def seqs_in(path):
    p = str(path)
    if p.endswith(".gz"):
        text = gzip.decompress(open(p, "rb").read()).decode()
    else:
        text = open(p).read()
    assert text == "" or text.endswith("\n"), f"{p} ends inside a line"
    return [json.loads(l)["seq"] for l in text.splitlines()]


def test_a_file_renamed_by_logrotate_is_reopened_and_no_event_lands_in_the_rotated_file(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out))
    listening(port)
    assert post_events(port, range(0, 50)) == 200
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"""{out} {{
    rotate 3
    create 0644
    missingok
}}
""")
    r = subprocess.run(["/usr/sbin/logrotate", "-f", "-s", str(tmp_path / "lr.state"), str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rotated = tmp_path / "out.ndjson.1"
    assert rotated.exists() and out.exists() and out.stat().st_size == 0
    assert post_events(port, range(50, 100)) == 200  # ack = delivered: written when answered
    assert seqs_in(rotated) == list(range(0, 50)), "an event went into the rotated-away file"
    assert seqs_in(out) == list(range(50, 100))
    assert h.stop() == 0, h.log()
    assert "was renamed or removed: writing to a new file there" in h.log()


def test_a_removed_file_is_recreated_at_the_next_batch_and_an_idle_one_within_seconds(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out))
    listening(port)
    assert post_events(port, range(0, 10)) == 200
    out.unlink()
    assert post_events(port, range(10, 20)) == 200
    assert seqs_in(out) == list(range(10, 20))
    # Idle: renamed with nothing more to write, the new file appears by the once-a-second check.
    out.rename(tmp_path / "moved.ndjson")
    wait_for(lambda: out.exists(), timeout=5, what="the file reopened while idle")
    assert seqs_in(tmp_path / "moved.ndjson") == list(range(10, 20))
    assert h.stop() == 0, h.log()


def rotating(port, api, out, rotate):
    return webhook_to_file(port, api, out) + f"rotate = {rotate}\n"


@pytest.mark.parametrize("codec,ext", [("gzip", ".gz"), ("zstd", ".zst"), ("none", "")])
def test_its_own_rotation_by_size_keeps_every_event_and_compresses_in_the_background(hbf, tmp_path, codec, ext):
    port, api = free_port(), free_port()
    out = tmp_path / "alarms.ndjson"
    h = hbf(rotating(port, api, out, f'{{ max_size = "20KiB", keep = 100, compress = "{codec}" }}'))
    listening(port)
    for i in range(0, 400, 10):  # ~450 bytes an event: a rotation every ~4 requests
        assert post_events(port, range(i, i + 10)) == 200
    def rotated():
        fs = sorted(p for p in tmp_path.glob("alarms.ndjson.2*") if not p.name.endswith(".tmp"))
        return fs if len(fs) >= 5 and all(p.name.endswith(ext) for p in fs) else None
    files = wait_for(rotated, timeout=20, what=f"rotated files compressed with {codec}")
    assert len(files) >= 5
    got = []
    for f in files:
        got += read_any(f)
    got += seqs_in(out)
    assert got == list(range(400)), "lost, duplicated or reordered across rotations"
    for f in files[:-1]:
        assert len(read_any(f)) >= 40  # ~20 KiB each
    assert h.stop() == 0, h.log()


def read_any(path):
    p = str(path)
    if p.endswith(".zst"):
        r = subprocess.run(["zstd", "-dc", p], capture_output=True)  # Debian's zstd(1)
        if r.returncode != 0:
            pytest.fail(f"zstd -dc {p}: {r.stderr.decode()}")
        text = r.stdout.decode()
        return [json.loads(l)["seq"] for l in text.splitlines()]
    return seqs_in(path)


def test_keep_deletes_the_oldest_rotated_files(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "alarms.ndjson"
    h = hbf(rotating(port, api, out, '{ max_size = "4KiB", keep = 2, compress = "gzip" }'))
    listening(port)
    for i in range(0, 200, 10):
        assert post_events(port, range(i, i + 10)) == 200
    wait_for(lambda: len(list(tmp_path.glob("alarms.ndjson.2*"))) == 2 and
             all(p.name.endswith(".gz") for p in tmp_path.glob("alarms.ndjson.2*")), timeout=20,
             what="two rotated files left")
    files = sorted(tmp_path.glob("alarms.ndjson.2*"))
    newest = read_any(files[0]) + read_any(files[1]) + seqs_in(out)
    assert newest == list(range(newest[0], 200)), "the files kept are not the newest"
    assert h.stop() == 0, h.log()


def test_rotation_by_age_rotates_an_idle_file(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "alarms.ndjson"
    h = hbf(rotating(port, api, out, '{ max_age = "2s" }'))
    listening(port)
    assert post_events(port, range(5)) == 200
    f = wait_for(lambda: list(tmp_path.glob("alarms.ndjson.2*")), timeout=8, what="a rotation by age")
    assert seqs_in(f[0]) == list(range(5))
    wait_for(out.exists, timeout=5, what="the new file after the rotation")  # renamed, then created: two steps
    assert out.stat().st_size == 0
    time.sleep(2.5)  # an empty file is not rotated
    assert len(list(tmp_path.glob("alarms.ndjson.2*"))) == 1
    assert h.stop() == 0, h.log()


def test_a_missing_directory_fails_at_start_unless_create_dirs(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "a" / "b" / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out))
    assert h.wait(20) != 0
    assert f"cannot open {out}: No such file or directory (create_dirs = true creates missing directories)" in h.log()
    port = free_port()
    h2 = hbf(webhook_to_file(port, api, out) + "create_dirs = true\n", name="h2")
    listening(port)
    assert post_events(port, range(3)) == 200
    assert seqs_in(out) == [0, 1, 2]
    assert h2.stop() == 0, h2.log()


def test_validate_reports_each_problem_of_rotate_with_its_position(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("""[inputs.gen]
type = "generate"
count = 1

[outputs.a]
type = "file"
inputs = ["gen"]
path = "a.ndjson"
rotate = { max_sise = "1MiB", compress = "xz" }

[outputs.b]
type = "file"
inputs = ["gen"]
path = "b-%Y.ndjson"
rotate = { max_size = "1MiB", keep = 0 }

[outputs.c]
type = "file"
inputs = ["gen"]
path = "c.ndjson"
rotate = {}
""")
    r = run_cli("validate", "-c", str(cfg))
    assert r.returncode == 1
    err = r.stderr + r.stdout
    assert f"{cfg}:9:" in err and "max_sise" in err and "max_size" in err, err
    assert "xz" in err and '"gzip"' in err, err
    assert "keep" in err and "at least 1" in err, err
    assert "rotate cannot be combined with a strftime pattern" in err, err
    assert "rotate needs max_size or max_age" in err, err


def test_many_concurrent_webhook_requests_land_once_each_in_per_connection_order(hbf, tmp_path):
    """32 keep-alive connections at once: the output takes several batches a pop and writes them
    with one writev; every request answered 200 is in the file once, whole, and each
    connection's requests in the order it sent them."""
    import http.client
    import threading
    port, api = free_port(), free_port()
    out = tmp_path / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out))
    listening(port)
    conns, per_conn = 32, 60
    answered = {c: [] for c in range(conns)}
    errors = []

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for s in range(per_conn):
                body = json.dumps({"conn": c, "seq": s, "pad": "y" * (50 + (c * 7 + s) % 300)})
                conn.request("POST", "/hb", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append((c, s, r.status))
                    return
                answered[c].append(s)
        except OSError as e:
            errors.append((c, repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client did not finish"
    assert h.stop() == 0, h.log()
    assert not errors, errors[:5]
    text = out.read_text()
    assert text.endswith("\n")
    got = {c: [] for c in range(conns)}
    for line in text.splitlines():
        e = json.loads(line)  # each line whole JSON
        got[e["conn"]].append(e["seq"])
    for c in range(conns):
        assert got[c] == list(range(per_conn)), f"connection {c}: lost, duplicated or reordered: {got[c][:20]}"


def thread_names(pid):
    names = []
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            names.append(comm.read_text().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


def test_the_periodic_fsync_runs_on_a_thread_of_its_own_while_events_are_written_and_not_when_idle(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out) + 'fsync_interval = "100ms"\n')
    listening(port)
    assert "out/sync" in thread_names(h.proc.pid)

    def fsyncs():
        return metric(api, "hbf_file_out_fsyncs_total") or 0

    time.sleep(0.3)
    assert fsyncs() == 0  # nothing written yet, nothing to sync
    for i in range(10):
        assert post_events(port, range(i * 10, i * 10 + 10)) == 200
        time.sleep(0.06)
    wait_for(lambda: fsyncs() >= 3, what="fsyncs every 100 ms while events are written")
    time.sleep(0.3)  # the last write's fsync
    idle = fsyncs()
    time.sleep(0.5)
    assert fsyncs() == idle  # nothing written since: no fsync
    assert seqs_in(out) == list(range(100))
    assert h.stop() == 0, h.log()


def test_with_fsync_interval_0_each_write_is_fsynced_on_the_output_thread_and_there_is_no_sync_thread(hbf, tmp_path):
    port, api = free_port(), free_port()
    out = tmp_path / "out.ndjson"
    h = hbf(webhook_to_file(port, api, out) + 'fsync_interval = "0s"\n')
    listening(port)
    assert post_events(port, range(20)) == 200
    assert "out/sync" not in thread_names(h.proc.pid)
    assert metric(api, "hbf_file_out_fsyncs_total") is None
    assert seqs_in(out) == list(range(20))
    assert h.stop() == 0, h.log()
