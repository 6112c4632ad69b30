// librdkafka's statistics JSON into the kafka output's broker metrics.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "kafka/stats.h"

using hbf::kafka::BrokerStats;

namespace {
// Trimmed from librdkafka 2.0 producer statistics: a bootstrap entry (nodeid -1) beside the
// learned broker, rtt in microseconds.
std::string stats(const char* state, int cnt, int p50, int p99, int txretries) {
    return fmt::format(R"({{"name":"rdkafka#producer-1","type":"producer","txmsgs":3,"brokers":{{
      "127.0.0.1:9094/bootstrap":{{"name":"127.0.0.1:9094/bootstrap","nodeid":-1,"state":"UP","txretries":7,
        "rtt":{{"cnt":4,"p50":900,"p99":900}}}},
      "127.0.0.1:40001/1":{{"name":"127.0.0.1:40001/1","nodeid":1,"nodename":"127.0.0.1:40001","source":"learned",
        "state":"{}","txretries":{},"rtt":{{"min":10,"max":99999,"avg":60,"cnt":{},"p50":{},"p99":{}}}}}}}}})",
                       state, txretries, cnt, p50, p99);
}

std::string line(const std::string& metrics, const std::string& prefix) {
    auto at = metrics.find(prefix);
    if (at == std::string::npos) return "";
    return metrics.substr(at + prefix.size(), metrics.find('\n', at) - at - prefix.size());
}
}  // namespace

TEST_CASE("kafka statistics give each learned broker's rtt in seconds, its state and its retries") {
    hbf::Counter retries;
    BrokerStats s("stats-test-1", &retries);
    REQUIRE(s.update(stats("UP", 12, 48, 45567, 2)).empty());
    CHECK(s.any_up());
    std::string m = hbf::MetricsRegistry::global().render();
    const std::string b = R"({stage="stats-test-1",broker="127.0.0.1:40001")";
    CHECK(line(m, "hbf_kafka_broker_rtt_seconds" + b + R"(,quantile="0.5"} )") == "4.8e-05");
    CHECK(line(m, "hbf_kafka_broker_rtt_seconds" + b + R"(,quantile="0.99"} )") == "0.045567");
    CHECK(line(m, "hbf_kafka_broker_up" + b + "} ") == "1");
    // The bootstrap entry is a connection too (up), but its figures repeat the learned broker's.
    const std::string boot = R"({stage="stats-test-1",broker="127.0.0.1:9094")";
    CHECK(line(m, "hbf_kafka_broker_up" + boot + "} ") == "1");
    CHECK(m.find("hbf_kafka_broker_rtt_seconds" + boot) == std::string::npos);
    CHECK(retries.get() == 2);

    SECTION("an empty rtt window keeps the last figures; a broker going down shows 0") {
        REQUIRE(s.update(stats("DOWN", 0, 0, 0, 5)).empty());
        m = hbf::MetricsRegistry::global().render();
        CHECK(line(m, "hbf_kafka_broker_rtt_seconds" + b + R"(,quantile="0.99"} )") == "0.045567");
        CHECK(line(m, "hbf_kafka_broker_up" + b + "} ") == "0");
        CHECK(retries.get() == 5);  // the increase, not the total again
    }
    SECTION("a new producer instance counts its retries from zero on top") {
        s.reset_totals();
        REQUIRE(s.update(stats("UP", 1, 50, 60, 1)).empty());
        CHECK(retries.get() == 3);
    }
}

TEST_CASE("a seeded broker shows as down before any statistics, and a connection error marks it down") {
    BrokerStats s("stats-test-3");
    s.seed("127.0.0.1:9");
    std::string m = hbf::MetricsRegistry::global().render();
    const std::string b = R"({stage="stats-test-3",broker="127.0.0.1:9")";
    CHECK(line(m, "hbf_kafka_broker_up" + b + "} ") == "0");
    CHECK(m.find("hbf_kafka_broker_rtt_seconds" + b) == std::string::npos);  // never measured: no rtt series
    REQUIRE(s.update(R"({"brokers":{"127.0.0.1:9/bootstrap":{"name":"127.0.0.1:9/bootstrap","nodeid":-1,"state":"UP"}}})").empty());
    CHECK(line(hbf::MetricsRegistry::global().render(), "hbf_kafka_broker_up" + b + "} ") == "1");
    s.down("127.0.0.1:9");
    CHECK(line(hbf::MetricsRegistry::global().render(), "hbf_kafka_broker_up" + b + "} ") == "0");
    REQUIRE(s.update(R"({"brokers":{"127.0.0.1:9/bootstrap":{"name":"127.0.0.1:9/bootstrap","nodeid":-1,"state":"CONNECT"}}})").empty());
    CHECK_FALSE(s.any_up());
}

TEST_CASE("kafka statistics that are not librdkafka's say why and change nothing") {
    hbf::Counter retries;
    BrokerStats s("stats-test-2", &retries);
    CHECK_FALSE(s.update("{not json").empty());
    CHECK(s.update(R"({"name":"x"})") == "no \"brokers\" object");
    CHECK(s.update(R"({"brokers":{"b":{"nodeid":"one"}}})").empty());  // unreadable entries are skipped
    CHECK(hbf::MetricsRegistry::global().render().find("stats-test-2") == std::string::npos);
    CHECK(retries.get() == 0);
}
