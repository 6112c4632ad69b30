#include "dev_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "relay.h"

namespace hbf::kafka {

DevBroker::DevBroker(int brokers, int port) : brokers_(brokers) {
    if (brokers < 1 || brokers > 16) throw std::runtime_error("the dev broker runs 1 to 16 brokers");
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster; it never connects anywhere, so keep it quiet.
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("cannot create the mock cluster's handle: ") + err);
    }
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (!mc_) {
        rd_kafka_destroy(rk_);
        throw std::runtime_error("cannot start librdkafka's mock cluster");
    }
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mc_);
    if (port != 0) {
        // "127.0.0.1:41235,127.0.0.1:40001": relay to the first.
        std::string first = bootstrap_.substr(0, bootstrap_.find(','));
        size_t colon = first.rfind(':');
        try {
            relay_ = std::make_unique<TcpRelay>(port, first.substr(0, colon), std::stoi(first.substr(colon + 1)));
        } catch (...) {
            rd_kafka_mock_cluster_destroy(mc_);
            rd_kafka_destroy(rk_);
            throw;
        }
        bootstrap_ = "127.0.0.1:" + std::to_string(port);
    }
}

DevBroker::~DevBroker() {
    relay_.reset();
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
}

std::string DevBroker::advertised() const { return rd_kafka_mock_cluster_bootstraps(mc_); }

std::string DevBroker::create_topic(const std::string& name, int partitions) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc_, name.c_str(), partitions, std::min(brokers_, 3));
    return e ? rd_kafka_err2str(e) : "";
}

std::string DevBroker::set_down(int id) {
    if (id < 1 || id > brokers_) return "no broker " + std::to_string(id);
    rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_down(mc_, id);
    return e ? rd_kafka_err2str(e) : "";
}

std::string DevBroker::set_up(int id) {
    if (id < 1 || id > brokers_) return "no broker " + std::to_string(id);
    rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_up(mc_, id);
    return e ? rd_kafka_err2str(e) : "";
}

std::string DevBroker::fail_produce(int count, int code) {
    if (count < 1 || count > 1000) return "count must be 1 to 1000";
    std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), static_cast<rd_kafka_resp_err_t>(code));
    rd_kafka_mock_push_request_errors_array(mc_, 0 /* Produce */, errors.size(), errors.data());
    return "";
}

DevBroker& embedded_broker(spdlog::logger& log) {
    static std::mutex m;
    // Never destroyed: stages may still be talking to it while statics are torn down at exit.
    static DevBroker* broker = nullptr;
    std::lock_guard lk(m);
    if (!broker) {
        broker = new DevBroker(1, 0);
        log.info("embedded Kafka broker listening at {} (data in memory only)", broker->bootstrap());
    }
    return *broker;
}

}  // namespace hbf::kafka
