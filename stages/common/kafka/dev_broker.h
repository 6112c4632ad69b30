// The development broker: librdkafka's mock cluster, a Kafka-protocol broker on 127.0.0.1 that
// keeps its data in memory (only the last few MiB of each partition).
//
// Used by `hbforward dev-broker` and by `brokers = "embedded"` in a kafka stage: one cluster per
// process, shared by every stage that asks for it.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace hbf::kafka {

class TcpRelay;

class DevBroker {
public:
    // Starts `brokers` mock brokers; with port != 0 the bootstrap address is 127.0.0.1:port,
    // relayed to the first broker (the mock picks its own ports). Throws std::runtime_error.
    DevBroker(int brokers, int port);
    ~DevBroker();
    DevBroker(const DevBroker&) = delete;
    DevBroker& operator=(const DevBroker&) = delete;

    // What clients put in bootstrap.servers.
    const std::string& bootstrap() const { return bootstrap_; }
    // The brokers' own addresses, as the cluster advertises them.
    std::string advertised() const;
    int brokers() const { return brokers_; }

    // Returns "" or librdkafka's error.
    std::string create_topic(const std::string& name, int partitions);
    // Takes broker `id` (1-based) down or up: connections close and new ones are refused.
    std::string set_down(int id);
    std::string set_up(int id);
    // The next `count` Produce requests, to any broker, are answered with Kafka error `code`
    // (45, OUT_OF_ORDER_SEQUENCE_NUMBER, is fatal to an idempotent producer).
    std::string fail_produce(int count, int code);

private:
    rd_kafka_t* rk_ = nullptr;
    rd_kafka_mock_cluster_t* mc_ = nullptr;
    std::unique_ptr<TcpRelay> relay_;
    std::string bootstrap_;
    int brokers_;
};

// The process's embedded broker, started on first use (and logged with its address).
DevBroker& embedded_broker(spdlog::logger& log);

}  // namespace hbf::kafka
