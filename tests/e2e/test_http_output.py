"""The http output against a second hbforward's http input and against a scriptable collector:
round trips byte for byte, retries (500, 429 + Retry-After, closed connections), permanent
failures, Elasticsearch bulk item errors, Splunk HEC, compression, max_inflight, acks upstream."""
import json
import threading
import time
from pathlib import Path

import pytest

from collector import CLOSE, Collector
from conftest import free_port, read_ndjson, wait_for
from hbhttp import listening, post
from kafka_helpers import broker, consume  # noqa: F401 (fixture)
from test_ops import get, samples, stage_value


@pytest.fixture
def collector():
    made = []

    def make(respond=None, **kw):
        c = Collector(respond, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def generator(url, count, out_opts="", api=0, extra="", source="gen"):
    """generate (count events with seq) -> http output."""
    return f"""
[service]
log_level = "info"
api_address = "{f'127.0.0.1:{api}' if api else ''}"

[inputs.gen]
type = "generate"
count = {count}
sequence_field = "seq"

[outputs.post]
type = "http"
inputs = ["{source}"]
url = "{url}"
{out_opts}
{extra}
"""


def webhook(port, url, out_opts="", api=0, ack_timeout="10s"):
    """http input (ack = delivered) -> http output: the webhook's answer reports the output's outcome."""
    return f"""
[service]
log_level = "info"
api_address = "{f'127.0.0.1:{api}' if api else ''}"

[inputs.hb]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/healthbot"]
ack = "delivered"
ack_timeout = "{ack_timeout}"

[filters.parse]
type = "json"
inputs = ["hb"]

[outputs.post]
type = "http"
inputs = ["parse"]
url = "{url}"
{out_opts}
"""


def receiver(port, out_path="recv.ndjson", opts=""):
    """A second hbforward: http input -> file."""
    return f"""
[service]
log_level = "info"
api_address = ""

[inputs.in]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/ingest"]
{opts}

[outputs.out]
type = "file"
inputs = ["in"]
path = "{out_path}"
"""


def metrics(api):
    return samples(get(api, "/metrics")[1])


FAST = 'retry_backoff = "20ms"\nretry_backoff_max = "200ms"\nbatch = { max_events = 100, max_wait = "20ms" }'


def test_http_output_round_trip_to_a_second_hbforward_is_byte_for_byte(hbf, tmp_path):
    port = free_port()
    b = hbf(receiver(port), name="recv")
    listening(port)
    # The sender writes what it sends to a file as well: the receiver's file must be the same bytes
    # (compacted by the json filter, as the http input stores events).
    a = hbf(generator(f"http://127.0.0.1:{port}/ingest", 5000, "max_inflight = 1\nbatch = { max_events = 300, max_wait = \"20ms\" }",
                      extra='[filters.parse]\ntype = "json"\ninputs = ["gen"]\n'
                            '[outputs.copy]\ntype = "file"\ninputs = ["parse"]\npath = "sent.ndjson"\n', source="parse"), name="send")
    assert a.wait(30) == 0, a.log()
    sent = (tmp_path / "sent.ndjson").read_bytes()
    wait_for(lambda: (tmp_path / "recv.ndjson").exists() and (tmp_path / "recv.ndjson").stat().st_size == len(sent), 10,
             what="the receiver's file")
    assert (tmp_path / "recv.ndjson").read_bytes() == sent
    assert len(sent.splitlines()) == 5000
    b.stop()


@pytest.mark.parametrize("fmt,compression", [("ndjson", "gzip"), ("json_array", "gzip"), ("json_array", "none"), ("ndjson", "none")])
def test_http_output_formats_and_compression_reach_a_second_hbforward(hbf, tmp_path, fmt, compression):
    port = free_port()
    hbf(receiver(port), name="recv")
    listening(port)
    a = hbf(generator(f"http://127.0.0.1:{port}/ingest", 3000, f'format = "{fmt}"\ncompression = "{compression}"\nmax_inflight = 3\n'
                      'batch = { max_events = 250, max_wait = "20ms" }'), name="send")
    assert a.wait(30) == 0, a.log()
    wait_for(lambda: len(read_ndjson(tmp_path / "recv.ndjson")) >= 3000, 10, what="3000 events at the receiver")
    assert sorted(e["seq"] for e in read_ndjson(tmp_path / "recv.ndjson")) == list(range(3000))


def test_http_output_sends_the_format_headers_and_auth(hbf, collector):
    c = collector()
    a = hbf(generator(f"http://127.0.0.1:{c.port}/x", 10, 'format = "json_array"\ncompression = "zstd"\n'
                      'headers = { "X-Source" = "hbforward" }\nauth = { type = "basic", username = "u", password = "p w" }'))
    assert a.wait(30) == 0, a.log()
    assert c.seqs() == list(range(10))
    h = c.requests[0].headers
    assert h["content-type"] == "application/json"
    assert h["content-encoding"] == "zstd"
    assert h["x-source"] == "hbforward"
    assert h["authorization"] == "Basic dTpwIHc="
    assert c.requests[0].body.startswith(b'[{"')


def test_http_output_retries_500_and_closed_connections_until_delivered(hbf, collector):
    answers = [500, CLOSE, 503, CLOSE]

    def respond(req):
        if req.n < len(answers):
            a = answers[req.n]
            return a if a == CLOSE else (a, {}, b"busy")
        return 200, {}, b"ok"

    c = collector(respond)
    api = free_port()
    a = hbf(generator(f"http://127.0.0.1:{c.port}/x", 1000, FAST, api=api))
    wait_for(lambda: len(c.seqs()) >= 1000, 20, what="1000 events accepted")
    m = metrics(api)
    # libcurl itself sends a request again once when a kept-alive connection turns out closed.
    assert stage_value(m, "hbf_http_out_retries_total", "post") >= 3
    assert stage_value(m, "hbf_http_out_requests_total", "post", status="5xx") == 2
    assert stage_value(m, "hbf_http_out_requests_total", "post", status="error") >= 1
    assert a.wait(30) == 0, a.log()
    # No event lost; the only events seen twice are those of a request that was refused or cut.
    assert sorted(set(c.seqs())) == list(range(1000))
    assert len(c.seqs()) == 1000  # a refused or closed request delivered nothing
    assert "events sent again in" in a.log()


def test_http_output_honours_retry_after_on_429(hbf, collector):
    def respond(req):
        if req.n == 0:
            return 429, {"Retry-After": "2"}, b"slow down"
        return 200, {}, b"ok"

    c = collector(respond)
    a = hbf(generator(f"http://127.0.0.1:{c.port}/x", 5, FAST))
    assert a.wait(30) == 0, a.log()
    assert c.seqs() == list(range(5))
    gap = c.requests[1].at - c.requests[0].at
    assert gap >= 1.9, f"retried after {gap:.2f}s despite Retry-After: 2"
    assert "answered 429" in a.log()


def test_http_output_400_fails_for_good_and_the_webhook_answers_503(hbf, collector):
    def respond(req):
        if any(e.get("poison") for e in req.events()):
            return 400, {}, b'{"error":"field poison is not allowed"}'
        return 200, {}, b"ok"

    c = collector(respond)
    port, api = free_port(), free_port()
    h = hbf(webhook(port, f"http://127.0.0.1:{c.port}/x", FAST + "\nmax_inflight = 1", api=api))
    listening(port)
    assert post(port, {"seq": 1})[0] == 200
    st, _, body = post(port, [{"seq": 2}, {"seq": 3, "poison": True}])
    assert st == 503, body
    assert post(port, {"seq": 4})[0] == 200
    time.sleep(0.3)
    # The refused request was sent once, never again.
    assert sum(1 for r in c.requests if any(e.get("poison") for e in r.events())) == 1
    assert c.seqs() == [1, 4]
    m = metrics(api)
    assert stage_value(m, "hbf_http_out_failed_total", "post", reason="rejected") == 2
    assert stage_value(m, "hbf_http_out_delivered_total", "post") == 2
    assert "answered 400: {\"error\":\"field poison is not allowed\"}" in h.log()


def test_http_output_delivery_timeout_fails_and_the_webhook_answers_503(hbf, collector):
    c = collector(lambda req: (503, {}, b"down"))
    port, api = free_port(), free_port()
    h = hbf(webhook(port, f"http://127.0.0.1:{c.port}/x", FAST + '\ndelivery_timeout = "500ms"', api=api))
    listening(port)
    t0 = time.time()
    st, _, _ = post(port, {"seq": 1})
    assert st == 503
    assert 0.4 < time.time() - t0 < 5
    assert len(c.requests) >= 2
    m = metrics(api)
    assert stage_value(m, "hbf_http_out_failed_total", "post", reason="timeout") == 1
    assert "not delivered within delivery_timeout" in h.log()


def test_http_output_elasticsearch_bulk_items_429_retried_others_failed(hbf, collector):
    seen_429 = set()

    def respond(req):
        lines = req.body.decode().splitlines()
        items, errors = [], False
        for action, doc in zip(lines[0::2], lines[1::2]):
            assert json.loads(action) == {"index": {"_index": "hb-" + time.strftime("%Y.%m.%d", time.gmtime())}}
            e = json.loads(doc)
            if e.get("bad"):
                items.append({"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse [bad]"}}})
                errors = True
            elif e["seq"] % 3 == 0 and e["seq"] not in seen_429:
                seen_429.add(e["seq"])
                items.append({"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}})
                errors = True
            else:
                items.append({"index": {"_index": "hb", "status": 201}})
        return 200, {"Content-Type": "application/json"}, {"took": 3, "errors": errors, "items": items}

    c = collector(respond)
    port, api = free_port(), free_port()
    h = hbf(webhook(port, f"http://127.0.0.1:{c.port}/_bulk", FAST + '\nformat = "elasticsearch_bulk"\nindex = "hb-%Y.%m.%d"', api=api))
    listening(port)
    st, _, _ = post(port, [{"seq": i} for i in range(10)])
    assert st == 200
    assert c.seqs() == list(range(10))  # 0, 3, 6, 9 after their 429
    st, _, _ = post(port, [{"seq": 10}, {"seq": 11, "bad": True}, {"seq": 12}])
    assert st == 503
    assert c.seqs() == list(range(11)) + [12]
    m = metrics(api)
    assert stage_value(m, "hbf_http_out_failed_total", "post", reason="item") == 1
    assert stage_value(m, "hbf_http_out_delivered_total", "post") == 12
    assert "mapper_parsing_exception: failed to parse [bad]" in h.log()
    assert c.requests[0].headers["content-type"] == "application/x-ndjson"


def test_http_output_splunk_hec_envelope_time_and_token(hbf, collector):
    c = collector(lambda req: (200, {}, {"text": "Success", "code": 0}))
    port = free_port()
    hbf(webhook(port, f"http://127.0.0.1:{c.port}/services/collector/event",
                'format = "splunk_hec"\nsourcetype = "healthbot"\nindex = "net"\ntime_field = "ts"\n'
                'auth = { type = "splunk", token = "abc-123" }\nbatch = { max_wait = "20ms" }'))
    listening(port)
    t0 = time.time()
    assert post(port, [{"seq": 1, "ts": "2026-11-29T14:00:00.25Z"}, {"seq": 2, "ts": 1795960800123}, {"seq": 3}])[0] == 200
    r = c.requests[0]
    assert r.headers["authorization"] == "Splunk abc-123"
    hec = [json.loads(l) for l in r.body.decode().splitlines()]
    assert [e["event"]["seq"] for e in hec] == [1, 2, 3]
    assert hec[0]["time"] == 1795960800.25
    assert hec[1]["time"] == 1795960800.123
    assert abs(hec[2]["time"] - t0) < 5
    assert all(e["sourcetype"] == "healthbot" and e["index"] == "net" for e in hec)


def test_http_output_max_inflight_bounds_concurrent_requests_and_pushes_back(hbf, collector):
    def respond(req):
        time.sleep(0.2)
        return 200, {}, b"ok"

    c = collector(respond)
    a = hbf(generator(f"http://127.0.0.1:{c.port}/x", 2000, "max_inflight = 2\nbatch = { max_events = 50, max_wait = \"10ms\" }"))
    assert a.wait(60) == 0, a.log()
    assert c.seqs() == list(range(2000))
    assert c.max_active == 2
    assert len(c.requests) == 40


def test_http_output_unreachable_server_at_shutdown_exits_1_with_the_count(hbf):
    port = free_port()
    cfg = generator(f"http://127.0.0.1:{port}/x", 100, FAST + '\nflush_timeout = "500ms"')
    a = hbf(cfg)
    a.wait_log("sent again in")
    a.stop(30)
    assert a.proc.returncode == 1
    assert "100 events undelivered at shutdown" in a.log()
    assert "Could not connect" in a.log() or "Couldn't connect" in a.log() or "Connection refused" in a.log()


def test_http_output_rejects_bad_options_with_clear_messages(hbf, tmp_path):
    from conftest import run_cli
    for opts, text in [('url = "ftp://x/"', "url must start with http:// or https://"),
                       ('url = "http://x/"\nformat = "xml"', "format must be ndjson, json_array, elasticsearch_bulk or splunk_hec"),
                       ('url = "http://x/"\ncompression = "lz4"', "compression must be none, gzip or zstd"),
                       ('url = "http://x/"\nbatch = { max_event = 5 }', "unknown key 'max_event' in batch"),
                       ('url = "http://x/"\nsourcetype = "a"', "sourcetype applies to format = \"splunk_hec\"")]:
        cfg = tmp_path / "bad.toml"
        cfg.write_text(f'[inputs.gen]\ntype = "generate"\n[outputs.post]\ntype = "http"\ninputs = ["gen"]\n{opts}\n')
        r = run_cli("validate", "-c", str(cfg))
        assert r.returncode != 0
        assert text in r.stdout + r.stderr, r.stdout + r.stderr


def test_http_output_over_tls_verifies_the_server_and_refuses_a_wrong_ca(hbf, tmp_path):
    from test_http_tls import make_cert
    cert, key = make_cert(tmp_path, "server")
    other, _ = make_cert(tmp_path, "other")
    port = free_port()
    hbf(receiver(port, opts=f'tls = {{ cert = "{cert}", key = "{key}" }}'), name="recv")
    listening(port)
    url = f"https://127.0.0.1:{port}/ingest"
    a = hbf(generator(url, 200, f'tls = {{ ca = "{cert}" }}\nbatch = {{ max_wait = "20ms" }}'), name="good")
    assert a.wait(30) == 0, a.log()
    wait_for(lambda: len(read_ndjson(tmp_path / "recv.ndjson")) == 200, 10, what="200 events over TLS")
    # The wrong CA: nothing is sent, the log says why, the events fail when delivery_timeout passes.
    port2 = free_port()
    h = hbf(webhook(port2, url, f'tls = {{ ca = "{other}" }}\n' + FAST + '\ndelivery_timeout = "1s"'), name="bad")
    listening(port2)
    st, _, _ = post(port2, {"seq": 99999})
    assert st == 503
    assert "SSL certificate problem" in h.log(), h.log()
    assert len(read_ndjson(tmp_path / "recv.ndjson")) == 200
    # verify = false sends anyway (an explicit choice).
    h2 = hbf(generator(url, 5, 'tls = { verify = false }\nbatch = { max_wait = "20ms" }'), name="noverify")
    assert h2.wait(30) == 0, h2.log()
    wait_for(lambda: len(read_ndjson(tmp_path / "recv.ndjson")) == 205, 10, what="5 more events")


def test_chained_acks_conf_pair_survives_the_collector_restarting(hbf, tmp_path, broker):
    from conftest import ROOT
    edge_port, coll_port = free_port(), free_port()
    env = {"HBF_WEBHOOK": f"127.0.0.1:{edge_port}", "HBF_COLLECTOR_URL": f"http://127.0.0.1:{coll_port}/ingest",
           "HBF_LISTEN": f"127.0.0.1:{coll_port}", "KAFKA_BROKERS": broker.bootstrap,
           "HBF_EDGE_API": f"127.0.0.1:{free_port()}", "HBF_COLLECTOR_API": f"127.0.0.1:{free_port()}"}
    coll_conf = (ROOT / "conf" / "chain-collector.toml").read_text()
    coll = hbf(coll_conf, env=env, name="collector")
    edge = hbf((ROOT / "conf" / "chain-edge.toml").read_text(), env=env, name="edge")
    listening(edge_port)
    listening(coll_port)

    def note(seq):
        return {"device-id": "mx1", "severity": "major", "seq": seq}

    for i in range(5):
        assert post(edge_port, note(i))[0] == 200

    def in_kafka():
        return {json.loads(l)["seq"] for l in consume(broker.bootstrap, "healthbot.major").decode().splitlines() if l.strip()}

    assert in_kafka() == set(range(5))  # the 200 came after Kafka had them
    # The collector dies; a notification posted meanwhile is answered only once it is back and Kafka has it.
    coll.proc.kill()
    coll.proc.wait()
    answers = {}
    t = threading.Thread(target=lambda: answers.update(r=post(edge_port, [note(5), note(6)], timeout=40)))
    t.start()
    time.sleep(1.5)
    assert t.is_alive(), "the webhook answered while the collector was down"
    coll2 = hbf(coll_conf, env=env, name="collector2")
    t.join(40)
    assert answers["r"][0] == 200, answers
    assert in_kafka() == set(range(7))
    assert coll2.stop() == 0
    assert edge.stop() == 0


def test_http_output_pushes_back_to_the_webhook_when_the_collector_is_down(hbf, collector):
    c = collector(lambda req: (503, {}, b"down"))
    port, api = free_port(), free_port()
    cfg = webhook(port, f"http://127.0.0.1:{c.port}/x", 'max_inflight = 1\nbatch = { max_events = 10, max_wait = "10ms" }\n'
                  'retry_backoff = "50ms"\nretry_backoff_max = "100ms"', api=api)
    cfg = cfg.replace('ack = "delivered"\n', "").replace('log_level = "info"', 'log_level = "info"\nqueue_events = 100')
    h = hbf(cfg)
    listening(port)
    answers = []
    for i in range(2000):
        st = post(port, {"seq": i})[0]
        answers.append(st)
        if st == 503:
            break
    # The output holds two requests of 10 and its queue 100 events: the webhook then refuses, it
    # does not buffer without bound.
    assert answers[-1] == 503, f"{len(answers)} posts all accepted"
    assert answers.count(200) <= 300
    m = metrics(api)
    assert stage_value(m, "hbf_http_out_inflight_requests", "post") <= 1
    assert h.proc.poll() is None
