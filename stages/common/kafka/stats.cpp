#include "stats.h"

namespace hbf::kafka {

BrokerStats::Broker& BrokerStats::broker(const std::string& name) {
    auto it = brokers_.find(name);
    if (it != brokers_.end()) return it->second;
    auto& reg = MetricsRegistry::global();
    Broker b;
    b.up = &reg.gauge("hbf_kafka_broker_up", "1 while librdkafka's connection to the broker is UP, else 0.", {{"stage", stage_}, {"broker", name}});
    return brokers_.emplace(name, b).first->second;
}

void BrokerStats::down(const std::string& host_port) { broker(host_port).up->set(0); }

std::string BrokerStats::update(std::string_view json) {
    simdjson::dom::element doc;
    if (auto err = parser_.parse(json.data(), json.size()).get(doc)) return simdjson::error_message(err);
    simdjson::dom::object brokers;
    if (doc["brokers"].get(brokers)) return "no \"brokers\" object";
    // librdkafka names a broker "host:port/nodeid", or "host:port/bootstrap" before it learned
    // the cluster: both are the connection to host:port, up when either entry is.
    std::map<std::string, bool, std::less<>> up;
    for (auto [key, b] : brokers) {
        int64_t nodeid = -1;
        std::string_view name, state;
        if (b["nodeid"].get(nodeid) || b["name"].get(name) || b["state"].get(state)) continue;
        auto slash = name.rfind('/');
        if (nodeid < 0 && (slash == std::string_view::npos || name.substr(slash) != "/bootstrap")) continue;  // internal
        up[std::string(name.substr(0, slash))] |= state == "UP";
    }
    any_up_ = false;
    for (auto& [hp, is_up] : up) {
        broker(hp).up->set(is_up ? 1 : 0);
        any_up_ |= is_up;
    }
    for (auto [key, b] : brokers) {
        int64_t nodeid = -1;
        std::string_view name;
        // Figures come from the learned brokers; the bootstrap entries' repeat them.
        if (b["nodeid"].get(nodeid) || nodeid < 0 || b["name"].get(name)) continue;
        std::string n(name.substr(0, name.rfind('/')));
        Broker& m = broker(n);
        simdjson::dom::object rtt;
        int64_t cnt = 0, p50 = 0, p99 = 0;
        // An empty window (no requests answered) keeps the last figures rather than showing 0.
        if (!b["rtt"].get(rtt) && !rtt["cnt"].get(cnt) && cnt > 0 && !rtt["p50"].get(p50) && !rtt["p99"].get(p99)) {
            if (!m.rtt_p50) {  // from the first measurement: a broker never answered has no rtt series
                auto& reg = MetricsRegistry::global();
                const char* help = "Broker round-trip time over the last statistics interval (librdkafka's rtt window).";
                m.rtt_p50 = &reg.gauge("hbf_kafka_broker_rtt_seconds", help, {{"stage", stage_}, {"broker", n}, {"quantile", "0.5"}}, 1e6);
                m.rtt_p99 = &reg.gauge("hbf_kafka_broker_rtt_seconds", help, {{"stage", stage_}, {"broker", n}, {"quantile", "0.99"}}, 1e6);
            }
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
