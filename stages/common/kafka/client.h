// What the kafka input and output share: librdkafka configuration from a stage's table (the
// `librdkafka` passthrough, checked by librdkafka itself), broker resolution ("embedded"),
// topic-name rules, and librdkafka's log lines routed to the stage's logger.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "log.h"
#include "options.h"

namespace hbf::kafka {

struct ConfDeleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

using Props = std::vector<std::pair<std::string, std::string>>;

// A conf with `defaults`, then the stage's own settings, then the `librdkafka` table on top.
// Each property librdkafka rejects is a problem of the stage at that key, with librdkafka's message.
ConfPtr make_conf(const StageConfig& c, const Props& defaults, const Props& settings);

// Reports what rd_kafka_new would refuse in `conf` (settings that conflict, TLS files it cannot
// read) as a problem of the stage, by creating a client of `type` from a copy without brokers.
void check_client(const StageConfig& c, const rd_kafka_conf_t* conf, rd_kafka_type_t type);

// The value a conf holds for `name` ("" when unset).
std::string conf_get(const rd_kafka_conf_t* conf, const char* name);

// Kafka's rule: 1 to 249 of [a-zA-Z0-9._-], and not "." or "..". Returns "" or why not.
std::string topic_name_problem(std::string_view name);

// "embedded" starts (once per process) the in-memory broker and returns its address.
std::string resolve_brokers(const std::string& brokers, spdlog::logger& log);

// Every rd_kafka_t a stage makes has one of these as its opaque: librdkafka's log lines and
// errors go to the stage's logger, rate limited.
class Client {
public:
    Client() = default;
    virtual ~Client() = default;
    // Sets log, error callbacks and the opaque on conf.
    void attach(rd_kafka_conf_t* conf);
    // From librdkafka's threads (error_cb) or the polling thread.
    virtual void on_error(rd_kafka_t* rk, int err, const char* reason);
    spdlog::logger& log() { return *log_; }
    // The stage's logger, kept alive here: librdkafka logs from its threads until rd_kafka_destroy.
    void set_logger(std::shared_ptr<spdlog::logger> l) { log_ = std::move(l); }

protected:
    std::shared_ptr<spdlog::logger> log_;
    RateLimit error_rl_, log_rl_;
};

}  // namespace hbf::kafka
