// `hbforward tap`: copies of the events a running stage emits, for a client of the API server.
//
// Every stage has a TapPoint; Emitter::emit offers it each batch, which costs one relaxed load
// while no one taps. A subscriber holds at most kMaxEvents events (kMaxBytes of text) between two
// polls; under load it samples evenly across each batch and counts what it skipped. The poller
// (the API server's thread) takes the buffer; a subscriber not polled for 10 s is dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hbf {

class Batch;
class Runtime;

// A --where condition compiled for one subscriber; called with the subscriber's lock held.
class TapFilter {
public:
    virtual ~TapFilter() = default;
    virtual bool match(const Batch& b, size_t event) = 0;
};
// Compiles a --where condition; throws std::invalid_argument naming the problem. Registered by
// the condition language (stages/filters/common), so the core does not depend on it.
using TapFilterCompiler = std::function<std::unique_ptr<TapFilter>(const std::string&)>;
TapFilterCompiler& tap_filter_compiler();

struct TapSubscriber {
    static constexpr size_t kMaxEvents = 1000;
    static constexpr size_t kMaxBytes = 1 << 20;
    std::mutex m;
    std::unique_ptr<TapFilter> where;
    std::string buf;  // NDJSON
    size_t events = 0;
    uint64_t skipped = 0;  // not examined: the buffer was full or the batch was sampled
};

class TapPoint {
public:
    bool active() const { return count_.load(std::memory_order_relaxed) != 0; }
    // Copies (a sample of) b's events to the subscribers of `port` and of every port.
    void offer(const Batch& b, size_t port);
    // port < 0: every port.
    void add(std::shared_ptr<TapSubscriber> s, int port);
    void remove(const TapSubscriber* s);

private:
    std::atomic<int> count_{0};
    std::mutex m_;
    std::vector<std::pair<std::shared_ptr<TapSubscriber>, int>> subs_;
};

struct TapReply {
    int code = 200;
    std::string body;
    const char* content_type = "application/json";
};
// The API server's tap endpoints; nullopt when `target` is not one of them.
//   POST /tap {"stage": "route.major", "where": ".severity == \"major\""} -> {"id": N}
//   GET /tap/N  -> {"skipped": K} and then the buffered events, one a line
//   DELETE /tap/N
std::optional<TapReply> tap_http(Runtime& rt, std::string_view method, std::string_view target, std::string_view body);

}  // namespace hbf
