#include "stats.h"

namespace hbf::kafka {

BrokerStats::Broker& BrokerStats::broker(const std::string& name) {
    auto it = brokers_.find(name);
    if (it != brokers_.end()) return it->second;
    auto& reg = MetricsRegistry::global();
    const char* rtt_help = "Broker round-trip time over the last statistics interval (librdkafka's rtt window).";
    Broker b;
    b.rtt_p50 = &reg.gauge("hbf_kafka_broker_rtt_seconds", rtt_help, {{"stage", stage_}, {"broker", name}, {"quantile", "0.5"}}, 1e6);
    b.rtt_p99 = &reg.gauge("hbf_kafka_broker_rtt_seconds", rtt_help, {{"stage", stage_}, {"broker", name}, {"quantile", "0.99"}}, 1e6);
    b.up = &reg.gauge("hbf_kafka_broker_up", "1 while librdkafka's connection to the broker is UP, else 0.", {{"stage", stage_}, {"broker", name}});
    return brokers_.emplace(name, b).first->second;
}

std::string BrokerStats::update(std::string_view json) {
    simdjson::dom::element doc;
    if (auto err = parser_.parse(json.data(), json.size()).get(doc)) return simdjson::error_message(err);
    simdjson::dom::object brokers;
    if (doc["brokers"].get(brokers)) return "no \"brokers\" object";
    for (auto [key, b] : brokers) {
        int64_t nodeid = -1;
        std::string_view name, state;
        // The bootstrap and internal entries (nodeid -1) duplicate the learned brokers.
        if (b["nodeid"].get(nodeid) || nodeid < 0 || b["name"].get(name)) continue;
        std::string n(name);
        Broker& m = broker(n);
        if (!b["state"].get(state)) m.up->set(state == "UP" ? 1 : 0);
        simdjson::dom::object rtt;
        int64_t cnt = 0, p50 = 0, p99 = 0;
        // An empty window (no requests answered) keeps the last figures rather than showing 0.
        if (!b["rtt"].get(rtt) && !rtt["cnt"].get(cnt) && cnt > 0 && !rtt["p50"].get(p50) && !rtt["p99"].get(p99)) {
            m.rtt_p50->set(p50);
            m.rtt_p99->set(p99);
        }
        uint64_t retries = 0;
        if (!b["txretries"].get(retries)) {
            uint64_t& last = last_retries_[n];
            if (retries > last) {
                retries_total_ += retries - last;
                if (retries_) retries_->add(retries - last);
            }
            last = retries;
        }
    }
    return "";
}

}  // namespace hbf::kafka
