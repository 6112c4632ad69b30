"""HealthBot webhook to Kafka: http -> json -> enrich -> kafka into `hbforward dev-broker`, with
ack = "delivered", checked with kcat (an independent client) byte for byte."""
import http.client
import json
import threading
import time

from conftest import examples, free_port
from hbhttp import listening
from kafka_helpers import broker, consume, topics  # noqa: F401 (fixture)

ENRICH = ',"collector":"edge-01"}'


def config(port, bootstrap, http_extra="", kafka_extra=""):
    return f"""
[service]
log_level = "info"
shutdown_timeout = "30s"

[inputs.healthbot]
type = "http"
address = "127.0.0.1:{port}"
paths = ["/healthbot"]
ack = "delivered"
{http_extra}

[filters.parse]
type = "json"
inputs = ["healthbot"]

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = {{ collector = "edge-01" }}

[outputs.kafka]
type = "kafka"
inputs = ["tag"]
brokers = "{bootstrap}"
topic = "healthbot.{{severity|unknown}}"
key = "{{device-id}}"
flush_timeout = "20s"
{kafka_extra}
"""


def notification(client, n, device):
    ex = examples()
    ev = json.loads(ex[n % len(ex)])
    ev["device-id"] = device
    ev["seq"] = f"{client}-{n}"
    if n % 7 == 3:
        del ev["severity"]  # -> healthbot.unknown
    return ev


def expected(ev):
    """The message hbforward must produce: the compact event (token text kept) plus enrich's field."""
    return (json.dumps(ev, separators=(",", ":"))[:-1] + ENRICH).encode()


def topic_of(ev):
    return "healthbot." + ev.get("severity", "unknown")


def body_for(events, n):
    """Three body shapes: one pretty-printed object, a JSON array, NDJSON."""
    if len(events) == 1:
        return json.dumps(events[0], indent=2), "application/json"
    if n % 2:
        return json.dumps(events), "application/json"
    return "\n".join(json.dumps(e) for e in events) + "\n", "application/x-ndjson"


class Client(threading.Thread):
    """Posts `count` requests on one keep-alive connection (a new one after an error), in order,
    recording (status, events) for each. Its devices are its own, so per key the order is known."""

    def __init__(self, port, cid, count=None, stop=None, timeout=30):
        super().__init__(daemon=True)
        self.port, self.cid, self.count, self.stop_ev, self.timeout = port, cid, count, stop, timeout
        self.results = []

    def run(self):
        conn = None
        n = 0
        while (self.count is None or n < self.count) and not (self.stop_ev and self.stop_ev.is_set()):
            events = [notification(self.cid, n * 3 + k, f"dev-{self.cid}-{n % 3}") for k in range(1 + n % 3)]
            body, ctype = body_for(events, n)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request("POST", "/healthbot", body=body.encode(), headers={"Content-Type": ctype})
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status = repr(e)
                if conn:
                    conn.close()
                conn = None
            self.results.append((status, events))
            n += 1
        if conn:
            conn.close()


def on_topics(bootstrap):
    """{(topic, key, value bytes): count} of every message under healthbot.*, read with kcat."""
    got = {}
    for t in topics(bootstrap):
        if not t.startswith("healthbot."):
            continue
        for line in consume(bootstrap, t, fmt="%k\\t%s\\n").splitlines():
            key, value = line.split(b"\t", 1)
            k = (t, key.decode(), value)
            got[k] = got.get(k, 0) + 1
    return got


def per_key_order(bootstrap):
    """{key: [seq, ...]} in partition order (one key lives on one partition)."""
    order = {}
    for t in topics(bootstrap):
        if t.startswith("healthbot."):
            for line in consume(bootstrap, t, fmt="%k\\t%p\\t%o\\t%s\\n").splitlines():
                key, p, o, value = line.split(b"\t", 3)
                order.setdefault((t, key.decode()), []).append((int(o), json.loads(value)["seq"]))
    return {k: [s for _, s in sorted(v)] for k, v in order.items()}


def test_http_to_kafka_every_200_is_on_the_topic_byte_for_byte(hbf, broker):
    port = free_port()
    h = hbf(config(port, broker.bootstrap))
    listening(port)
    clients = [Client(port, c, count=60) for c in range(4)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(120)
    want = {}
    sent_order = {}
    for c in clients:
        assert len(c.results) == 60
        for status, events in c.results:
            assert status == 200, status
            for ev in events:
                k = (topic_of(ev), ev["device-id"], expected(ev))
                want[k] = want.get(k, 0) + 1
                sent_order.setdefault((topic_of(ev), ev["device-id"]), []).append(ev["seq"])
    # ack = "delivered": the 200s came after the broker acknowledged, so the topics are complete now.
    got = on_topics(broker.bootstrap)
    assert sum(want.values()) == 480
    assert got == want
    assert per_key_order(broker.bootstrap) == sent_order  # a device's notifications stay in order
    assert h.stop() == 0, h.log()


def outage(hbf, broker, http_extra, kafka_extra, refused):
    """Four clients post while broker 1 is down for 4 s; returns {status: requests}."""
    port = free_port()
    h = hbf(config(port, broker.bootstrap, http_extra, kafka_extra))
    listening(port)
    stop = threading.Event()
    clients = [Client(port, c, stop=stop) for c in range(4)]
    for c in clients:
        c.start()
    time.sleep(1.5)
    broker.control("down 1")
    down_at = time.time()
    time.sleep(4)
    broker.control("up 1")
    time.sleep(3)
    stop.set()
    for c in clients:
        c.join(60)
        assert not c.is_alive()
    assert h.stop() == 0, h.log()  # SIGTERM: flush what is left (flush_timeout 20 s)
    got = on_topics(broker.bootstrap)
    statuses = {}
    for c in clients:
        for status, events in c.results:
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, *refused), status
            for ev in events:
                k = (topic_of(ev), ev["device-id"], expected(ev))
                if status == 200:
                    assert got.get(k) == 1, f"answered 200 but not on the topic exactly once: {k}"
                else:
                    assert got.get(k, 0) <= 1, f"duplicated: {k}"
    sent = {(topic_of(ev), ev["device-id"], expected(ev)) for c in clients for _, evs in c.results for ev in evs}
    assert set(got) <= sent  # nothing on the topics that was not sent
    assert statuses.get(200, 0) > 20, statuses
    assert sum(statuses.get(s, 0) for s in refused) >= 4, f"the outage was not felt: {statuses} (down at {down_at})"
    print("statuses", statuses)
    return statuses, got, clients


def test_http_to_kafka_broker_down_with_ack_timeout_gives_504_and_events_arrive_later(hbf, broker):
    """Unlimited delivery_timeout: during the outage requests wait ack_timeout and get 504 ("may
    still arrive"); after "up 1" every queued event is delivered, the 504 ones included."""
    statuses, got, clients = outage(hbf, broker, 'ack_timeout = "1s"', "", refused=(504,))
    for c in clients:
        for status, events in c.results:
            for ev in events:
                assert got.get((topic_of(ev), ev["device-id"], expected(ev))) == 1, (status, ev["seq"])


def test_http_to_kafka_broker_down_with_delivery_timeout_gives_503(hbf, broker):
    """A finite delivery_timeout: events the broker never took fail, and their requests get 503."""
    outage(hbf, broker, 'ack_timeout = "10s"', 'delivery_timeout = "1500ms"', refused=(503,))


def test_default_config_runs_alone_webhook_to_file_and_embedded_kafka(hbf, tmp_path):
    """conf/hbforward.toml as shipped (on a free port instead of 8080): a curl POST reaches
    out.ndjson and the embedded broker's topic, read by kcat."""
    import re
    import subprocess
    from conftest import ROOT, read_ndjson, wait_for
    port = free_port()
    text = (ROOT / "conf" / "hbforward.toml").read_text()
    assert 'address = "127.0.0.1:8080"' in text and 'brokers = "embedded"' in text
    h = hbf(text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("127.0.0.1:2020", f"127.0.0.1:{free_port()}"))
    listening(port)
    bootstrap = re.search(r"embedded Kafka broker listening at (\S+)", h.wait_log("embedded Kafka broker")
                          and h.log()).group(1)
    lines = examples()
    for line in lines:
        r = subprocess.run(["curl", "-sS", "-H", "Content-Type: application/json", "--data-binary", line,
                            f"http://127.0.0.1:{port}/healthbot"], capture_output=True, text=True, timeout=30)
        assert r.stdout == '{"accepted":1}', (r.stdout, r.stderr)
    wait_for(lambda: len(read_ndjson(tmp_path / "out.ndjson")) == len(lines), what="out.ndjson")
    in_file = read_ndjson(tmp_path / "out.ndjson")
    for ev, line in zip(in_file, lines):
        sent = json.loads(line)
        assert ev["collector"] == "edge-01" and "host" in ev and "received_at" in ev
        assert {k: v for k, v in ev.items() if k not in ("collector", "host", "received_at")} == sent

    def kafka_lines():
        return sorted(v for (t, k, v), n in on_topics(bootstrap).items() for _ in range(n))
    wait_for(lambda: len(kafka_lines()) == len(lines), timeout=20, what="the events on the embedded broker")
    file_lines = sorted(l.encode() for l in (tmp_path / "out.ndjson").read_text().splitlines())
    assert kafka_lines() == file_lines  # the same bytes in both outputs
    assert h.stop() == 0, h.log()
