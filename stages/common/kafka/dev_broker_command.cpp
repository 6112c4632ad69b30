// `hbforward dev-broker`: the development broker as a command of its own.
//
// Control, for tests that need a broker outage: lines on stdin "down N" / "up N" (broker N,
// 1-based; "down" / "up" alone = every broker), or SIGUSR1 (all down) / SIGUSR2 (all up);
// "fail-produce N CODE": the next N Produce requests are answered with Kafka error CODE.
// Each control line is answered on stdout with "ok ..." or "error ...".
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "dev_broker.h"
#include "log.h"

namespace hbf::kafka {
namespace {

struct DevBrokerArgs {
    int port = 9094;
    std::string topics;
    int brokers = 1;
};

std::string apply(DevBroker& b, const std::string& verb, int id) {
    std::string err;
    for (int i = 1; i <= b.brokers(); ++i) {
        if (id != 0 && i != id) continue;
        std::string e = verb == "down" ? b.set_down(i) : b.set_up(i);
        if (!e.empty()) err = e;
    }
    if (id < 0 || id > b.brokers()) err = "no broker " + std::to_string(id);
    return err;
}

// The cluster with the topics of --topics ("name" or "name:partitions", comma-separated).
std::unique_ptr<DevBroker> start_broker(const DevBrokerArgs& a) {
    auto b = std::make_unique<DevBroker>(a.brokers, a.port);
    std::stringstream ss(a.topics);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        size_t colon = item.rfind(':');
        std::string name = item.substr(0, colon);
        int parts = colon == std::string::npos ? 1 : std::stoi(item.substr(colon + 1));
        if (std::string e = b->create_topic(name, parts); !e.empty()) throw std::runtime_error("cannot create topic " + name + ": " + e);
    }
    return b;
}

// The control commands on stdin, one a line ("down N", "up N", "fail-produce COUNT CODE"), each
// answered on stdout with "ok ..." or "error ...".
void read_commands(DevBroker& b, std::mutex& m) {
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream ls(line);
        std::string verb;
        int id = 0;
        ls >> verb >> id;
        if (verb.empty()) continue;
        std::string err;
        if (verb == "down" || verb == "up") {
            std::lock_guard lk(m);
            err = apply(b, verb, id);
        } else if (int code = 0; verb == "fail-produce") {
            std::lock_guard lk(m);
            err = ls >> code ? b.fail_produce(id, code) : "usage: fail-produce COUNT CODE";
        } else {
            err = "unknown command " + verb;
        }
        std::printf("%s %s %d\n", err.empty() ? "ok" : "error", err.empty() ? verb.c_str() : err.c_str(), id);
        std::fflush(stdout);
        if (err.empty() && verb == "fail-produce") spdlog::info("the next {} Produce request(s) fail", id);
        else if (err.empty()) spdlog::info("broker{} {}", id ? " " + std::to_string(id) : "s", verb);
    }
}

int run_dev_broker(const DevBrokerArgs& a) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    setup_logging("info", "text");

    std::unique_ptr<DevBroker> b;
    try {
        b = start_broker(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dev-broker: %s\n", e.what());
        return 1;
    }
    std::printf("bootstrap %s\nbrokers %s\n", b->bootstrap().c_str(), b->advertised().c_str());
    std::fflush(stdout);
    spdlog::info("dev broker ready at {} ({} broker(s) at {}); data is kept in memory only", b->bootstrap(), b->brokers(),
                 b->advertised());

    std::mutex m;
    std::thread control([&] { read_commands(*b, m); });
    control.detach();  // blocked in a read when we exit; the process ends it

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGUSR1 || sig == SIGUSR2) {
            std::lock_guard lk(m);
            const char* verb = sig == SIGUSR1 ? "down" : "up";
            apply(*b, verb, 0);
            spdlog::info("brokers {} ({})", verb, sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
            continue;
        }
        break;
    }
    spdlog::info("dev broker stopping; its data is gone");
    std::fflush(stdout);
    std::fflush(stderr);
    // The control thread may hold the broker: leave it to the process's end.
    _exit(0);
}

const CommandRegistrar reg{Command{
    "dev-broker",
    "Run a Kafka-protocol development broker on 127.0.0.1 (librdkafka's mock cluster; data in memory only, the last few MiB "
    "of each partition). Prints its bootstrap address; runs until SIGTERM. Control: stdin lines \"down N\"/\"up N\", "
    "SIGUSR1 (all down), SIGUSR2 (all up).",
    [](CLI::App& app) -> std::function<int()> {
        auto a = std::make_shared<DevBrokerArgs>();
        app.add_option("--port", a->port, "Bootstrap port on 127.0.0.1 (relayed to broker 1); 0 = the mock's own random port.")
            ->capture_default_str();
        app.add_option("--topics", a->topics, "Topics to create, NAME:PARTITIONS,... (others are auto-created with 4 partitions).");
        app.add_option("--brokers", a->brokers, "Number of brokers.")->capture_default_str()->check(CLI::Range(1, 16));
        return [a] { return run_dev_broker(*a); };
    }}};

}  // namespace
}  // namespace hbf::kafka
