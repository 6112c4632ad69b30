// librdkafka's statistics (statistics.interval.ms, delivered as JSON to the stats callback on the
// polling thread) turned into metrics, per broker host:port: round-trip time p50/p99, whether the
// connection is up, and its retried requests (txretries), accumulated across producer instances.
// A broker's up gauge exists from the first connection attempt (seed() at start, 0 until a
// statistics report shows it UP); librdkafka's bootstrap and learned entries for one address
// are one broker.
//
// Off the hot path (every few seconds): parsed with simdjson's DOM API.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "metrics.h"

namespace hbf::kafka {

class BrokerStats {
public:
    // Metrics are registered lazily, one series per broker, all labelled {stage}.
    explicit BrokerStats(std::string stage, Counter* retries = nullptr) : stage_(std::move(stage)), retries_(retries) {}

    // Creates the broker's gauges (up = 0) before any statistics arrive.
    void seed(const std::string& host_port) { broker(host_port); }
    // Marks a broker down (a connection error came in between two reports).
    void down(const std::string& host_port);
    // Updates the metrics from one statistics document; returns "" or what was wrong with it.
    std::string update(std::string_view json);
    // Whether the last statistics document showed any broker connection UP.
    bool any_up() const { return any_up_; }
    // A new rd_kafka_t starts its counters from zero.
    void reset_totals() { last_retries_.clear(); }

    // For tests and the log: the txretries seen so far, summed over brokers and instances.
    uint64_t retries() const { return retries_total_; }

private:
    struct Broker {
        Gauge *rtt_p50 = nullptr, *rtt_p99 = nullptr, *up = nullptr;
    };
    Broker& broker(const std::string& name);

    std::string stage_;
    Counter* retries_;
    uint64_t retries_total_ = 0;
    bool any_up_ = false;
    std::map<std::string, Broker, std::less<>> brokers_;
    std::map<std::string, uint64_t, std::less<>> last_retries_;
    simdjson::dom::parser parser_;
};

}  // namespace hbf::kafka
