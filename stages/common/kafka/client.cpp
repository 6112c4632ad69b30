#include "client.h"

#include "dev_broker.h"

namespace hbf::kafka {

namespace {
// librdkafka ends some messages with a newline.
std::string trimmed(const char* s) {
    std::string out(s);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}
}  // namespace

ConfPtr make_conf(const StageConfig& c, const Props& defaults, const Props& settings) {
    ConfPtr conf(rd_kafka_conf_new());
    char err[512];
    for (const auto& [k, v] : defaults)
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            c.problem("", std::string("built-in librdkafka default ") + k + ": " + err);
    for (const auto& [k, v] : settings)
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
            c.problem("", "librdkafka rejected " + k + " = \"" + v + "\": " + err);
    // Each property is checked, each problem reported at its own line.
    if (const toml::table* t = c.has("librdkafka") ? c.table("librdkafka") : nullptr) {
        for (const auto& [k, v] : *t) {
            Location at = c.where("librdkafka");
            if (k.source().begin.line) at = {at.file, k.source().begin.line, k.source().begin.column};
            std::string value;
            if (auto s = v.as_string()) {
                std::string missing;
                value = substitute_env(s->get(), &missing);
                if (!missing.empty()) {
                    c.problem_at(at, unresolved_message(missing, "librdkafka." + std::string(k.str())));
                    continue;
                }
            } else if (v.is_integer() || v.is_boolean() || v.is_floating_point()) {
                value = toml_to_json(v);
            } else {
                c.problem_at(at, fmt::format("librdkafka property \"{}\" must be a string, number or boolean", k.str()));
                continue;
            }
            if (rd_kafka_conf_set(conf.get(), std::string(k.str()).c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
                c.problem_at(at, fmt::format("librdkafka property \"{}\": {}", k.str(), trimmed(err)));
        }
    }
    return conf;
}

namespace {
void quiet_log(const rd_kafka_t*, int, const char*, const char*) {}
}  // namespace

void check_client(const StageConfig& c, const rd_kafka_conf_t* conf, rd_kafka_type_t type) {
    // What rd_kafka_new checks beyond single properties (conflicting settings, unreadable TLS
    // files, an unsupported SASL mechanism), on a copy without brokers: no connection is made.
    rd_kafka_conf_t* scratch = rd_kafka_conf_dup(conf);
    rd_kafka_conf_set_log_cb(scratch, quiet_log);
    char err[512] = "";
    rd_kafka_t* rk = rd_kafka_new(type, scratch, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(scratch);
        c.problem("librdkafka", fmt::format("librdkafka would not start a {} with these settings: {}",
                                            type == RD_KAFKA_PRODUCER ? "producer" : "consumer", trimmed(err)));
        return;
    }
    rd_kafka_destroy(rk);
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
