// What the core knows of a stage: Input, Filter, Output, and the contexts they run in.
//
// Threads: each input runs run() on a thread of its own (an input may start more, like the
// HTTP server's I/O threads); each filter and each output has one thread that pops batches
// from its bounded queue. Stages never see queues: they emit batches through their context.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "batch.h"
#include "log.h"
#include "metrics.h"
#include "tap.h"

namespace hbf {

class BatchQueue;

// Shared by every kind of stage.
class StageContext {
public:
    StageContext(std::string name, std::string type, std::string kind);
    const std::string& name() const { return name_; }
    const std::string& type() const { return type_; }
    spdlog::logger& log() { return *logger_; }
    std::shared_ptr<spdlog::logger> logger() { return logger_; }
    StageMetrics& metrics() { return metrics_; }

    // A running stage that can no longer do its job says so; /health reports it (503 "failing").
    void set_failed(const std::string& reason);
    void clear_failed();
    std::string failure() const;
    // An output that cannot deliver now and keeps retrying (a broker unreachable, a full disk)
    // says why; /health answers 503 "degraded" until it clears it.
    void set_degraded(const std::string& reason);
    void clear_degraded();
    std::string degraded() const;

    // True once shutdown (or a reload that removes the stage) began.
    bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
    void request_stop() { stopping_.store(true); }
    // Set when the shutdown timeout passed: blocked pushes give up.
    const std::atomic<bool>& abort_flag() const { return aborting_; }
    void request_abort() {
        std::lock_guard lk(flags_m_);
        aborting_.store(true);
        stopping_.store(true);
        push_stop_.store(true);
    }
    // A hot reload changing where this stage's batches go: its blocked pushes give up (keeping
    // the batch), its emitter lets go of the targets until end_retarget(), then hands the batch
    // to the new targets. So a reload never waits for a queue that cannot drain (an output whose
    // peer is down).
    void begin_retarget() {
        std::lock_guard lk(flags_m_);
        retargeting_.store(true);
        push_stop_.store(true);
    }
    void end_retarget() {
        std::lock_guard lk(flags_m_);
        retargeting_.store(false);
        push_stop_.store(aborting_.load());
    }
    bool retargeting() const { return retargeting_.load(std::memory_order_acquire); }
    // What an emitter's push waits on: the abort or a retarget.
    const std::atomic<bool>& push_stop_flag() const { return push_stop_; }

    // Copies of what this stage emits, for `hbforward tap`; idle (one relaxed load a batch) untapped.
    std::shared_ptr<TapPoint> tap = std::make_shared<TapPoint>();

    // From [service]: where state lives, how many events an input puts in a batch.
    std::string data_dir = ".hbforward";
    size_t batch_events = 1024;

    // Where this stage's batches go, one list of queues per output port (port 0 = the stage itself).
    // A hot reload rewires under the unique lock (between begin_retarget() and end_retarget());
    // emit() holds the shared lock while it pushes, and lets go of it while it waits for a
    // retarget or hands a batch to a filter that runs inline.
    std::vector<std::vector<BatchQueue*>> targets;
    mutable std::shared_mutex targets_m;

private:
    std::string name_, type_;
    std::shared_ptr<spdlog::logger> logger_;
    StageMetrics metrics_;
    mutable std::mutex m_;
    std::string failure_, degraded_;
    std::atomic<bool> stopping_{false}, aborting_{false};
    std::atomic<bool> retargeting_{false}, push_stop_{false};
    std::mutex flags_m_;
};

// Hands a batch to every downstream queue of a port; the last one gets the original, the
// others a clone. emit() blocks under backpressure; try_emit() refuses at once when a
// downstream queue is full, keeping the batch.
class Emitter {
public:
    explicit Emitter(StageContext& ctx) : ctx_(ctx) {}
    bool emit(BatchPtr b, size_t port = 0);
    bool try_emit(BatchPtr& b, size_t port = 0);
    bool has_targets(size_t port = 0) const;
    // True when a downstream queue (or, for an inline filter, its own downstream) is over budget.
    bool any_full() const;

private:
    bool deliver_all(BatchPtr b, size_t port);
    StageContext& ctx_;
};

class Input {
public:
    virtual ~Input() = default;
    // Binds sockets, opens files: a throw here stops the process with exit code 1.
    virtual void start(StageContext&) {}
    // Produces batches until done (EOF, count reached) or ctx.stopping().
    virtual void run(StageContext& ctx, Emitter& out) = 0;
    // Called from another thread to make run() return soon (closes listeners and the like).
    virtual void stop() {}
};

class Filter {
public:
    virtual ~Filter() = default;
    virtual void start(StageContext&) {}
    // Takes a batch, emits zero or more. Dropped events are counted by the filter.
    virtual void process(BatchPtr in, Emitter& out) = 0;
    virtual void stop() {}
};

class Output {
public:
    virtual ~Output() = default;
    virtual void start(StageContext&) {}
    // Takes ownership; the batch's acks settle when the output releases it (after writing, or
    // after the broker confirmed). A failed write marks the batch failed before releasing it.
    virtual void write(BatchPtr b) = 0;
    // The batches of one pop from the queue, in order, in one call (the file output writes them
    // with one stat and one writev). The runtime calls it, instead of write() per batch, only
    // for an output whose writes_many() is true and whose queue is in memory (not a disk
    // buffer). A throw fails every batch of the call, so such an output marks none of them
    // delivered before it is past what can throw. The default writes each in turn.
    virtual void write_many(BatchPtr* batches, size_t n) {
        for (size_t i = 0; i < n; ++i) write(std::move(batches[i]));
    }
    virtual bool writes_many() const { return false; }
    // True while it holds batches that only tick() settles (a Kafka producer's delivery reports,
    // which an `ack = "delivered"` request waits for): the runtime then ticks it every 2 ms
    // instead of every 100 ms.
    virtual bool settles_in_tick() const { return false; }
    // Called at least every 100 ms, with or without data (delivery reports, flush timers).
    virtual void tick() {}
    // Flushes what it holds; returns when done or when the deadline passes.
    virtual void flush(std::chrono::steady_clock::time_point /*deadline*/) {}
    virtual void stop() {}
};

}  // namespace hbf
