// output "kafka": metrics and health. librdkafka's errors (on its threads) and statistics (on
// the polling thread) are gathered here; update_health(), on the output's thread, turns them
// into the stage's degraded state and the broker gauges.
#include "kafka_output.h"

namespace hbf::kafka_output {
namespace {

// "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in
// state CONNECT)" -> {"127.0.0.1:9", "Connection refused"}.
std::pair<std::string, std::string> broker_error(std::string_view reason) {
    auto colon = reason.find(": ");
    if (colon == std::string_view::npos) return {};
    std::string_view broker = reason.substr(0, colon), what = reason.substr(colon + 2);
    broker = broker.substr(0, broker.rfind('/'));
    if (auto f = what.find(" failed: "); f != std::string_view::npos) what = what.substr(f + 9);
    if (auto a = what.find(" (after "); a != std::string_view::npos) what = what.substr(0, a);
    return {std::string(broker), std::string(what)};
}

std::vector<std::string> split_brokers(const std::string& list) {
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

}  // namespace

void KafkaOut::register_metrics(StageContext& ctx) {
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
}

void KafkaOut::seed_broker_stats() {
    for (const auto& hp : split_brokers(bootstrap_)) stats_->seed(hp);
}

// From librdkafka's threads (error_cb) or the polling thread.
void KafkaOut::on_error(rd_kafka_t* rk, int err, const char* reason) {
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
void KafkaOut::on_stats(std::string_view json) {
    if (std::string why = stats_->update(json); !why.empty())
        log_limited(stats_rl_, *log_, spdlog::level::warn, "unreadable librdkafka statistics: {}", why);
    else if (stats_->any_up())
        brokers_back();
}

// A delivery succeeded or a broker is up: no longer degraded (applied by update_health()).
void KafkaOut::brokers_back() {
    std::lock_guard lk(error_m_);
    all_down_ = false;
}

// On the output thread: the degraded state and the broker gauges from what on_error saw.
void KafkaOut::update_health() {
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

}  // namespace hbf::kafka_output
