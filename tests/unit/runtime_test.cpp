// The runtime never reports a batch delivered that a stage did not finish: a stage that throws,
// the shutdown timeout, a reload that removes a stage, a fan-out branch that cannot take a copy.
//
// The stages below are registered only in this test binary: an input whose every batch carries
// an ack and records how it settled, and outputs and a filter that misbehave on purpose.
#include <filesystem>
#include <fstream>
#include <malloc.h>
#include <thread>

#include "api/api_server.h"
#include "pipeline_helpers.h"

using namespace hbf;
using namespace std::chrono_literals;

namespace {

using test::Outcome;
using test::reload_pipeline;
using test::start_pipeline;
using test::settled;
using test::TempDir;

std::vector<Outcome> outcomes() { return test::ack_log().all(); }

// Emits `batches` batches of `events` events, each with its own ack; then, with `wait`, idles
// until stopped.
HBF_REGISTER_INPUT("test_acks", test::NumberedInput, test::kNumberedSchema, "Test only: batches with acks whose outcomes are recorded.");

using test::NoOptions;

struct ThrowFilter final : Filter {
    explicit ThrowFilter(const NoOptions&) {}
    void process(BatchPtr, Emitter&) override { throw std::runtime_error("boom in the filter"); }
};
HBF_REGISTER_FILTER("test_throw", ThrowFilter, test::kNoOptions, "Test only: throws on every batch.");

struct ThrowOutput final : Output {
    explicit ThrowOutput(const NoOptions&) {}
    void write(BatchPtr) override { throw std::runtime_error("boom in the output"); }
};
HBF_REGISTER_OUTPUT("test_throw", ThrowOutput, test::kNoOptions, "Test only: throws on every batch.");

// Cannot deliver: holds the batch until the runtime aborts it, then reports it failed.
struct BlockOptions {
    std::string label;
};
struct BlockOutput final : Output {
    explicit BlockOutput(const BlockOptions&) {}
    void start(StageContext& ctx) override { ctx_ = &ctx; }
    void write(BatchPtr b) override {
        while (!ctx_->abort_flag().load()) std::this_thread::sleep_for(2ms);
        b->mark(AckStatus::failed, "test_block gave up");
    }
    StageContext* ctx_ = nullptr;
};
const OptionSchema<BlockOptions> kBlockSchema{{"label", &BlockOptions::label, "Any text: changing it makes a reload replace the stage."}};
HBF_REGISTER_OUTPUT("test_block", BlockOutput, kBlockSchema, "Test only: blocks until aborted.");

// Slow but honest: 20 ms per batch, then delivered.
struct SlowOutput final : Output {
    explicit SlowOutput(const NoOptions&) {}
    void write(BatchPtr b) override {
        std::this_thread::sleep_for(20ms);
        b->mark(AckStatus::delivered);
    }
};
HBF_REGISTER_OUTPUT("test_slow", SlowOutput, test::kNoOptions, "Test only: takes 20 ms per batch.");

// Takes a pop at once (write_many): records how many batches each call had; the first call
// waits `first_ms` (so the next pop finds many batches queued); call number `throw_call` throws.
struct ManyOptions {
    int64_t first_ms = 0;
    int64_t throw_call = 0;  // 0 = none
};
std::mutex many_m;
std::vector<size_t> many_calls;  // batches per call, under many_m
struct ManyOutput final : Output {
    explicit ManyOutput(const ManyOptions& o) : o_(o) {}
    bool writes_many() const override { return true; }
    void write(BatchPtr b) override { write_many(&b, 1); }
    void write_many(BatchPtr* bs, size_t n) override {
        size_t call;
        {
            std::lock_guard lk(many_m);
            many_calls.push_back(n);
            call = many_calls.size();
        }
        if (call == 1) std::this_thread::sleep_for(std::chrono::milliseconds(o_.first_ms));
        if (int64_t(call) == o_.throw_call) throw std::runtime_error("boom in write_many");
        for (size_t i = 0; i < n; ++i) bs[i]->mark(AckStatus::delivered);
    }
    ManyOptions o_;
};
const OptionSchema<ManyOptions> kManySchema{
    {"first_ms", &ManyOptions::first_ms, "Milliseconds the first call waits."},
    {"throw_call", &ManyOptions::throw_call, "The call (1, 2, ...) that throws; 0 = none."},
};
HBF_REGISTER_OUTPUT("test_many", ManyOutput, kManySchema, "Test only: takes the batches of a pop at once, records how many.");

// Settles in tick(), as the Kafka output settles on delivery reports: holds each batch `hold_ms`
// after its write, and counts the ticks it got meanwhile.
struct TickOptions {
    int64_t hold_ms = 200;
};
std::atomic<int> ticks_while_holding{0};
struct TickSettleOutput final : Output {
    explicit TickSettleOutput(const TickOptions& o) : hold_(std::chrono::milliseconds(o.hold_ms)) {}
    void write(BatchPtr b) override {
        held_.push_back(std::move(b));
        since_ = std::chrono::steady_clock::now();
    }
    bool settles_in_tick() const override { return !held_.empty(); }
    void tick() override {
        if (held_.empty()) return;
        ticks_while_holding.fetch_add(1);
        if (std::chrono::steady_clock::now() - since_ < hold_) return;
        for (auto& b : held_) b->mark(AckStatus::delivered);
        held_.clear();
    }
    void stop() override {
        for (auto& b : held_) b->mark(AckStatus::failed, "stopped while held");
        held_.clear();
    }
    std::chrono::nanoseconds hold_;
    std::vector<BatchPtr> held_;
    std::chrono::steady_clock::time_point since_{};
};
const OptionSchema<TickOptions> kTickSchema{{"hold_ms", &TickOptions::hold_ms, "Milliseconds each batch is held before a tick settles it."}};
HBF_REGISTER_OUTPUT("test_tick_settle", TickSettleOutput, kTickSchema, "Test only: settles its batches in tick(), after hold_ms.");

std::vector<size_t> many_calls_so_far() {
    std::lock_guard lk(many_m);
    return many_calls;
}
void clear_many_calls() {
    std::lock_guard lk(many_m);
    many_calls.clear();
}

uint64_t failed_count(const std::string& stage, const std::string& reason) {
    auto& reg = MetricsRegistry::global();
    uint64_t total = 0;
    std::string text = reg.render();
    std::string key = "hbf_events_failed_total{stage=\"" + stage + "\",";
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
        std::string line = text.substr(at, text.find('\n', at) - at);
        if (line.find("reason=\"" + reason + "\"") != std::string::npos) total += std::stoull(line.substr(line.rfind(' ') + 1));
    }
    return total;
}

const char* kService = "[service]\nshutdown_timeout = \"300ms\"\nlinger = \"0s\"\n";

}  // namespace

TEST_CASE("a pipeline that finishes reports every batch delivered") {
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
[outputs.o]
type = "null"
inputs = ["in"]
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) CHECK(o.status == AckStatus::delivered);
}

TEST_CASE("a filter that throws fails its batches with the exception's text, counted") {
    uint64_t before = failed_count("rt-throwf", "exception");
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
[filters.rt-throwf]
type = "test_throw"
inputs = ["in"]
[outputs.o]
type = "null"
inputs = ["rt-throwf"]
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) {
        CHECK(o.status == AckStatus::failed);
        CHECK(o.why == "filter 'rt-throwf' failed: boom in the filter");
    }
    CHECK(failed_count("rt-throwf", "exception") - before == 6);
}

TEST_CASE("an output that throws fails its batches with the exception's text, counted") {
    uint64_t before = failed_count("rt-throwo", "exception");
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
[outputs.rt-throwo]
type = "test_throw"
inputs = ["in"]
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) {
        CHECK(o.status == AckStatus::failed);
        CHECK(o.why == "output 'rt-throwo' failed: boom in the output");
    }
    CHECK(failed_count("rt-throwo", "exception") - before == 6);
}

TEST_CASE("an output that takes a pop at once gets the queued batches in one call, each delivered once") {
    clear_many_calls();
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
batches = 40
[outputs.o]
type = "test_many"
inputs = ["in"]
first_ms = 100
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(40);
    REQUIRE(got.size() == 40);
    for (auto& o : got) CHECK(o.status == AckStatus::delivered);
    auto calls = many_calls_so_far();
    size_t total = 0;
    for (size_t n : calls) total += n;
    CHECK(total == 40);
    // The first call held the thread while the input queued the rest: the next pop takes many.
    REQUIRE(calls.size() >= 2);
    CHECK(calls[1] > 1);
}

TEST_CASE("an output's write_many that throws fails exactly the batches of that call, with the text, counted") {
    clear_many_calls();
    uint64_t before = failed_count("rt-many", "exception");
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
batches = 40
[outputs.rt-many]
type = "test_many"
inputs = ["in"]
first_ms = 100
throw_call = 2
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(40);
    REQUIRE(got.size() == 40);
    auto calls = many_calls_so_far();
    REQUIRE(calls.size() >= 2);
    size_t failed = 0;
    for (auto& o : got)
        if (o.status == AckStatus::failed) {
            ++failed;
            CHECK(o.why == "output 'rt-many' failed: boom in write_many");
        } else {
            CHECK(o.status == AckStatus::delivered);
        }
    CHECK(failed == calls[1]);
    CHECK(failed > 1);
    CHECK(failed_count("rt-many", "exception") - before == 2 * calls[1]);  // two events a batch
}

TEST_CASE("an output that settles its batches in tick() is ticked every few milliseconds while it holds some") {
    ticks_while_holding = 0;
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
batches = 1
wait = true
[outputs.o]
type = "test_tick_settle"
inputs = ["in"]
hold_ms = 200
)");
    auto got = settled(1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].status == AckStatus::delivered);
    // Every 2 ms for 200 ms: about 100 ticks; the 100 ms tick of an output that settles
    // nothing in tick() would give 2 or 3.
    CHECK(ticks_while_holding.load() >= 20);
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("an output with a disk buffer is handed one batch at a time, even one that takes a pop at once") {
    clear_many_calls();
    {
        TempDir dir;
        auto rt = start_pipeline(std::string(kService) + "data_dir = \"" + dir.path + R"("
[inputs.in]
type = "test_acks"
batches = 40
[outputs.o]
type = "test_many"
inputs = ["in"]
first_ms = 100
buffer = { type = "disk", max_size = "1MiB" }
)");
        REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
        auto got = settled(40);
        REQUIRE(got.size() == 40);
        for (auto& o : got) CHECK(o.status == AckStatus::delivered);
    }
    auto calls = many_calls_so_far();
    CHECK(calls.size() == 40);
    for (size_t n : calls) CHECK(n == 1);
}

TEST_CASE("a filter that drops every event reports the batch dropped, not failed") {
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
[filters.f]
type = "select"
inputs = ["in"]
where = '.seq < 0'
[outputs.o]
type = "null"
inputs = ["f"]
)");
    REQUIRE(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) CHECK(o.status == AckStatus::dropped);
}

TEST_CASE("at the shutdown timeout, the batch in hand and every queued batch report failed") {
    uint64_t before = failed_count("rt-block", "shutdown_timeout");
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
batches = 4
[outputs.rt-block]
type = "test_block"
inputs = ["in"]
)");
    rt->request_stop();
    CHECK_FALSE(rt->wait_until(std::chrono::steady_clock::now() + 300ms));
    auto got = settled(4);
    REQUIRE(got.size() == 4);
    size_t gave_up = 0, queued = 0;
    for (auto& o : got) {
        CHECK(o.status == AckStatus::failed);
        gave_up += o.why == "test_block gave up";
        queued += o.why == "shutdown timeout: still queued for output 'rt-block'";
    }
    CHECK(gave_up == 1);
    CHECK(queued == 3);
    CHECK(failed_count("rt-block", "shutdown_timeout") - before == 6);
}

TEST_CASE("fan-out: a copy one branch could not deliver fails the ack the other branch delivered") {
    auto rt = start_pipeline(std::string(kService) + R"(
[inputs.in]
type = "test_acks"
batches = 2
[outputs.ok]
type = "null"
inputs = ["in"]
[outputs.stuck]
type = "test_block"
inputs = ["in"]
)");
    rt->request_stop();
    CHECK_FALSE(rt->wait_until(std::chrono::steady_clock::now() + 300ms));
    auto got = settled(2);
    REQUIRE(got.size() == 2);
    for (auto& o : got) CHECK(o.status == AckStatus::failed);
}

TEST_CASE("fan-out: a push the shutdown timeout aborts reports the copy failed") {
    // A one-event queue in front of the stuck output: the input blocks pushing its second batch
    // there, the abort ends the push, and that batch must not count as delivered by `ok`.
    auto rt = start_pipeline(R"(
[service]
shutdown_timeout = "300ms"
queue_events = 1
[inputs.in]
type = "test_acks"
batches = 3
events = 1
[outputs.ok]
type = "null"
inputs = ["in"]
[outputs.stuck]
type = "test_block"
inputs = ["in"]
)");
    std::this_thread::sleep_for(100ms);
    rt->request_stop();
    CHECK_FALSE(rt->wait_until(std::chrono::steady_clock::now() + 300ms));
    // A copy that reaches `ok`'s queue after its last drain is refused there and reports failed
    // at once, with the runtime still alive.
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) CHECK(o.status == AckStatus::failed);
}

const char* kReloadBase = R"(
[service]
shutdown_timeout = "300ms"
linger = "0s"
[inputs.in]
type = "test_acks"
batches = 3
wait = true
)";

TEST_CASE("a reload that removes a stage lets it finish what it holds") {
    auto rt = start_pipeline(std::string(kReloadBase) + "[outputs.o]\ntype = \"test_slow\"\ninputs = [\"in\"]\n");
    std::this_thread::sleep_for(5ms);  // the 3 batches are queued at the slow output
    reload_pipeline(*rt, std::string(kReloadBase) + "[outputs.o2]\ntype = \"null\"\ninputs = [\"in\"]\n");
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) CHECK(o.status == AckStatus::delivered);
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("a reload that removes a stage which cannot finish fails what it holds after the shutdown timeout") {
    uint64_t before = failed_count("rt-gone", "shutdown_timeout");
    auto rt = start_pipeline(std::string(kReloadBase) + "[outputs.rt-gone]\ntype = \"test_block\"\ninputs = [\"in\"]\n");
    std::this_thread::sleep_for(20ms);
    reload_pipeline(*rt, std::string(kReloadBase) + "[outputs.o2]\ntype = \"null\"\ninputs = [\"in\"]\n");
    std::this_thread::sleep_for(100ms);
    rt->reap();
    CHECK(outcomes().empty());  // still within its time
    std::this_thread::sleep_for(300ms);
    rt->reap();  // past the deadline: aborted
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) CHECK(o.status == AckStatus::failed);
    CHECK(failed_count("rt-gone", "shutdown_timeout") - before == 4);  // 2 batches were still queued
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("reloads free the configs they replace") {
    // Each config carries 4 MiB of text; the runtime used to keep every old config for good.
    const std::string big(4 << 20, 'x');
    auto text = [&](int i) {
        return std::string(kReloadBase) + "[filters.f]\ntype = \"enrich\"\ninputs = [\"in\"]\nfields = { big = \"" + big +
               "\" }\n[outputs.o]\ntype = \"" + (i % 2 ? "null" : "test_slow") + "\"\ninputs = [\"f\"]\n";
    };
    auto in_use = [] {
        struct mallinfo2 mi = mallinfo2();
        return mi.uordblks + mi.hblkhd;
    };
    auto rt = start_pipeline(text(0));
    for (int i = 1; i <= 3; ++i) reload_pipeline(*rt, text(i));
    size_t before = in_use();
    for (int i = 4; i <= 23; ++i) reload_pipeline(*rt, text(i));  // o is replaced each time, f is kept
    size_t after = in_use();
    INFO("heap grew by " << (after - before) / 1048576 << " MiB over 20 reloads");
    CHECK(after < before + (40u << 20));
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("metrics carry one series per stage while its replaced version drains beside the new one") {
    auto rt = start_pipeline(std::string(kReloadBase) + "[outputs.rt-twice]\ntype = \"test_block\"\ninputs = [\"in\"]\nlabel = \"a\"\n");
    std::this_thread::sleep_for(20ms);  // 1 batch in hand, 2 queued (4 events)
    reload_pipeline(*rt, std::string(kReloadBase) + "[outputs.rt-twice]\ntype = \"test_block\"\ninputs = [\"in\"]\nlabel = \"b\"\n");
    std::string m = ApiServer::metrics_text(*rt);
    auto count = [&](const std::string& s) {
        size_t n = 0;
        for (size_t at = m.find(s); at != std::string::npos; at = m.find(s, at + 1)) ++n;
        return n;
    };
    const std::string l = R"({stage="rt-twice",type="test_block"} )";
    CHECK(count("hbf_queue_events" + l) == 1);
    CHECK(count("hbf_queue_capacity_events" + l) == 1);
    CHECK(count("hbf_stage_up" + l + "1\n") == 1);  // the new version's state
    rt->request_stop();
    CHECK_FALSE(rt->wait_until(std::chrono::steady_clock::now() + 300ms));
}

namespace {

std::vector<int64_t> sequence_numbers(const std::string& file) {
    std::vector<int64_t> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        auto at = line.find("\"seq\":");
        REQUIRE(at != std::string::npos);
        out.push_back(std::stoll(line.substr(at + 6)));
    }
    return out;
}

std::string generate_to_file(const std::string& dir, const std::string& extra) {
    return "[service]\nshutdown_timeout = \"2s\"\nlinger = \"0s\"\ndata_dir = \"" + dir +
           "\"\n[inputs.gen]\ntype = \"generate\"\nrate = 5000\nsequence_field = \"seq\"\n[outputs.out]\ntype = \"file\"\ninputs = "
           "[\"gen\"]\npath = \"" + dir + "/out.ndjson\"\n" + extra;
}
}  // namespace

TEST_CASE("a reload that changes an output writing the same file stops the old version before the new one opens it") {
    TempDir dir;
    auto rt = start_pipeline(generate_to_file(dir.path, ""));
    std::this_thread::sleep_for(100ms);
    CHECK(reload_pipeline(*rt, generate_to_file(dir.path, "fsync_interval = \"2s\"\n")) ==
          "config generation 2: 1 stages kept, 1 started, 1 stopped");
    std::this_thread::sleep_for(100ms);
    auto snap = rt->snapshot();
    size_t outs = 0;
    for (const auto& s : snap.stages)
        if (s.name == "out" && s.status == "running") ++outs;
    CHECK(outs == 1);
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
    auto seqs = sequence_numbers(dir.path + "/out.ndjson");
    INFO(seqs.size() << " events");
    REQUIRE(seqs.size() > 500);
    // One writer at a time: the file holds the sequence in order, each event once.
    for (size_t i = 0; i < seqs.size(); ++i) REQUIRE(seqs[i] == int64_t(i));
}

TEST_CASE("a reload that changes a disk-buffered output hands its buffer directory from the old version to the new") {
    TempDir dir;
    const std::string base = "[service]\nshutdown_timeout = \"2s\"\nlinger = \"0s\"\ndata_dir = \"" + dir.path +
                             "\"\n[inputs.in]\ntype = \"test_acks\"\nbatches = 3\nwait = true\n[outputs.o]\ntype = \"null\"\ninputs = [\"in\"]\n";
    auto rt = start_pipeline(base + "buffer = { type = \"disk\", max_size = \"1MiB\" }\n");
    // Both versions cannot hold the directory's lock at once: the old one stops first.
    CHECK(reload_pipeline(*rt, base + "buffer = { type = \"disk\", max_size = \"1MiB\", sync = \"none\" }\n") ==
          "config generation 2: 1 stages kept, 1 started, 1 stopped");
    auto got = settled(3);
    REQUIRE(got.size() == 3);
    for (auto& o : got) {
        INFO(o.why);
        CHECK(o.status == AckStatus::delivered);
    }
    rt->request_stop();
    CHECK(rt->wait_until(std::chrono::steady_clock::now() + 5s));
}

TEST_CASE("a stage that fails to start at startup stops what had started, and nothing runs") {
    auto cfg = test::config(R"(
[service]
data_dir = "/proc/no-such-dir"
[inputs.in]
type = "test_acks"
[outputs.a]
type = "null"
inputs = ["in"]
[outputs.b]
type = "null"
inputs = ["in"]
buffer = { type = "disk", max_size = "1MiB" }
)");
    auto stages = build_stages(*cfg);
    Runtime rt(std::move(cfg), std::move(stages));
    CHECK_THROWS_WITH(rt.start(), Catch::Contains("stage 'b' (output null) failed to start"));
    CHECK(rt.snapshot().stages.empty());
    CHECK(rt.finished());
}
