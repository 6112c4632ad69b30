// librdkafka's statistics (statistics.interval.ms, delivered as JSON to the stats callback on the
// polling thread) turned into metrics, per broker: round-trip time p50/p99, whether the broker is
// up, and its retried requests (txretries), accumulated across producer instances.
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

    // Updates the metrics from one statistics document; returns "" or what was wrong with it.
    std::string update(std::string_view json);
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
    std::map<std::string, Broker, std::less<>> brokers_;
    std::map<std::string, uint64_t, std::less<>> last_retries_;
    simdjson::dom::parser parser_;
};

}  // namespace hbf::kafka
