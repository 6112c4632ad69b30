"""input kafka against the dev broker: kafka -> file, offsets committed after delivery."""
import json
import signal

from conftest import examples, read_ndjson
from kafka_helpers import broker, produce, wait_lines  # noqa: F401 (fixture)


def kafka_to_file(bootstrap, topics, group, path, extra=""):
    return f'''
[service]
shutdown_timeout = "10s"
[inputs.k]
type = "kafka"
brokers = "{bootstrap}"
topics = {json.dumps(topics)}
group_id = "{group}"
{extra}
[inputs.k.librdkafka]
# librdkafka's mock broker waits session.timeout.ms - 1 s after a member left before a new
# member's join completes; keep that short so a restart is quick.
"session.timeout.ms" = "4000"
"heartbeat.interval.ms" = "500"
[outputs.f]
type = "file"
inputs = ["k"]
path = "{path}"
fsync_interval = "0"
'''


def test_kafka_to_file_is_byte_for_byte(hbf, broker, tmp_path):
    lines = examples() * 30
    produce(broker.bootstrap, "edge-routers.alarms", lines)
    h = hbf(kafka_to_file(broker.bootstrap, ["^edge-routers\\."], "g1", "out.ndjson"))
    wait_lines(tmp_path / "out.ndjson", len(lines))
    h.signal(signal.SIGTERM)
    assert h.wait() == 0, h.log()
    assert sorted((tmp_path / "out.ndjson").read_text().splitlines()) == sorted(lines)


def test_metadata_fields_are_added(hbf, broker, tmp_path):
    produce(broker.bootstrap, "meta", ["r1|{\"a\": 1}", "r2|{}", "r3|not json"], key_sep="|")
    h = hbf(kafka_to_file(broker.bootstrap, ["meta"], "g1", "out.ndjson", 'metadata_field = "kafka"'))
    wait_lines(tmp_path / "out.ndjson", 3)
    h.signal(signal.SIGTERM)
    assert h.wait() == 0, h.log()
    text = (tmp_path / "out.ndjson").read_text().splitlines()
    assert "not json" in text  # not an object: passed as is, for the json filter's on_error
    evs = {json.loads(l)["kafka"]["key"]: json.loads(l) for l in text if l != "not json"}
    assert evs["r1"]["a"] == 1 and evs["r1"]["kafka"]["topic"] == "meta"
    assert set(evs["r2"]["kafka"]) == {"topic", "partition", "offset", "key", "timestamp"}
    assert evs["r2"]["kafka"]["timestamp"] > 1_600_000_000_000


def test_restart_resumes_from_the_committed_offset(hbf, broker, tmp_path):
    first = [json.dumps({"seq": i}) for i in range(500)]
    produce(broker.bootstrap, "resume", first)
    h = hbf(kafka_to_file(broker.bootstrap, ["resume"], "resumers", "a.ndjson"), name="a")
    wait_lines(tmp_path / "a.ndjson", 500)
    h.signal(signal.SIGTERM)
    assert h.wait() == 0, h.log()

    second = [json.dumps({"seq": i}) for i in range(500, 800)]
    produce(broker.bootstrap, "resume", second)
    h2 = hbf(kafka_to_file(broker.bootstrap, ["resume"], "resumers", "b.ndjson"), name="b")
    wait_lines(tmp_path / "b.ndjson", 300)
    h2.signal(signal.SIGTERM)
    assert h2.wait() == 0, h2.log()
    assert sorted(e["seq"] for e in read_ndjson(tmp_path / "a.ndjson")) == list(range(500))
    # A clean stop committed everything delivered: the second run reads only what is new.
    assert sorted(e["seq"] for e in read_ndjson(tmp_path / "b.ndjson")) == list(range(500, 800))


def test_bad_topic_name_fails_at_start(hbf):
    h = hbf(kafka_to_file("127.0.0.1:1", ["bad topic"], "g", "x.ndjson"))
    assert h.wait() == 1
    assert 'topic "bad topic"' in h.log()
