"""`hbforward validate` means it will start: every problem of every stage at once, TLS files read
and checked, librdkafka settings checked as the client would, durations in compound form."""
import subprocess

from conftest import run_cli


def validate(tmp_path, text):
    cfg = tmp_path / "v.toml"
    cfg.write_text(text)
    r = run_cli("validate", "-c", str(cfg), cwd=tmp_path)
    return r, str(cfg)


def make_cert(d, name):
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def http_with_tls(cert, key, name="h"):
    return f'[inputs.{name}]\ntype = "http"\naddress = "127.0.0.1:0"\ntls = {{ cert = "{cert}", key = "{key}" }}\n'


OUT = '[outputs.o]\ntype = "null"\ninputs = ["h"]\n'


def test_tls_files_are_read_and_checked(tmp_path):
    cert, key = make_cert(tmp_path, "a")
    r, _ = validate(tmp_path, http_with_tls(cert, key) + OUT)
    assert r.returncode == 0, r.stderr

    r, cfg = validate(tmp_path, http_with_tls(tmp_path / "missing.pem", key) + OUT)
    assert r.returncode == 1
    assert f"{cfg}:4:7: tls.cert: cannot read {tmp_path}/missing.pem: No such file or directory" in r.stderr

    _, other_key = make_cert(tmp_path, "b")
    r, cfg = validate(tmp_path, http_with_tls(cert, other_key) + OUT)
    assert r.returncode == 1
    assert f"tls.key: {other_key} does not match the certificate in {cert}" in r.stderr

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    r, cfg = validate(tmp_path, http_with_tls(junk, key) + OUT)
    assert r.returncode == 1
    assert f"tls.cert: {junk} is not a PEM certificate" in r.stderr

    r, cfg = validate(tmp_path, http_with_tls(cert, junk) + OUT)
    assert r.returncode == 1
    assert f"tls.key: {junk} is not a PEM private key" in r.stderr


def test_every_problem_of_every_stage_at_once(tmp_path):
    r, cfg = validate(tmp_path, (
        '[inputs.k]\ntype = "kafka"\nbrokers = "127.0.0.1:1"\ntopics = ["t"]\ngroup_id = "g"\nstart = "middle"\n'
        'librdkafka = { "fetch.wait.max.ms" = "soon" }\n'
        '[inputs.h]\ntype = "http"\naddress = "127.0.0.1:0"\nthreads = 0\nack = "maybe"\n'
        '[outputs.o]\ntype = "kafka"\ninputs = ["k", "h"]\nbrokers = "127.0.0.1:1"\ntopic = "t"\n'
        'compression = "brotli"\nstats_interval = "1ms"\n'
        'librdkafka = { "no.such.property" = "1", "linger.ms" = "-7" }\n'))
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith(cfg + ":") and l[len(cfg) + 1].isdigit()]
    want = ["'start' of k must be \"earliest\" or \"latest\", not \"middle\"", "fetch.wait.max.ms", "'threads' of h must be between 1 and 64, not 0", "'ack' of h must be",
            "'compression' of o must be",
            "stats_interval must be", "no.such.property", "linger.ms"]
    for w in want:
        assert any(w in l for l in lines), (w, r.stderr)
    assert f"{len(lines)} errors" in r.stderr


def test_librdkafka_settings_are_checked_as_the_producer_would(tmp_path):
    r, cfg = validate(tmp_path, (
        '[inputs.i]\ntype = "stdin"\n[outputs.o]\ntype = "kafka"\ninputs = ["i"]\nbrokers = "127.0.0.1:1"\ntopic = "t"\n'
        'librdkafka = { "security.protocol" = "ssl", "ssl.ca.location" = "/nonexistent/ca.pem" }\n'))
    assert r.returncode == 1
    assert f"{cfg}:8:14: librdkafka would not start a producer with these settings" in r.stderr
    assert "ssl.ca.location" in r.stderr


def test_compound_durations_and_what_a_malformed_one_should_look_like(tmp_path):
    base = '[inputs.i]\ntype = "stdin"\n[outputs.o]\ntype = "null"\ninputs = "i"\n'
    r, _ = validate(tmp_path, '[service]\nshutdown_timeout = "1m30s"\nlinger = "250us"\n' + base)
    assert r.returncode == 0, r.stderr
    r, cfg = validate(tmp_path, '[service]\nshutdown_timeout = "1 minute"\n' + base)
    assert r.returncode == 1
    assert (f'{cfg}:2:20: option \'shutdown_timeout\' in [service] must be a duration: numbers each followed by a unit '
            f'(ns, us, ms, s, m, h, d), like "500ms", "5s" or "1h30m", or a number of seconds, not "1 minute"') in r.stderr


def test_a_bare_string_is_a_list_of_one_for_every_list_option(tmp_path):
    r, _ = validate(tmp_path, '[inputs.h]\ntype = "http"\naddress = "127.0.0.1:0"\npaths = "/hb"\n'
                              '[filters.f]\ntype = "fields"\ninputs = "h"\nremove = "password"\n'
                              '[outputs.o]\ntype = "null"\ninputs = "f"\n')
    assert r.returncode == 0, r.stderr


def test_socket_stages_check_tls_files_and_report_every_problem(tmp_path):
    """tcp, syslog and forward inputs read their TLS files at validate as they will at start; the
    tcp and forward outputs load their client TLS; each stage reports all of its problems."""
    cert, key = make_cert(tmp_path, "a")
    _, other_key = make_cert(tmp_path, "b")
    missing = tmp_path / "missing.pem"
    r, cfg = validate(tmp_path, (
        f'[inputs.t]\ntype = "tcp"\naddress = "127.0.0.1"\nmax_connections = 0\ntls = {{ cert = "{missing}", key = "{key}" }}\n'
        f'[inputs.s]\ntype = "syslog"\naddress = "127.0.0.1:0"\nmode = "sctp"\ntimezone = "Mars"\n'
        f'[inputs.f]\ntype = "forward"\naddress = "127.0.0.1:0"\nbinary = "hex"\ntls = {{ cert = "{cert}", key = "{other_key}" }}\n'
        f'[outputs.fo]\ntype = "forward"\ninputs = ["t", "s", "f"]\nservers = ["nowhere"]\nmode = "random"\n'
        f'tls = {{ ca = "{missing}", pin = "x" }}\n'
        f'[outputs.to]\ntype = "tcp"\ninputs = ["t"]\naddress = "10.0.0.1:0"\ntls = {{ ca = "{missing}" }}\n'))
    assert r.returncode == 1
    err = r.stderr
    assert f"{cfg}:3:11: address must be host:port" in err
    assert f"{cfg}:4:19: option 'max_connections' of t must be at least 1, not 0" in err
    assert f"{cfg}:5:7: tls.cert: cannot read {missing}: No such file or directory" in err
    assert f"{cfg}:9:8: mode must be \"tcp\" or \"udp\", not \"sctp\"" in err
    assert f"{cfg}:10:12: timezone must be" in err
    assert f"{cfg}:14:10: option 'binary' of f must be \"string\" or \"base64\", not \"hex\"" in err
    assert f"{cfg}:15:7: tls.key: {other_key} does not match the certificate in {cert}" in err
    assert f"{cfg}:19:11: each server must be host:port" in err
    assert f"{cfg}:20:8: option 'mode' of fo must be \"failover\" or \"balance\", not \"random\"" in err
    assert f"{cfg}:21:7: unknown key 'pin' in tls (use ca, verify, cert, key)" in err
    assert f"{cfg}:25:11: address must be host:port" in err
    assert f"{cfg}:26:7:" in err and str(missing) in err.split(f"{cfg}:26:7:")[1].splitlines()[0]

    # The same stages with good TLS files pass.
    r, cfg = validate(tmp_path, (
        f'[inputs.t]\ntype = "tcp"\naddress = "127.0.0.1:0"\ntls = {{ cert = "{cert}", key = "{key}" }}\n'
        f'[inputs.s]\ntype = "syslog"\naddress = "127.0.0.1:0"\ntls = {{ cert = "{cert}", key = "{key}" }}\n'
        f'[outputs.to]\ntype = "tcp"\ninputs = ["t", "s"]\naddress = "127.0.0.1:9"\ntls = {{ ca = "{cert}" }}\n'))
    assert r.returncode == 0, r.stderr
