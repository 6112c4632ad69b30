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
//
// The class is written in four files, one concern each:
//   kafka.cpp     options, their checks, start, registration
//   produce.cpp   the produce paths: a batch's events to librdkafka, topic and key per event
//   producer.cpp  the producer's lifecycle: delivery reports, fatal-error recovery, flush, stop
//   health.cpp    metrics, librdkafka's errors and statistics, the degraded state
//
// Threads: everything runs on the output's thread (write, tick, flush, and librdkafka's
// callbacks, which rd_kafka_poll serves there) except on_error, which librdkafka may call from
// its own threads: what it writes is atomic (fatal_, all_down_) or under error_m_.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "field_template.h"
#include "kafka/client.h"
#include "kafka/stats.h"
#include "registry.h"

namespace hbf::kafka_output {

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

class KafkaOut final : public Output, public kafka::Client {
public:
    KafkaOut(const KafkaOutOptions& o, const StageConfig& c);
    ~KafkaOut() override;

    void start(StageContext& ctx) override;
    void write(BatchPtr b) override;
    void tick() override;
    // Delivery reports are served by rd_kafka_poll, in write() and tick(): within a second of a
    // write, while batches wait for theirs, ticks come every 2 ms instead of every 100 ms (a
    // request with ack = "delivered" waited up to 100 ms for its report). Later, as during an
    // outage, the slow tick saves the wake-ups.
    bool settles_in_tick() const override {
        return pool_.size() > free_.size() && std::chrono::steady_clock::now() - last_write_ < std::chrono::seconds(1);
    }
    void flush(std::chrono::steady_clock::time_point deadline) override;
    void stop() override;
    void on_error(rd_kafka_t* rk, int err, const char* reason) override;

private:
    // The batch's messages with one topic, handed to librdkafka together (produce.cpp).
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

    // produce.cpp
    bool topic_and_key(Batch& batch, size_t i, InFlight& f, rd_kafka_topic_t*& rkt, std::string_view& key);
    bool resolve(simdjson::ondemand::document& doc, rd_kafka_topic_t*& rkt, std::string_view& key, InFlight& f);
    rd_kafka_topic_t* topic_handle(const std::string& name);
    void write_each(InFlight* f);
    void write_grouped(InFlight* f);
    Group& group(rd_kafka_topic_t* rkt);
    void produce_group(Group& g, InFlight* f);
    bool produce(rd_kafka_topic_t* rkt, std::string_view ev, std::string_view key, InFlight* f);
    void drop(InFlight& f, Counter& c, const std::string& why);
    void fail(InFlight& f, const std::string& why, uint64_t events = 1, bool final = false);
    static bool refused_for_good(rd_kafka_resp_err_t e);

    // producer.cpp
    void make_producer();
    void destroy_producer();
    void recover_if_fatal();
    void on_delivery(const rd_kafka_message_t* m);
    bool producer_failed() const;
    void release(InFlight* f);
    InFlight* take_inflight();
    static void dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
    static int stats_cb(rd_kafka_t*, char* json, size_t len, void* opaque);

    // health.cpp
    void register_metrics(StageContext& ctx);
    void seed_broker_stats();  // a broker gauge for each bootstrap broker from the start
    void on_stats(std::string_view json);
    void brokers_back();
    void update_health();

    std::string name_, brokers_, bootstrap_;
    FieldTemplate topic_, key_;
    bool has_key_ = false;
    bool parse_ = false;  // the topic or the key is read from each event
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
    std::atomic<bool> fatal_{false};  // set by on_error, possibly on one of librdkafka's threads
    bool recovering_ = false, shutting_down_ = false;
    std::chrono::steady_clock::time_point last_write_{};

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

}  // namespace hbf::kafka_output
