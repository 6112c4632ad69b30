// Helpers for unit tests that run whole pipelines on a Runtime (runtime_test.cpp, ordered_test.cpp):
// an input of numbered events whose every batch carries an ack, a log of how those acks settled,
// and starting or reloading a runtime from config text.
//
// NumberedInput is not registered here: each test file registers it under its own type name
// (a registration in a header included by two files would register the type twice). The schemas
// are inline variables defined before any file's registration, so they are built before it.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers.h"
#include "runtime.h"

namespace hbf::test {

// How one batch's ack settled.
struct Outcome {
    AckStatus status;
    std::string why;
};

// The outcomes of the acks numbered_batch() made, in the order they settled. One log for the test
// binary: a test clears it before it starts its pipeline (start_pipeline does).
class AckLog {
public:
    void clear() {
        std::lock_guard lk(m_);
        all_.clear();
    }
    void add(AckStatus s, const std::string& why) {
        std::lock_guard lk(m_);
        all_.push_back({s, why});
    }
    std::vector<Outcome> all() const {
        std::lock_guard lk(m_);
        return all_;
    }

private:
    mutable std::mutex m_;
    std::vector<Outcome> all_;
};

inline AckLog& ack_log() {
    static AckLog log;
    return log;
}

// A batch of `count` events {"seq":first}, {"seq":first+1}, ... carrying one ack whose outcome
// goes to ack_log().
inline BatchPtr numbered_batch(int64_t first, int64_t count) {
    BatchPtr b = Batch::make();
    for (int64_t e = 0; e < count; ++e) b->append(R"({"seq":)" + std::to_string(first + e) + "}");
    AckRef root = make_ack([](AckStatus s, const std::string& why) { ack_log().add(s, why); });
    b->acks.push_back(root.clone());
    root.reset();
    return b;
}

// Emits `batches` batches of `events` numbered events (numbered_batch), all of them even if a stop
// came first, pausing `pace_us` after each; then, with `wait`, idles until stopped.
struct NumberedOptions {
    int64_t batches = 3, events = 2;
    int64_t pace_us = 0;
    bool wait = false;
};

class NumberedInput final : public Input {
public:
    explicit NumberedInput(const NumberedOptions& o) : o_(o) {}
    void run(StageContext& ctx, Emitter& out) override {
        for (int64_t i = 0; i < o_.batches; ++i) {
            out.emit(numbered_batch(i * o_.events, o_.events));
            if (o_.pace_us) std::this_thread::sleep_for(std::chrono::microseconds(o_.pace_us));
        }
        while (o_.wait && !ctx.stopping()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }

private:
    NumberedOptions o_;
};
inline const OptionSchema<NumberedOptions> kNumberedSchema{
    {"batches", &NumberedOptions::batches, "Batches to emit."},
    {"events", &NumberedOptions::events, "Events per batch."},
    {"pace_us", &NumberedOptions::pace_us, "Pause after each batch, in microseconds."},
    {"wait", &NumberedOptions::wait, "Keep running until stopped."},
};

// For test stages without options.
struct NoOptions {};
inline const OptionSchema<NoOptions> kNoOptions{};

// Waits until `n` acks settled (or 5 s passed); returns the outcomes so far.
inline std::vector<Outcome> settled(size_t n) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (ack_log().all().size() < n && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return ack_log().all();
}

// The config loaded from `text` and its stages, built; fails the test if either has errors.
struct Built {
    std::unique_ptr<PipelineConfig> cfg;
    std::vector<BuiltStage> stages;
};
inline Built build(const std::string& text) {
    Built b{config(text), {}};
    b.stages = build_stages(*b.cfg);
    INFO(b.cfg->report());
    REQUIRE(b.cfg->ok());
    return b;
}

// Clears ack_log(), then starts a runtime on build(text).
inline std::unique_ptr<Runtime> start_pipeline(const std::string& text) {
    ack_log().clear();
    Built b = build(text);
    auto rt = std::make_unique<Runtime>(std::move(b.cfg), std::move(b.stages));
    rt->start();
    return rt;
}

// Applies build(text) to a running runtime as a reload; returns the reload's summary.
inline std::string reload_pipeline(Runtime& rt, const std::string& text) {
    Built b = build(text);
    return rt.reload(std::move(b.cfg), std::move(b.stages));
}

}  // namespace hbf::test
