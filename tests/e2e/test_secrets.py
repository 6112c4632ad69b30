"""Secrets from files: ${file:/path} beside ${ENV}, as systemd's LoadCredential= provides them."""
import base64

from conftest import free_port, run_cli
from hbhttp import listening, notification, pipeline, post, seqs, stop_and_read


def test_a_password_from_a_file_guards_the_webhook(hbf, tmp_path):
    (tmp_path / "pw").write_text("s3cret-from-file\n")  # the trailing newline is not part of it
    port = free_port()
    h = hbf(pipeline(port, f'auth = {{ type = "basic", username = "healthbot", password = "${{file:{tmp_path}/pw}}" }}'))
    listening(port)
    good = "Basic " + base64.b64encode(b"healthbot:s3cret-from-file").decode()
    bad = "Basic " + base64.b64encode(b"healthbot:s3cret-from-file\n").decode()
    assert post(port, notification(1), {"Authorization": good})[0] == 200
    assert post(port, notification(2), {"Authorization": bad})[0] == 401
    assert seqs(stop_and_read(h)) == [1]


def test_an_unreadable_secret_file_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "nope"
    cfg = tmp_path / "c.toml"
    cfg.write_text(pipeline(free_port(), f'auth = {{ type = "bearer", token = "${{file:{missing}}}" }}'))
    r = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert f"cannot read {missing}: No such file or directory (use ${{file:{missing}:-default}} for a default)" in r.stderr
    # A string option names itself; a default applies when the file cannot be read.
    cfg.write_text(f"""
[inputs.in]
type = "stdin"
[outputs.out]
type = "file"
inputs = ["in"]
path = "${{file:{missing}}}"
""")
    r = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 1 and f"cannot read {missing} used by option 'path': No such file or directory" in r.stderr
    (tmp_path / "outpath").write_text("from-file.ndjson\n")
    cfg.write_text(f"""
[inputs.in]
type = "stdin"
[outputs.out]
type = "file"
inputs = ["in"]
path = "${{file:{tmp_path}/outpath}}"
[outputs.other]
type = "file"
inputs = ["in"]
path = "${{file:{missing}:-fallback.ndjson}}"
""")
    r = run_cli("run", "-c", str(cfg), cwd=tmp_path, input='{"a":1}\n')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "from-file.ndjson").read_text() == '{"a":1}\n'
    assert (tmp_path / "fallback.ndjson").read_text() == '{"a":1}\n'
