// Successive batches on several workers, handed on in order (src/ordered.h): the turnstile, the
// pool, and a pipeline whose filters run with `workers`, against batches that finish out of order.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "ordered.h"
#include "pipeline_helpers.h"

using namespace hbf;
using namespace std::chrono_literals;

namespace {

BatchPtr numbered(uint64_t seq) {
    BatchPtr b = Batch::make();
    b->append(R"({"seq":)" + std::to_string(seq) + "}");
    return b;
}

uint64_t seq_of(const Batch& b) { return std::stoull(std::string(b.event(0).substr(7))); }

// A jitter in [0, 400) µs that differs from batch to batch, so later batches often finish first.
void jitter(uint64_t seq) {
    std::this_thread::sleep_for(std::chrono::microseconds((seq * 7919) % 400));
}

// Pipeline stages for these tests only. `test_seq` emits `batches` batches of `events` events
// numbered 0, 1, 2, ... with an ack each (test::NumberedInput; the acks' outcomes go to
// test::ack_log()); `test_jitter` (stateless) passes a batch on after a jitter; `test_record`
// keeps every event's text in the order it got them.
std::mutex g_m;
std::vector<std::string> g_events;

HBF_REGISTER_INPUT("test_seq", test::NumberedInput, test::kNumberedSchema, "Test only: numbered events, an ack per batch.");

using test::NoOptions;

struct JitterFilter final : Filter {
    explicit JitterFilter(const NoOptions&) {}
    void process(BatchPtr b, Emitter& out) override {
        jitter(seq_of(*b) / 7);
        out.emit(std::move(b));
    }
};
HBF_REGISTER_STATELESS_FILTER("test_jitter", JitterFilter, test::kNoOptions, "Test only: passes batches on after a jitter.");

struct RecordOutput final : Output {
    explicit RecordOutput(const NoOptions&) {}
    void write(BatchPtr b) override {
        {
            std::lock_guard lk(g_m);
            for (size_t i = 0; i < b->size(); ++i) g_events.emplace_back(b->event(i));
        }
        b->mark(AckStatus::delivered);
    }
};
HBF_REGISTER_OUTPUT("test_record", RecordOutput, test::kNoOptions, "Test only: records the events it gets, in order.");

const char* kService = "[service]\nlinger = \"0s\"\nshutdown_timeout = \"5s\"\n";

// Runs a config to its end (applying `reload_to` after 100 ms, if given); returns the events the
// recorder got.
std::vector<std::string> run_to_end(const std::string& text, const std::string& reload_to = "") {
    {
        std::lock_guard lk(g_m);
        g_events.clear();
    }
    auto rt = test::start_pipeline(kService + text);
    if (!reload_to.empty()) {
        std::this_thread::sleep_for(100ms);
        test::reload_pipeline(*rt, kService + reload_to);
    }
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 20s));
    std::lock_guard lk(g_m);
    return g_events;
}

std::vector<std::string> expected(size_t n) {
    std::vector<std::string> v;
    for (size_t i = 0; i < n; ++i) v.push_back(R"({"seq":)" + std::to_string(i) + "}");
    return v;
}

}  // namespace

TEST_CASE("the turnstile lets tickets through in order, whatever order they arrive in") {
    Turnstile ts;
    std::vector<uint64_t> order;  // written only inside the turnstile: no lock
    std::vector<std::thread> threads;
    for (uint64_t t = 8; t-- > 0;)  // started last ticket first
        threads.emplace_back([&, t] {
            ts.enter(t);
            order.push_back(t);
            ts.leave(t);
        });
    for (auto& th : threads) th.join();
    CHECK(order == std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("an ordered pool hands batches on in the order they were submitted, though workers finish out of order") {
    const uint64_t n = GENERATE(1, 2, 500);
    const size_t workers = GENERATE(1, 2, 4);
    std::vector<uint64_t> order;  // appended to only after the batch's turn: no lock
    std::atomic<int> concurrent{0}, most{0};
    {
        OrderedPool pool(workers, 2 * workers, [&](BatchPtr b) {
            int now = ++concurrent;
            for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {}
            uint64_t seq = seq_of(*b);
            jitter(seq);
            --concurrent;
            OrderedSection::current()->enter();
            order.push_back(seq);
            b->mark(AckStatus::delivered);
        });
        for (uint64_t i = 0; i < n; ++i) pool.submit(numbered(i));
        pool.stop();
        CHECK(pool.idle());
    }
    REQUIRE(order.size() == n);
    for (uint64_t i = 0; i < n; ++i) CHECK(order[i] == i);
    CHECK(most.load() <= int(workers));
}

TEST_CASE("a batch that hands nothing on still takes its turn") {
    std::vector<uint64_t> order;
    {
        OrderedPool pool(3, 6, [&](BatchPtr b) {
            uint64_t seq = seq_of(*b);
            jitter(seq);
            b->mark(AckStatus::delivered);
            if (seq % 3 == 1) return;  // emits nothing: the section takes the turn when it ends
            OrderedSection::current()->enter();
            order.push_back(seq);
        });
        for (uint64_t i = 0; i < 300; ++i) pool.submit(numbered(i));
    }  // the destructor finishes what the pool holds
    REQUIRE(order.size() == 200);
    for (size_t i = 1; i < order.size(); ++i) CHECK(order[i - 1] < order[i]);
}

TEST_CASE("an ordered pool holds at most its capacity: submit waits for room") {
    std::mutex gate;
    std::unique_lock closed(gate);
    std::atomic<int> started{0};
    OrderedPool pool(2, 3, [&](BatchPtr b) {
        ++started;
        std::lock_guard wait(gate);
        b->mark(AckStatus::delivered);
    });
    for (uint64_t i = 0; i < 3; ++i) pool.submit(numbered(i));
    std::atomic<bool> fourth_in{false};
    std::thread producer([&] {
        pool.submit(numbered(3));
        fourth_in = true;
    });
    std::this_thread::sleep_for(50ms);
    CHECK(started.load() == 2);  // two workers busy, one batch waiting: full
    CHECK_FALSE(fourth_in.load());
    CHECK_FALSE(pool.idle());
    closed.unlock();
    producer.join();
    CHECK(fourth_in.load());
    pool.stop();
    CHECK(pool.idle());
}

TEST_CASE("a filter chain with workers delivers every event once, in the input's order") {
    const std::string workers = GENERATE("1", "2", "4");
    auto got = run_to_end(R"(
[inputs.in]
type = "test_seq"
batches = 400
events = 5
[filters.j]
type = "test_jitter"
inputs = ["in"]
workers = )" + workers + R"(
[filters.parse]
type = "json"
inputs = ["j"]
[outputs.o]
type = "test_record"
inputs = ["parse"]
)");
    CHECK(got == expected(2000));
    auto acks = test::ack_log().all();
    REQUIRE(acks.size() == 400);
    for (auto& a : acks) CHECK(a.status == AckStatus::delivered);
}

TEST_CASE("a filter that keeps state, inline below workers, gets the batches one at a time in order") {
    // dedupe keeps state between batches: it runs after the batch's turn, on its one instance.
    auto got = run_to_end(R"(
[inputs.in]
type = "test_seq"
batches = 300
events = 4
[filters.j]
type = "test_jitter"
inputs = ["in"]
workers = 3
[filters.d]
type = "dedupe"
inputs = ["j"]
fields = ["seq"]
[outputs.o]
type = "test_record"
inputs = ["d"]
)");
    CHECK(got == expected(1200));
}

TEST_CASE("a filter with workers behind its own queue keeps its queue's order") {
    // Two producers: `j` is not inline, its queue's thread hands the batches to the pool.
    auto got = run_to_end(R"(
[inputs.in]
type = "test_seq"
batches = 300
events = 3
[inputs.none]
type = "test_seq"
batches = 0
[filters.j]
type = "test_jitter"
inputs = ["in", "none"]
workers = 2
[outputs.o]
type = "test_record"
inputs = ["j"]
)");
    CHECK(got == expected(900));
}

TEST_CASE("workers on a filter that keeps state is a config error naming the ones that can") {
    auto cfg = load_config_text(R"([inputs.in]
type = "test_seq"
[filters.d]
type = "dedupe"
inputs = ["in"]
workers = 2
[outputs.o]
type = "null"
inputs = ["d"]
)",
                                "edge.toml");
    CHECK_FALSE(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("edge.toml:6:11: filters.d cannot run on several workers: a dedupe filter keeps state "
                                              "from one batch to the next (filters that can: enrich, fields, json, select"));
    auto bad = load_config_text("[inputs.in]\ntype = \"test_seq\"\n[filters.j]\ntype = \"json\"\ninputs = [\"in\"]\nworkers = 0\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"j\"]\n",
                                "edge.toml");
    CHECK_THAT(bad->report(), Catch::Contains("edge.toml:6:11: 'workers' of filters.j must be an integer from 1 to 16"));
}

TEST_CASE("a reload that replaces a filter with workers lets it hand on what its workers hold") {
    auto config = [](int workers) {
        return R"(
[inputs.in]
type = "test_seq"
batches = 1500
events = 4
pace_us = 200
[filters.j]
type = "test_jitter"
inputs = ["in"]
workers = )" + std::to_string(workers) + R"(
[outputs.o]
type = "test_record"
inputs = ["j"]
)";
    };
    auto got = run_to_end(config(2), config(3));
    // The old version drains beside the new one: every event once, each version's in order.
    std::sort(got.begin(), got.end(), [](const std::string& a, const std::string& b) { return std::stoull(a.substr(7)) < std::stoull(b.substr(7)); });
    CHECK(got == expected(6000));
    auto acks = test::ack_log().all();
    REQUIRE(acks.size() == 1500);
    for (auto& a : acks) CHECK(a.status == AckStatus::delivered);
}
