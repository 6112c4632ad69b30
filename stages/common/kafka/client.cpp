#include "client.h"

#include "dev_broker.h"

namespace hbf::kafka {

ConfPtr make_conf(const StageConfig& c, const Props& defaults, const Props& settings) {
    ConfPtr conf(rd_kafka_conf_new());
    char err[512];
    for (const auto& [k, v] : defaults)
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            c.fail("", std::string("built-in librdkafka default ") + k + ": " + err);
    for (const auto& [k, v] : settings)
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            c.fail("", "librdkafka rejected " + k + " = \"" + v + "\": " + err);
    if (c.has("librdkafka")) {
        for (const auto& [k, v] : c.string_map("librdkafka"))
            if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
                c.fail("librdkafka", "librdkafka property \"" + k + "\": " + err);
    }
    return conf;
}

std::string conf_get(const rd_kafka_conf_t* conf, const char* name) {
    char buf[1024];
    size_t n = sizeof buf;
    if (rd_kafka_conf_get(conf, name, buf, &n) != RD_KAFKA_CONF_OK) return "";
    return buf;
}

std::string topic_name_problem(std::string_view name) {
    if (name.empty()) return "a topic name cannot be empty";
    if (name.size() > 249) return "a topic name has at most 249 characters";
    if (name == "." || name == "..") return "a topic name cannot be \".\" or \"..\"";
    for (char ch : name) {
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) return fmt::format("a topic name may only hold [a-zA-Z0-9._-], not '{}'", ch);
    }
    return "";
}

std::string resolve_brokers(const std::string& brokers, spdlog::logger& log) {
    if (brokers == "embedded") return embedded_broker(log).bootstrap();
    return brokers;
}

namespace {
void log_cb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    auto* cl = static_cast<Client*>(rd_kafka_opaque(rk));
    if (!cl) return;
    // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
    auto lvl = level <= 3 ? spdlog::level::err : level == 4 ? spdlog::level::warn : level <= 6 ? spdlog::level::info : spdlog::level::debug;
    cl->log().log(lvl, "librdkafka {}: {}", fac, buf);
}

void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    if (auto* cl = static_cast<Client*>(opaque)) cl->on_error(rk, err, reason);
}
}  // namespace

void Client::attach(rd_kafka_conf_t* conf) {
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}

void Client::on_error(rd_kafka_t*, int err, const char* reason) {
    // "all brokers down" and transport errors repeat while a broker is away: log them rate limited.
    log_limited(error_rl_, *log_, spdlog::level::warn, "kafka: {} ({})", reason, rd_kafka_err2name(rd_kafka_resp_err_t(err)));
}

}  // namespace hbf::kafka
