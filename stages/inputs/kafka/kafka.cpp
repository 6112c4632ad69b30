// input "kafka": a consumer group member; each message's value becomes an event.
//
// At least once: offsets are stored (enable.auto.offset.store = false) only when the acks of
// the batches holding the messages settle, and librdkafka commits stored offsets in the
// background and on close. Acks settle out of order, so each partition keeps its batches'
// segments in consumption order and stores the end of the longest settled prefix. A crash
// re-reads from the last committed offset; nothing is skipped. Rebalances drop the tracking of
// revoked partitions (their late acks are ignored; the new owner re-reads from the commit).
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "json_util.h"
#include "kafka/client.h"
#include "kafka/offsets.h"
#include "registry.h"

namespace hbf::stages {
namespace {

struct PartState {
    std::string topic;
    int32_t partition;
    kafka::OffsetTracker offsets;  // reset on revoke: older holds no longer count
    Gauge* lag = nullptr;
};

// Shared with the ack callbacks, which may run after the input object is gone.
struct Tracker {
    std::mutex m;
    rd_kafka_t* rk = nullptr;  // null once the consumer is closed
    std::map<std::pair<std::string, int32_t>, std::unique_ptr<PartState>> parts;
    Counter* not_delivered = nullptr;
    std::shared_ptr<spdlog::logger> log;
    RateLimit rl;
};

struct Hold {
    PartState* part;
    kafka::OffsetTracker::Ticket ticket;
    int64_t next_offset;
};

void settle(Tracker& t, const std::vector<Hold>& holds, AckStatus status, const std::string& reason) {
    if (status == AckStatus::failed) {
        // Outputs report failure only after their own retries (the kafka output retries forever by
        // default); the offset still moves on, so the failure is counted and logged here.
        t.not_delivered->add();
        log_limited(t.rl, *t.log, spdlog::level::err, "a batch of consumed messages was not delivered downstream: {}", reason);
    }
    std::lock_guard lk(t.m);
    if (!t.rk) return;
    rd_kafka_topic_partition_list_t* store = nullptr;
    for (const auto& h : holds) {
        PartState& p = *h.part;
        int64_t commit = p.offsets.settle(h.ticket);
        if (commit < 0) continue;
        if (!store) store = rd_kafka_topic_partition_list_new(int(holds.size()));
        rd_kafka_topic_partition_list_add(store, p.topic.c_str(), p.partition)->offset = commit;
    }
    if (store) {
        rd_kafka_offsets_store(t.rk, store);  // a partition revoked meanwhile reports an error: harmless
        rd_kafka_topic_partition_list_destroy(store);
    }
}

struct KafkaInOptions {
    std::string brokers;
    StringList topics;
    std::string group_id;
    std::string start = "earliest";
    std::string metadata_field;
    Duration commit_interval = std::chrono::seconds(1);
    const toml::table* librdkafka = nullptr;  // read by kafka::make_conf, each property at its own position
};

using O = KafkaInOptions;
const OptionSchema<O> kKafkaInSchema{
    {"brokers", &O::brokers, "Bootstrap brokers host:port[,host:port]; \"embedded\" starts the in-process development broker.", required{}},
    {"topics", &O::topics, "Topic names, or regexes starting with '^' (\"^edge-routers\\\\.\").", required{}},
    {"group_id", &O::group_id, "Consumer group; its committed offsets say where a restart resumes.", required{}},
    {"start", &O::start, "Where a group without a committed offset starts: earliest | latest.", one_of{"earliest", "latest"}},
    {"metadata_field", &O::metadata_field, "If set, adds {topic, partition, offset, key, timestamp} under this field of each event."},
    {"commit_interval", &O::commit_interval, "How often stored offsets (of delivered events) are committed.", at_least{0.001}},
    {"librdkafka", &O::librdkafka,
     "Any librdkafka consumer property, passed through (SASL, TLS, fetch sizes); validate checks each as the consumer would.",
     shown{"none"}},
};

class KafkaIn final : public Input, public kafka::Client {
public:
    KafkaIn(const KafkaInOptions& o, const StageConfig& c) : name_(c.name()), tracker_(std::make_shared<Tracker>()) {
        brokers_ = o.brokers;
        if (brokers_.empty()) c.problem("brokers", "brokers must be host:port[,host:port...] or \"embedded\"");
        topics_ = o.topics;
        if (topics_.empty()) c.problem("topics", "topics must name at least one topic or ^regex");
        for (const auto& t : topics_)
            if (t[0] != '^')
                if (std::string why = kafka::topic_name_problem(t); !why.empty())
                    c.problem("topics", "topic \"" + t + "\": " + why + " (a regex starts with '^')");
        const std::string& group = o.group_id;
        if (group.empty()) c.problem("group_id", "group_id must not be empty");
        const std::string& start = o.start;
        metadata_field_ = o.metadata_field;
        if (!metadata_field_.empty()) {
            quoted_meta_.clear();
            append_json_string(quoted_meta_, metadata_field_);
        }
        auto commit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(o.commit_interval).count();
        kafka::Props settings = {
            {"group.id", group},
            {"auto.offset.reset", start},
            {"enable.auto.offset.store", "false"},
            {"enable.auto.commit", "true"},
            {"auto.commit.interval.ms", std::to_string(commit_ms)},
        };
        conf_ = kafka::make_conf(c, {{"enable.partition.eof", "false"}}, settings);
        if (kafka::conf_get(conf_.get(), "enable.auto.offset.store") != "false")
            c.problem("librdkafka", "enable.auto.offset.store must stay false: offsets are stored when events are delivered");
        if (c.problems().empty()) kafka::check_client(c, conf_.get(), RD_KAFKA_CONSUMER);
        c.stop_if_problems();
    }

    ~KafkaIn() override { close(); }

    void start(StageContext& ctx) override {
        set_logger(ctx.logger());
        tracker_->log = log_;
        tracker_->not_delivered = &MetricsRegistry::global().counter(
            "hbf_kafka_consumer_undelivered_batches_total", "Consumed batches an output reported failed.", {{"stage", name_}});
        bootstrap_ = kafka::resolve_brokers(brokers_, *log_);
        rd_kafka_conf_t* conf = rd_kafka_conf_dup(conf_.get());
        char err[512];
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
        attach(conf);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!rk_) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("cannot create the Kafka consumer: ") + err);
        }
        tracker_->rk = rk_;
        rd_kafka_poll_set_consumer(rk_);
        rd_kafka_topic_partition_list_t* subs = rd_kafka_topic_partition_list_new(int(topics_.size()));
        for (const auto& t : topics_) rd_kafka_topic_partition_list_add(subs, t.c_str(), RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (e) throw std::runtime_error(std::string("cannot subscribe: ") + rd_kafka_err2str(e));
        ctx.log().info("consuming {} from {} as group {}", fmt::join(topics_, ","), bootstrap_, kafka::conf_get(conf_.get(), "group.id"));
    }

    void run(StageContext& ctx, Emitter& out) override {
        auto& m = ctx.metrics();
        std::vector<Hold> holds;
        uint64_t total = 0;
        while (!ctx.stopping()) {
            BatchPtr b = Batch::make();
            holds.clear();
            PartState* cur = nullptr;
            for (int timeout = 100; b->size() < ctx.batch_events && !ctx.stopping(); timeout = 0) {
                rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, timeout);
                if (!msg) break;
                if (msg->err) {
                    if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        log_limited(consume_rl_, *log_, spdlog::level::warn, "consume error: {}", rd_kafka_message_errstr(msg));
                    rd_kafka_message_destroy(msg);
                    continue;
                }
                PartState* p = part_of(msg, cur);
                if (p != cur) {
                    cur = p;
                    holds.push_back({p, {}, 0});
                }
                holds.back().next_offset = msg->offset + 1;
                append(*b, msg);
                rd_kafka_message_destroy(msg);
            }
            if (b->empty()) continue;
            {
                std::lock_guard lk(tracker_->m);
                for (auto& h : holds) h.ticket = h.part->offsets.open(h.next_offset);
            }
            for (auto& h : holds) update_lag(h);
            auto t = tracker_;
            AckRef ack = make_ack([t, hs = holds](AckStatus s, const std::string& why) { settle(*t, hs, s, why); });
            b->acks.push_back(ack.clone());
            ack.reset();
            total += b->size();
            m.events_in.add(b->size());
            m.bytes_in.add(b->bytes());
            if (!out.emit(std::move(b))) break;
        }
        ctx.log().info("consumer stopping after {} events", total);
    }

    void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
        bool coop = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
        std::string names;
        for (int i = 0; i < parts->cnt; ++i)
            names += fmt::format("{}{}[{}]", i ? " " : "", parts->elems[i].topic, parts->elems[i].partition);
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            log_->info("assigned {}", names.empty() ? "no partitions" : names);
            if (coop) rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
            else rd_kafka_assign(rk, parts);
            return;
        }
        log_->info("revoked {}", names.empty() ? "no partitions" : names);
        {
            std::lock_guard lk(tracker_->m);
            for (int i = 0; i < parts->cnt; ++i) {
                auto it = tracker_->parts.find({parts->elems[i].topic, parts->elems[i].partition});
                if (it == tracker_->parts.end()) continue;
                it->second->offsets.reset();
            }
        }
        if (coop) rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else rd_kafka_assign(rk, nullptr);
    }

private:
    static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
        static_cast<KafkaIn*>(static_cast<kafka::Client*>(opaque))->on_rebalance(rk, err, parts);
    }

    PartState* part_of(const rd_kafka_message_t* msg, PartState* cur) {
        const char* topic = rd_kafka_topic_name(msg->rkt);
        if (cur && cur->partition == msg->partition && cur->topic == topic) return cur;
        std::lock_guard lk(tracker_->m);
        auto& slot = tracker_->parts[{topic, msg->partition}];
        if (!slot) {
            slot = std::make_unique<PartState>();
            slot->topic = topic;
            slot->partition = msg->partition;
            slot->lag = &MetricsRegistry::global().gauge("hbf_kafka_consumer_lag", "Messages between the consumed position and the partition's end.",
                                                         {{"stage", name_}, {"topic", topic}, {"partition", std::to_string(msg->partition)}});
        }
        return slot.get();
    }

    void update_lag(const Hold& h) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(rk_, h.part->topic.c_str(), h.part->partition, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0)
            h.part->lag->set(std::max<int64_t>(0, hi - h.next_offset));
    }

    // The value as the event; with metadata_field, the message's coordinates are spliced in.
    void append(Batch& b, const rd_kafka_message_t* msg) {
        std::string_view v(static_cast<const char*>(msg->payload), msg->payload ? msg->len : 0);
        if (metadata_field_.empty()) {
            b.append(v);
            return;
        }
        auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
        size_t end = v.size();
        while (end > 0 && ws(v[end - 1])) --end;
        size_t start = 0;
        while (start < end && ws(v[start])) ++start;
        if (end - start < 2 || v[start] != '{' || v[end - 1] != '}') {
            b.append(v);  // not an object: the json filter's on_error decides
            return;
        }
        size_t inner = start + 1;
        while (inner < end - 1 && ws(v[inner])) ++inner;
        bool empty = inner == end - 1;
        b.begin_event();
        std::string& s = b.buf;
        s.append(v.data(), end - 1);
        if (!empty) s += ", ";
        s += quoted_meta_;
        s += ": {\"topic\": ";
        append_json_string(s, rd_kafka_topic_name(msg->rkt));
        fmt::format_to(std::back_inserter(s), ", \"partition\": {}, \"offset\": {}, \"key\": ", msg->partition, msg->offset);
        if (msg->key) append_json_string(s, std::string_view(static_cast<const char*>(msg->key), msg->key_len));
        else s += "null";
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(msg, &tt);
        if (ts >= 0) fmt::format_to(std::back_inserter(s), ", \"timestamp\": {}}}}}", ts);
        else s += ", \"timestamp\": null}}";
        b.finish_event();
    }

    void close() {
        if (!rk_) return;
        {
            std::lock_guard lk(tracker_->m);
            // Settled offsets are stored already; commit them now rather than at the next interval.
            rd_kafka_commit(rk_, nullptr, 0);
            tracker_->rk = nullptr;
        }
        rd_kafka_consumer_close(rk_);
        rd_kafka_destroy(rk_);
        rk_ = nullptr;
    }

    std::string name_, brokers_, bootstrap_, metadata_field_, quoted_meta_;
    std::vector<std::string> topics_;
    kafka::ConfPtr conf_;
    rd_kafka_t* rk_ = nullptr;
    std::shared_ptr<Tracker> tracker_;
    RateLimit consume_rl_;
};

HBF_REGISTER_INPUT("kafka", KafkaIn, kKafkaInSchema, "Consumes Kafka topics in a consumer group; offsets committed after delivery.");

}  // namespace
}  // namespace hbf::stages
