// output "kafka": produces each event's JSON text to a Kafka topic with librdkafka.
//
// Zero copy: the message value points into the batch's buffer, so a batch stays alive (in an
// InFlight record, the messages' opaque) until librdkafka has reported on each of its messages;
// then its acks settle: delivered, or failed with librdkafka's error. Being queued is not
// delivery. Backpressure: when librdkafka's queue is full, write() serves delivery reports
// (rd_kafka_poll) until there is room, so the output's queue fills and the inputs slow down.
// A fatal producer error (the idempotent producer's) recreates the producer and produces again
// every message not yet reported delivered.
//
// Health: when librdkafka reports every broker down, the stage is "degraded" (/health 503) with
// the last broker's error and for how long, until a delivery succeeds or a statistics report
// shows a broker up again. librdkafka keeps reconnecting meanwhile; messages wait (and fail only
// if delivery_timeout is set).
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "field_template.h"
#include "kafka/client.h"
#include "kafka/stats.h"
#include "registry.h"

namespace hbf::stages {
namespace {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// One per batch written: counts the batch's messages librdkafka has not reported on yet.
struct InFlight {
    BatchPtr batch;
    uint32_t pending = 0;
    uint32_t delivered = 0;
    AckStatus worst = AckStatus::delivered;
    bool retryable = false;  // a failure not marked final (a timeout, a shutdown)
    std::string reason;
    void note(AckStatus s, std::string_view why, bool final = false) {
        if (s == AckStatus::failed && !final) retryable = true;
        if (int(s) > int(worst)) {
            worst = s;
            reason.assign(why);
        }
    }
};

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

struct KafkaOutOptions {
    std::string brokers, topic;
    std::optional<std::string> key;
    StringMap headers;
    std::string compression = "lz4";
    std::string acks = "all";
    bool idempotence = true;
    Duration delivery_timeout{0};
    Duration flush_timeout = std::chrono::seconds(5);
    Duration stats_interval = std::chrono::seconds(5);
    const toml::table* librdkafka = nullptr;  // read by kafka::make_conf, each property at its own position
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

class KafkaOut final : public Output, public kafka::Client {
public:
    KafkaOut(const KafkaOutOptions& o, const StageConfig& c) : name_(c.name()) {
        brokers_ = o.brokers;
        if (brokers_.empty()) c.problem("brokers", "brokers must be host:port[,host:port...] or \"embedded\"");
        topic_ = parse_template(c, "topic", o.topic);
        if (o.key) {
            key_ = parse_template(c, "key", *o.key);
            has_key_ = true;
        }
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

    ~KafkaOut() override { destroy_producer(); }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        set_logger(ctx.logger());
        auto& reg = MetricsRegistry::global();
        Labels l{{"stage", name_}};
        delivered_ = &reg.counter("hbf_kafka_delivered_total", "Messages the broker acknowledged.", l);
        failed_ = &reg.counter("hbf_kafka_failed_total", "Messages that failed (delivery timeout, rejected by the broker).", l);
        const char* retried_help =
            "Retries: produce requests librdkafka sent again (what=\"request\", its statistics' txretries), messages "
            "produced again after a fatal producer error (what=\"message\").";
        retried_ = &reg.counter("hbf_kafka_retried_total", retried_help, {{"stage", name_}, {"what", "message"}});
        stats_.emplace(name_, &reg.counter("hbf_kafka_retried_total", retried_help, {{"stage", name_}, {"what", "request"}}));
        inflight_events_ = &reg.gauge("hbf_kafka_inflight_events", "Messages handed to librdkafka and not yet reported on.", l);
        inflight_bytes_ = &reg.gauge("hbf_kafka_inflight_bytes", "Bytes of event text held for librdkafka (counted in its queue limit).", l);
        bad_topic_ = &ctx.metrics().dropped("invalid_topic");
        missing_field_ = &ctx.metrics().dropped("topic_field_missing");
        bootstrap_ = kafka::resolve_brokers(brokers_, *log_);
        for (const auto& hp : split_brokers(bootstrap_)) stats_->seed(hp);
        make_producer();
        ctx.log().info("producing to {} (topic {})", bootstrap_, topic_.source());
    }

    void write(BatchPtr b) override {
        InFlight* f = take_inflight();
        f->batch = std::move(b);
        f->pending = 1;  // held by this call until every message is produced
        if (headers_.empty()) write_grouped(f);
        else write_each(f);
        release(f);
        rd_kafka_poll(rk_, 0);
        recover_if_fatal();
    }

    // The topic handle and key of event i: static ones as they are, templated ones read from the
    // event. False when the event was dropped (not JSON, a field missing, an illegal topic name).
    bool topic_and_key(Batch& batch, size_t i, bool parse, InFlight& f, rd_kafka_topic_t*& rkt, std::string_view& key) {
        if (!parse) {
            if (has_key_) key = key_.literal();
            return true;
        }
        std::string_view ev = batch.event(i);
        simdjson::ondemand::document doc;
        if (parser_.iterate(ev.data(), ev.size(), batch.capacity_after(i)).get(doc) != simdjson::SUCCESS) {
            drop(f, *missing_field_, "the event is not JSON; its topic cannot be resolved");
            return false;
        }
        return resolve(doc, rkt, key, f);
    }

    // Messages with headers: one rd_kafka_producev each (produce_batch cannot set headers).
    void write_each(InFlight* f) {
        Batch& batch = *f->batch;
        const bool parse = !topic_.is_static() || (has_key_ && !key_.is_static());
        for (size_t i = 0; i < batch.size(); ++i) {
            std::string_view ev = batch.event(i);
            rd_kafka_topic_t* rkt = rkt_;
            std::string_view key;
            if (!topic_and_key(batch, i, parse, *f, rkt, key)) continue;
            if (!produce(rkt, ev, key, f)) continue;
            ++f->pending;
        }
    }

    // The batch's messages grouped by topic, each group handed over with one
    // rd_kafka_produce_batch: librdkafka then reads the clock once per group instead of twice per
    // message (that was 40% of this thread's time with producev). Order within a topic is kept.
    void write_grouped(InFlight* f) {
        Batch& batch = *f->batch;
        const bool parse = !topic_.is_static() || (has_key_ && !key_.is_static());
        const bool key_per_event = has_key_ && !key_.is_static();
        for (size_t g = 0; g < groups_used_; ++g) groups_[g].clear();
        groups_used_ = 0;
        group_of_.clear();
        keys_.clear();
        for (size_t i = 0; i < batch.size(); ++i) {
            std::string_view ev = batch.event(i);
            rd_kafka_topic_t* rkt = rkt_;
            std::string_view key;
            if (!topic_and_key(batch, i, parse, *f, rkt, key)) continue;
            Group& g = group(rkt);
            rd_kafka_message_t& m = g.msgs.emplace_back();
            m = rd_kafka_message_t{};
            m.payload = const_cast<char*>(ev.data());
            m.len = ev.size();
            m._private = f;
            if (key_per_event) {  // rendered into keys_, which may move: pointers are set below
                g.key_at.push_back(key.empty() ? kNoKey : uint32_t(keys_.size()));
                keys_.append(key);
                m.key_len = key.size();
            } else if (!key.empty()) {
                m.key = const_cast<char*>(key.data());
                m.key_len = key.size();
            }
        }
        for (size_t gi = 0; gi < groups_used_; ++gi) {
            Group& g = groups_[gi];
            if (key_per_event)
                for (size_t j = 0; j < g.msgs.size(); ++j)
                    if (g.key_at[j] != kNoKey) g.msgs[j].key = keys_.data() + g.key_at[j];
            produce_group(g, f);
        }
    }

    struct Group {
        rd_kafka_topic_t* rkt = nullptr;
        std::string topic;  // to find the handle again after the producer was recreated
        uint64_t producer_gen = 0;
        std::vector<rd_kafka_message_t> msgs;
        std::vector<uint32_t> key_at;
        void clear() {
            msgs.clear();
            key_at.clear();
        }
    };
    static constexpr uint32_t kNoKey = UINT32_MAX;

    Group& group(rd_kafka_topic_t* rkt) {
        if (groups_used_ > 0 && groups_[groups_used_ - 1].rkt == rkt) return groups_[groups_used_ - 1];
        auto [it, fresh] = group_of_.try_emplace(rkt, groups_used_);
        if (!fresh) return groups_[it->second];
        if (groups_used_ == groups_.size()) groups_.emplace_back();
        Group& g = groups_[groups_used_++];
        g.rkt = rkt;
        g.topic = rd_kafka_topic_name(rkt);
        g.producer_gen = producer_gen_;
        return g;
    }

    void produce_group(Group& g, InFlight* f) {
        auto& msgs = g.msgs;
        while (!msgs.empty()) {
            if (g.producer_gen != producer_gen_) {  // recreated while an earlier group waited: the old handle is gone
                g.rkt = topic_.is_static() ? rkt_ : topic_handle(g.topic);
                g.producer_gen = producer_gen_;
            }
            int n = int(msgs.size());
            int ok = rd_kafka_produce_batch(g.rkt, RD_KAFKA_PARTITION_UA, 0, msgs.data(), n);
            size_t keep = 0;  // messages refused for a full queue, moved to the front in order
            int64_t bytes = 0;
            for (auto& m : msgs) {
                if (!m.err) {
                    bytes += int64_t(m.len);
                } else if (m.err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    msgs[keep] = m;
                    msgs[keep++].err = RD_KAFKA_RESP_ERR_NO_ERROR;
                } else {
                    fail(*f, fmt::format("produce to {} failed: {}", g.topic, rd_kafka_err2str(m.err)), 1, refused_for_good(m.err));
                }
            }
            f->pending += uint32_t(ok);
            inflight_events_->add(ok);
            inflight_bytes_->add(bytes);
            msgs.resize(keep);
            if (keep == 0) break;
            // Backpressure: serve delivery reports until librdkafka has room. Only this thread
            // serves them, so a refused message is never overtaken by a later one of the same call.
            if (ctx_->abort_flag().load()) {
                fail(*f, fmt::format("shutdown timeout passed while librdkafka's queue was full ({} events)", keep), keep);
                return;
            }
            rd_kafka_poll(rk_, 50);
            recover_if_fatal();
            update_health();
        }
    }

    void tick() override {
        rd_kafka_poll(rk_, 0);
        recover_if_fatal();
        update_health();
    }

    void flush(std::chrono::steady_clock::time_point deadline) override {
        deadline = std::min(deadline, std::chrono::steady_clock::now() + flush_timeout_);
        while (rk_ && (rd_kafka_outq_len(rk_) > 0 || !replay_.empty())) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            rd_kafka_flush(rk_, int(std::min<int64_t>(left.count(), 100)));
            recover_if_fatal();
        }
        if (!rk_) return;
        int left = rd_kafka_outq_len(rk_);
        if (left == 0) return;
        // What remains is failed, and each batch holding it reports so upstream.
        uint64_t failed_before = failed_->get();
        shutting_down_ = true;
        rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 50 && rd_kafka_outq_len(rk_) > 0; ++i) rd_kafka_poll(rk_, 10);
        // The stage is left failed: the process exits 1, and the batches' acks report failure upstream.
        std::string why;
        {
            std::lock_guard lk(error_m_);
            why = last_error_.empty() ? "no error from librdkafka" : "last error: " + last_error_;
        }
        std::string failure = fmt::format("{} events undelivered at shutdown: {} did not acknowledge them within flush_timeout ({})",
                                          failed_->get() - failed_before, bootstrap_, why);
        log_->error("{}", failure);
        ctx_->set_failed(failure);
    }

    void stop() override { destroy_producer(); }

    void on_error(rd_kafka_t* rk, int err, const char* reason) override {
        if (err == RD_KAFKA_RESP_ERR__FATAL) fatal_ = true;
        {
            std::lock_guard lk(error_m_);
            last_error_ = reason;
            if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE) {
                auto [broker, what] = broker_error(reason);
                if (!broker.empty()) {
                    broker_error_ = broker + ": " + what;
                    down_brokers_.push_back(broker);
                }
            } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !all_down_) {
                all_down_ = true;
                all_down_since_ = std::chrono::steady_clock::now();
            }
        }
        Client::on_error(rk, err, reason);
    }

    // On the polling thread (rd_kafka_poll), every stats_interval.
    void on_stats(std::string_view json) {
        if (std::string why = stats_->update(json); !why.empty())
            log_limited(stats_rl_, *log_, spdlog::level::warn, "unreadable librdkafka statistics: {}", why);
        else if (stats_->any_up())
            brokers_back();
    }

    void on_delivery(const rd_kafka_message_t* m) {
        auto* f = static_cast<InFlight*>(m->_private);
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ++f->delivered;
            delivered_->add();
            if (all_down_) brokers_back();
        } else if (!shutting_down_ && (m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                                       m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)) {
            fatal_ = true;  // produced again once the producer is recreated; the batch stays held
            replay_.push_back({f, index_of(*f->batch, static_cast<const char*>(m->payload))});
            return;
        } else {
            failed_->add();
            const char* why = rd_kafka_err2str(m->err);
            log_limited(fail_rl_, *log_, spdlog::level::err, "delivery to topic {} failed: {}",
                        m->rkt ? rd_kafka_topic_name(m->rkt) : "?", why);
            f->note(AckStatus::failed, why, refused_for_good(m->err));
        }
        inflight_events_->add(-1);
        inflight_bytes_->add(-int64_t(m->len));
        release(f);
    }

private:
    // "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in
    // state CONNECT)" -> {"127.0.0.1:9", "Connection refused"}.
    static std::pair<std::string, std::string> broker_error(std::string_view reason) {
        auto colon = reason.find(": ");
        if (colon == std::string_view::npos) return {};
        std::string_view broker = reason.substr(0, colon), what = reason.substr(colon + 2);
        broker = broker.substr(0, broker.rfind('/'));
        if (auto f = what.find(" failed: "); f != std::string_view::npos) what = what.substr(f + 9);
        if (auto a = what.find(" (after "); a != std::string_view::npos) what = what.substr(0, a);
        return {std::string(broker), std::string(what)};
    }

    static std::vector<std::string> split_brokers(const std::string& list) {
        std::vector<std::string> out;
        size_t at = 0;
        while (at <= list.size()) {
            size_t end = std::min(list.find(',', at), list.size());
            std::string hp = list.substr(at, end - at);
            hp.erase(0, hp.find_first_not_of(" \t"));
            hp.erase(hp.find_last_not_of(" \t") + 1);
            if (auto s = hp.find("://"); s != std::string::npos) hp = hp.substr(s + 3);
            if (!hp.empty()) out.push_back(hp);
            at = end + 1;
        }
        return out;
    }

    // A delivery succeeded or a broker is up: no longer degraded (applied by update_health()).
    void brokers_back() {
        std::lock_guard lk(error_m_);
        all_down_ = false;
    }

    // On the output thread: the degraded state and the broker gauges from what on_error saw.
    void update_health() {
        std::string reason;
        std::vector<std::string> down;
        double secs = 0;
        {
            std::lock_guard lk(error_m_);
            down.swap(down_brokers_);
            if (all_down_) {
                secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - all_down_since_).count();
                reason = fmt::format("{} (all brokers down for {}s)", broker_error_.empty() ? last_error_ : broker_error_, int64_t(secs));
            }
        }
        for (const auto& b : down) stats_->down(b);
        if (reason == degraded_) return;
        if (reason.empty()) log_->info("a broker is reachable again after {:.1f}s with all brokers down", down_for_);
        else if (degraded_.empty()) log_->error("cannot deliver: {}; librdkafka keeps reconnecting", reason);
        down_for_ = secs;
        degraded_ = reason;
        if (reason.empty()) ctx_->clear_degraded();
        else ctx_->set_degraded(reason);
    }

    static FieldTemplate parse_template(const StageConfig& c, const char* key, const std::string& text) {
        try {
            return FieldTemplate(text);
        } catch (const std::invalid_argument& e) {
            c.problem(key, e.what());
            return FieldTemplate("invalid");  // never used: a stage with a problem is not built
        }
    }

    static size_t index_of(const Batch& b, const char* payload) {
        uint32_t off = uint32_t(payload - b.buf.data());
        auto it = std::lower_bound(b.events.begin(), b.events.end(), off, [](const EventRef& e, uint32_t o) { return e.off < o; });
        if (it != b.events.end() && it->off == off) return size_t(it - b.events.begin());
        for (size_t i = 0; i < b.events.size(); ++i)  // events out of order in the buffer
            if (b.events[i].off == off) return i;
        return 0;
    }

    bool resolve(simdjson::ondemand::document& doc, rd_kafka_topic_t*& rkt, std::string_view& key, InFlight& f) {
        std::string_view missing;
        if (!topic_.is_static()) {
            topic_buf_.clear();
            if (!topic_.render(doc, topic_buf_, &missing)) {
                drop(f, *missing_field_, fmt::format("field '{}' of the topic template is missing", missing));
                return false;
            }
            rkt = topic_handle(topic_buf_);
            if (!rkt) {
                drop(f, *bad_topic_, fmt::format("topic \"{}\": {}", topic_buf_, kafka::topic_name_problem(topic_buf_)));
                return false;
            }
        }
        if (has_key_) {
            if (key_.is_static()) {
                key = key_.literal();
            } else {
                key_buf_.clear();
                if (key_.render(doc, key_buf_, &missing)) key = key_buf_;  // a missing key field: no key
            }
        }
        return true;
    }

    // A cached handle, or nullptr for a name Kafka does not allow.
    rd_kafka_topic_t* topic_handle(const std::string& name) {
        auto it = topics_.find(std::string_view(name));
        if (it != topics_.end()) return it->second;
        rd_kafka_topic_t* t = nullptr;
        if (kafka::topic_name_problem(name).empty()) t = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
        if (t || topics_.size() < 10000) topics_.emplace(name, t);
        return t;
    }

    bool produce(rd_kafka_topic_t* rkt, std::string_view ev, std::string_view key, InFlight* f) {
        for (;;) {
            int rc;
            if (headers_.empty()) {
                rc = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, const_cast<char*>(ev.data()), ev.size(),
                                      key.empty() ? nullptr : key.data(), key.size(), f);
            } else {
                rd_kafka_headers_t* h = rd_kafka_headers_new(headers_.size());
                for (const auto& [k, v] : headers_) rd_kafka_header_add(h, k.data(), ssize_t(k.size()), v.data(), ssize_t(v.size()));
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    rk_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA), RD_KAFKA_V_MSGFLAGS(0),
                    RD_KAFKA_V_VALUE(const_cast<char*>(ev.data()), ev.size()),
                    RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(f),
                    RD_KAFKA_V_END);
                if (e) rd_kafka_headers_destroy(h);
                rc = e ? -1 : 0;
                if (e) errno = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? ENOBUFS : EINVAL;
            }
            if (rc == 0) {
                inflight_events_->add(1);
                inflight_bytes_->add(int64_t(ev.size()));
                return true;
            }
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || errno == ENOBUFS) {
                // Backpressure: serve delivery reports until librdkafka has room.
                if (ctx_->abort_flag().load()) {
                    fail(*f, "shutdown timeout passed while librdkafka's queue was full");
                    return false;
                }
                uint64_t gen = producer_gen_;
                std::string topic = rd_kafka_topic_name(rkt);
                rd_kafka_poll(rk_, 50);
                recover_if_fatal();
                update_health();
                if (gen != producer_gen_) rkt = topic_.is_static() ? rkt_ : topic_handle(topic);  // the old handle is gone
                continue;
            }
            fail(*f, fmt::format("produce to {} failed: {}", rd_kafka_topic_name(rkt), rd_kafka_err2str(err)), 1, refused_for_good(err));
            return false;
        }
    }

    void drop(InFlight& f, Counter& c, const std::string& why) {
        c.add();
        log_limited(drop_rl_, *log_, spdlog::level::warn, "event dropped: {}", why);
        f.note(AckStatus::dropped, why);
    }
    void fail(InFlight& f, const std::string& why, uint64_t events = 1, bool final = false) {
        failed_->add(events);
        log_limited(fail_rl_, *log_, spdlog::level::err, "{}", why);
        f.note(AckStatus::failed, why, final);
    }

    // Errors about the message itself: producing it again would fail again.
    static bool refused_for_good(rd_kafka_resp_err_t e) {
        switch (e) {
            case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
            case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
            case RD_KAFKA_RESP_ERR_INVALID_MSG:
            case RD_KAFKA_RESP_ERR_INVALID_RECORD:
            case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: return true;
            default: return false;
        }
    }

    void release(InFlight* f) {
        if (--f->pending > 0) return;
        if (f->worst == AckStatus::failed && !f->retryable) f->batch->mark_failed_for_good(f->reason);
        else f->batch->mark(f->worst, f->reason);
        ctx_->metrics().events_out.add(f->delivered);
        f->batch.reset();  // settles its acks
        f->delivered = 0;
        f->worst = AckStatus::delivered;
        f->retryable = false;
        f->reason.clear();
        free_.push_back(f);
    }

    InFlight* take_inflight() {
        if (free_.empty()) {
            pool_.push_back(std::make_unique<InFlight>());
            return pool_.back().get();
        }
        InFlight* f = free_.back();
        free_.pop_back();
        return f;
    }

    static void dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        static_cast<KafkaOut*>(static_cast<kafka::Client*>(opaque))->on_delivery(m);
    }
    static int stats_cb(rd_kafka_t*, char* json, size_t len, void* opaque) {
        static_cast<KafkaOut*>(static_cast<kafka::Client*>(opaque))->on_stats(std::string_view(json, len));
        return 0;  // librdkafka frees json
    }

    void make_producer() {
        rd_kafka_conf_t* conf = rd_kafka_conf_dup(conf_.get());
        char err[512];
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
        attach(conf);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
        ++producer_gen_;
        stats_->reset_totals();
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!rk_) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("cannot create the Kafka producer: ") + err);
        }
        if (topic_.is_static()) {
            rkt_ = rd_kafka_topic_new(rk_, topic_.literal().c_str(), nullptr);
            if (!rkt_) throw std::runtime_error("cannot use topic " + topic_.literal() + ": " + rd_kafka_err2str(rd_kafka_last_error()));
        }
    }

    void destroy_producer() {
        if (!rk_) return;
        for (auto& [n, t] : topics_)
            if (t) rd_kafka_topic_destroy(t);
        topics_.clear();
        if (rkt_) rd_kafka_topic_destroy(rkt_);
        rkt_ = nullptr;
        rd_kafka_destroy(rk_);
        rk_ = nullptr;
    }

    // After a fatal error: purge what librdkafka holds (each purged message lands in replay_),
    // recreate the producer and produce those messages again.
    void recover_if_fatal() {
        if (!fatal_ || recovering_) return;
        recovering_ = true;
        char why[512] = "";
        rd_kafka_fatal_error(rk_, why, sizeof why);
        log_->error("fatal producer error: {}; recreating the producer and producing {}+ undelivered messages again", why,
                    rd_kafka_outq_len(rk_));
        rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 100 && rd_kafka_outq_len(rk_) > 0; ++i) rd_kafka_poll(rk_, 10);
        destroy_producer();
        make_producer();
        fatal_ = false;
        std::vector<std::pair<InFlight*, size_t>> again;
        again.swap(replay_);
        for (auto& [f, i] : again) {
            inflight_events_->add(-1);
            inflight_bytes_->add(-int64_t(f->batch->events[i].len));
            retried_->add();
            rd_kafka_topic_t* rkt = rkt_;
            std::string_view key;
            bool ok = true;
            if (!topic_.is_static() || (has_key_ && !key_.is_static())) {
                std::string_view ev = f->batch->event(i);
                simdjson::ondemand::document doc;
                ok = parser_.iterate(ev.data(), ev.size(), f->batch->capacity_after(i)).get(doc) == simdjson::SUCCESS &&
                     resolve(doc, rkt, key, *f);
            } else if (has_key_) {
                key = key_.literal();
            }
            if (!ok || !produce(rkt, f->batch->event(i), key, f)) release(f);
        }
        recovering_ = false;
    }

    std::string name_, brokers_, bootstrap_;
    FieldTemplate topic_, key_;
    bool has_key_ = false;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::chrono::nanoseconds flush_timeout_{};
    kafka::ConfPtr conf_;

    rd_kafka_t* rk_ = nullptr;
    rd_kafka_topic_t* rkt_ = nullptr;
    std::unordered_map<std::string, rd_kafka_topic_t*, StringHash, std::equal_to<>> topics_;
    simdjson::ondemand::parser parser_;
    std::string topic_buf_, key_buf_, keys_;
    std::vector<Group> groups_;
    size_t groups_used_ = 0;
    std::unordered_map<rd_kafka_topic_t*, size_t> group_of_;
    uint64_t producer_gen_ = 0;
    std::vector<std::unique_ptr<InFlight>> pool_;
    std::vector<InFlight*> free_;
    std::vector<std::pair<InFlight*, size_t>> replay_;
    bool fatal_ = false, recovering_ = false, shutting_down_ = false;

    StageContext* ctx_ = nullptr;
    Counter *delivered_ = nullptr, *failed_ = nullptr, *retried_ = nullptr, *bad_topic_ = nullptr, *missing_field_ = nullptr;
    Gauge *inflight_events_ = nullptr, *inflight_bytes_ = nullptr;
    std::optional<kafka::BrokerStats> stats_;
    std::mutex error_m_;  // error_cb runs on librdkafka's threads
    std::string last_error_, broker_error_;
    std::vector<std::string> down_brokers_;  // seen failing since the last tick
    std::atomic<bool> all_down_{false};
    std::chrono::steady_clock::time_point all_down_since_{};
    std::string degraded_;  // what /health was last told (output thread)
    double down_for_ = 0;
    RateLimit fail_rl_, drop_rl_, stats_rl_;
};

HBF_REGISTER_OUTPUT("kafka", KafkaOut, kKafkaOutSchema, "Produces events to Kafka topics (librdkafka), acknowledged from delivery reports.");

}  // namespace
}  // namespace hbf::stages
