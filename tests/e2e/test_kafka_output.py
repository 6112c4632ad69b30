"""output kafka against the dev broker, checked with kcat (an independent client)."""
import json
import subprocess
import threading
import time

from conftest import examples, free_port, run_cli, wait_for
from kafka_helpers import KCAT, broker, consume, end_offsets, topics  # noqa: F401 (fixture)
from test_ops import get, samples, stage_value


def kafka_out(bootstrap, topic, extra=""):
    return f'''
[outputs.k]
type = "kafka"
inputs = ["in"]
brokers = "{bootstrap}"
topic = "{topic}"
{extra}
'''


def test_stdin_to_kafka_is_byte_for_byte(hbf, broker):
    lines = examples() * 50
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out(broker.bootstrap, "notifications"), stdin=subprocess.PIPE)
    h.proc.communicate(("\n".join(lines) + "\n").encode(), timeout=30)
    assert h.wait() == 0, h.log()
    got = consume(broker.bootstrap, "notifications").decode().splitlines()
    assert len(got) == len(lines)
    assert sorted(got) == sorted(lines)


def test_topic_and_key_come_from_the_event(hbf, broker):
    cfg = '''
[inputs.gen]
type = "generate"
count = 3000
[filters.in]
type = "json"
inputs = ["gen"]
''' + kafka_out(broker.bootstrap, "hb.{severity}", 'key = "{device-id}"\nheaders = { source = "hbforward" }').replace('inputs = ["in"]', 'inputs = ["in"]', 1)
    h = hbf(cfg)
    assert h.wait() == 0, h.log()
    seen = 0
    for t in topics(broker.bootstrap):
        if not t.startswith("hb."):
            continue
        out = consume(broker.bootstrap, t, fmt="%k\\t%h\\t%s\\n").decode().splitlines()
        for line in out:
            key, headers, value = line.split("\t", 2)
            ev = json.loads(value)
            assert t == "hb." + ev["severity"]
            assert key == ev["device-id"]
            assert headers == "source=hbforward"
            seen += 1
    assert seen == 3000
    assert set(t for t in topics(broker.bootstrap) if t.startswith("hb.")) == {"hb.major", "hb.minor", "hb.normal"}


def test_missing_field_uses_fallback_and_bad_names_are_dropped(hbf, broker):
    lines = ['{"group": "core", "n": 1}', '{"n": 2}', '{"group": "bad/name", "n": 3}', '{"group": "core", "n": 4}']
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out(broker.bootstrap, "g.{group|nogroup}"), stdin=subprocess.PIPE)
    h.proc.communicate(("\n".join(lines) + "\n").encode(), timeout=30)
    assert h.wait() == 0, h.log()
    assert sorted(consume(broker.bootstrap, "g.core").decode().splitlines()) == [lines[0], lines[3]]
    assert consume(broker.bootstrap, "g.nogroup").decode().splitlines() == [lines[1]]
    assert "g.bad/name" in h.log() and "dropped" in h.log()


def test_bad_static_topic_fails_at_start(hbf, tmp_path):
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out("127.0.0.1:1", "no spaces allowed"))
    assert h.wait() == 1
    assert "topic \"no spaces allowed\"" in h.log() and "[a-zA-Z0-9._-]" in h.log()


def test_unknown_librdkafka_property_fails_at_start(hbf):
    extra = '[outputs.k.librdkafka]\n"linger.ms" = "5"\n"no.such.property" = "1"\n'
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out("127.0.0.1:1", "t", extra))
    assert h.wait() == 1
    assert "no.such.property" in h.log() and "No such configuration property" in h.log()
    # validate catches it too, with the position
    cfg = h.config
    r = run_cli("validate", "-c", str(cfg))
    assert r.returncode == 1 and "no.such.property" in r.stderr


def test_broker_down_loses_nothing(hbf, broker):
    """Events flow while the broker is down for 3 s; afterwards every accepted event is on the topic."""
    n = 20000
    cfg = '[service]\nshutdown_timeout = "30s"\n[inputs.in]\ntype = "stdin"\n'
    h = hbf(cfg + kafka_out(broker.bootstrap, "outage", 'flush_timeout = "20s"'), stdin=subprocess.PIPE)

    def feed():
        for i in range(0, n, 500):
            chunk = "".join(json.dumps({"seq": s, "device-id": f"r{s % 7}"}) + "\n" for s in range(i, i + 500))
            h.proc.stdin.write(chunk.encode())
            h.proc.stdin.flush()
            time.sleep(0.1)  # the input keeps flowing for ~4 s
        h.proc.stdin.close()

    t = threading.Thread(target=feed)
    t.start()
    time.sleep(0.5)
    broker.control("down 1")
    time.sleep(3)
    broker.control("up 1")
    t.join(30)
    assert h.wait(60) == 0, h.log()
    assert "Connection refused" in h.log()  # the outage did reach the producer
    parts = topics(broker.bootstrap)["outage"]
    got = [json.loads(l)["seq"] for l in consume(broker.bootstrap, "outage").decode().splitlines()]
    assert set(got) == set(range(n)), f"missing {sorted(set(range(n)) - set(got))[:10]}"
    assert end_offsets(broker.bootstrap, "outage", parts) >= n


def test_finite_delivery_timeout_reports_expired_events(hbf, broker):
    broker.control("down 1")
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out(broker.bootstrap, "expire", 'delivery_timeout = "1s"'),
            stdin=subprocess.PIPE)
    h.proc.communicate(("\n".join(examples()) + "\n").encode(), timeout=30)
    assert h.wait(30) == 0, h.log()
    log = h.log()
    assert "delivery to topic expire failed: Local: Message timed out" in log
    assert "could not be delivered" not in log  # they failed by timeout, before the shutdown flush


def test_librdkafka_statistics_give_broker_rtt_and_state_in_metrics(hbf, broker):
    port = free_port()
    cfg = f'[service]\napi_address = "127.0.0.1:{port}"\n[inputs.in]\ntype = "stdin"\n'
    h = hbf(cfg + kafka_out(broker.bootstrap, "stats", 'stats_interval = "200ms"'), stdin=subprocess.PIPE)
    h.wait_log("running")
    h.proc.stdin.write(("\n".join(examples()) + "\n").encode())
    h.proc.stdin.flush()

    def scraped():
        m = samples(get(port, "/metrics")[1])
        if stage_value(m, "hbf_kafka_delivered_total", "k") != len(examples()):
            return None
        rtt = {dict(ls)["quantile"]: (dict(ls)["broker"], v) for (n, ls), v in m.items()
               if n == "hbf_kafka_broker_rtt_seconds" and dict(ls)["stage"] == "k"}
        return (m, rtt) if set(rtt) == {"0.5", "0.99"} else None

    m, rtt = wait_for(scraped, timeout=15, interval=0.1, what="hbf_kafka_broker_rtt_seconds after the produce")
    broker_label = rtt["0.5"][0]
    # host:port, as librdkafka learned it from the dev broker's metadata
    assert broker_label == broker.bootstrap
    assert 0 < rtt["0.5"][1] <= rtt["0.99"][1] < 5  # seconds, not microseconds
    assert stage_value(m, "hbf_kafka_broker_up", "k", broker=broker_label) == 1
    assert stage_value(m, "hbf_kafka_retried_total", "k", what="request") == 0
    h.proc.stdin.close()
    assert h.wait() == 0, h.log()


def test_events_left_undelivered_at_shutdown_fail_the_stage(hbf, broker):
    broker.control("down 1")
    h = hbf('[inputs.in]\ntype = "stdin"\n' + kafka_out(broker.bootstrap, "gone", 'flush_timeout = "1s"'),
            stdin=subprocess.PIPE)
    h.proc.communicate(("\n".join(examples()) + "\n").encode(), timeout=30)
    assert h.wait(30) == 1  # a stage that ends failing makes the exit code 1
    log = h.log()
    assert f"{len(examples())} events undelivered at shutdown: {broker.bootstrap}" in log, log
    assert "Connection refused" in log  # librdkafka's last error is the reason given
    assert f"ended failing: {len(examples())} events undelivered" in log


def test_fatal_producer_error_recreates_the_producer_and_loses_nothing(hbf, broker):
    """A Produce answered OUT_OF_ORDER_SEQUENCE_NUMBER is fatal to the idempotent producer: the
    output recreates it and produces every undelivered event again, to the topic and with the
    key its template gives, and the input sees every event delivered (exit 0)."""
    n = 6000
    port = free_port()
    cfg = f'[service]\napi_address = "127.0.0.1:{port}"\nshutdown_timeout = "30s"\n[inputs.in]\ntype = "stdin"\n'
    h = hbf(cfg + kafka_out(broker.bootstrap, "fatal.{group}", 'key = "{device-id}"\nflush_timeout = "20s"'),
            stdin=subprocess.PIPE)
    h.wait_log("running")

    def feed(start, end):
        chunk = "".join(json.dumps({"seq": s, "group": f"g{s % 3}", "device-id": f"r{s % 7}"}) + "\n" for s in range(start, end))
        h.proc.stdin.write(chunk.encode())
        h.proc.stdin.flush()

    feed(0, 1000)
    wait_for(lambda: stage_value(samples(get(port, "/metrics")[1]), "hbf_kafka_delivered_total", "k") == 1000,
             timeout=15, what="the first 1000 events delivered")
    broker.control("fail-produce 1 45")  # OUT_OF_ORDER_SEQUENCE_NUMBER
    for i in range(1000, n, 500):
        feed(i, i + 500)
        time.sleep(0.05)
    wait_for(lambda: "recreating the producer" in h.log(), timeout=15, what="the fatal error handled")
    wait_for(lambda: stage_value(samples(get(port, "/metrics")[1]), "hbf_kafka_retried_total", "k", what="message") > 0,
             timeout=15, what="messages produced again")
    h.proc.stdin.close()
    assert h.wait(60) == 0, h.log()
    got = {}
    for g in range(3):
        for line in consume(broker.bootstrap, f"fatal.g{g}", fmt="%k\\t%s\\n").decode().splitlines():
            key, value = line.split("\t", 1)
            ev = json.loads(value)
            assert ev["group"] == f"g{g}" and key == ev["device-id"], line
            got[ev["seq"]] = True
    assert set(got) == set(range(n)), f"missing {sorted(set(range(n)) - set(got))[:10]}"


def test_dev_broker_on_a_fixed_port_relays_kafka_clients_to_its_cluster():
    # `--port N` (what conf/ and the service use) puts a TCP relay to the mock cluster on N:
    # kcat bootstraps through it, then produces and consumes.
    from conftest import HBF
    port = free_port()
    p = subprocess.Popen([str(HBF), "dev-broker", "--port", str(port), "--topics", "fixed:2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == f"bootstrap 127.0.0.1:{port}"
        meta = subprocess.run([KCAT, "-b", f"127.0.0.1:{port}", "-L", "-t", "fixed"], capture_output=True, text=True, timeout=20)
        assert meta.returncode == 0, meta.stderr
        assert 'topic "fixed" with 2 partitions' in meta.stdout, meta.stdout
        lines = [json.dumps({"n": i}) for i in range(50)]
        subprocess.run([KCAT, "-b", f"127.0.0.1:{port}", "-P", "-t", "fixed"], input="\n".join(lines) + "\n",
                       text=True, check=True, timeout=20)
        got = consume(f"127.0.0.1:{port}", "fixed").decode().splitlines()
        assert sorted(got) == sorted(lines)
    finally:
        p.terminate()
        p.wait(timeout=10)
