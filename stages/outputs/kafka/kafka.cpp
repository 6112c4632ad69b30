// output "kafka": its options, their checks, start and registration. What the stage does and
// where each part of it lives: kafka_output.h.
#include "kafka_output.h"

namespace hbf::kafka_output {
namespace {

// Measured with bench/kafka/run.sh (see README): these beat librdkafka's own defaults for
// HealthBot-sized (~450 B) JSON messages.
const kafka::Props kProducerDefaults = {
    {"linger.ms", "5"},
    {"batch.num.messages", "10000"},
    {"batch.size", "1000000"},
    {"queue.buffering.max.messages", "200000"},
    {"queue.buffering.max.kbytes", "65536"},  // 64 MiB of message text held by librdkafka at most
    {"message.max.bytes", "2000000"},
    {"socket.nagle.disable", "true"},
    // Back within a second of a broker's return, not librdkafka's 10 s backoff.
    {"reconnect.backoff.max.ms", "1000"},
};

using O = KafkaOutOptions;
const OptionSchema<O> kKafkaOutSchema{
    {"brokers", &O::brokers, "Bootstrap brokers host:port[,host:port]; \"embedded\" starts the in-process development broker.", required{}},
    {"topic", &O::topic, "Topic template: literal text and {field} / {a.b} / {field|fallback} from the event.", required{}},
    {"key", &O::key, "Message key template (same syntax); unset = no key. \"{device-id}\" keeps a device's events in order.", shown{"none"}},
    {"headers", &O::headers, "Static message headers, name = \"value\".", shown{"none"}},
    {"compression", &O::compression, "none | gzip | snappy | lz4 | zstd.", one_of{"none", "gzip", "snappy", "lz4", "zstd"}},
    {"acks", &O::acks, "all | 1 | 0: how many replicas must have a message before it counts as delivered.", one_of{"all", "1", "0", "-1"}},
    {"idempotence", &O::idempotence, "librdkafka's idempotent producer: no duplicates or reordering from its own retries."},
    {"delivery_timeout", &O::delivery_timeout,
     "How long a message may take to be delivered; 0 = retry until delivered. Expired = failed upstream."},
    {"flush_timeout", &O::flush_timeout, "At shutdown, how long to wait for deliveries before reporting the rest failed."},
    {"stats_interval", &O::stats_interval,
     "How often librdkafka's statistics update the broker metrics (rtt, up, retries); 0 = off."},
    {"librdkafka", &O::librdkafka,
     "Any librdkafka producer property, passed through (\"linger.ms\" = \"5\"); validate checks each as the producer would.",
     shown{"none"}},
};

FieldTemplate parse_template(const StageConfig& c, const char* key, const std::string& text) {
    try {
        return FieldTemplate(text);
    } catch (const std::invalid_argument& e) {
        c.problem(key, e.what());
        return FieldTemplate("invalid");  // never used: a stage with a problem is not built
    }
}

}  // namespace

KafkaOut::KafkaOut(const KafkaOutOptions& o, const StageConfig& c) : name_(c.name()) {
    brokers_ = o.brokers;
    if (brokers_.empty()) c.problem("brokers", "brokers must be host:port[,host:port...] or \"embedded\"");
    topic_ = parse_template(c, "topic", o.topic);
    if (o.key) {
        key_ = parse_template(c, "key", *o.key);
        has_key_ = true;
    }
    parse_ = !topic_.is_static() || (has_key_ && !key_.is_static());
    if (topic_.is_static())
        if (std::string why = kafka::topic_name_problem(topic_.literal()); !why.empty())
            c.problem("topic", "topic \"" + topic_.literal() + "\": " + why);
    for (auto& [k, v] : o.headers) headers_.emplace_back(k, v);

    kafka::Props settings;
    settings.emplace_back("compression.codec", o.compression);
    if (o.idempotence && o.acks != "all" && o.acks != "-1")
        c.problem("acks", "the idempotent producer needs acks = \"all\" (or set idempotence = false)");
    settings.emplace_back("acks", o.acks == "all" ? "-1" : o.acks);
    settings.emplace_back("enable.idempotence", o.idempotence ? "true" : "false");
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.delivery_timeout);
    // 0 = librdkafka retries until the message is delivered.
    settings.emplace_back("message.timeout.ms", std::to_string(timeout.count()));
    flush_timeout_ = o.flush_timeout;
    auto stats = std::chrono::duration_cast<std::chrono::milliseconds>(o.stats_interval);
    if (stats.count() != 0 && stats.count() < 10) c.problem("stats_interval", "stats_interval must be 0 (off) or at least 10ms");
    settings.emplace_back("statistics.interval.ms", std::to_string(stats.count()));
    conf_ = kafka::make_conf(c, kProducerDefaults, settings);
    if (c.problems().empty()) kafka::check_client(c, conf_.get(), RD_KAFKA_PRODUCER);
    c.stop_if_problems();
}

KafkaOut::~KafkaOut() { destroy_producer(); }

void KafkaOut::start(StageContext& ctx) {
    ctx_ = &ctx;
    set_logger(ctx.logger());
    register_metrics(ctx);
    bootstrap_ = kafka::resolve_brokers(brokers_, *log_);
    seed_broker_stats();
    make_producer();
    ctx.log().info("producing to {} (topic {})", bootstrap_, topic_.source());
}

HBF_REGISTER_OUTPUT("kafka", KafkaOut, kKafkaOutSchema, "Produces events to Kafka topics (librdkafka), acknowledged from delivery reports.");

}  // namespace hbf::kafka_output
