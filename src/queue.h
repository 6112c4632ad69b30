// The bounded queue in front of each filter and output.
//
// A moodycamel::BlockingConcurrentQueue of batches with a budget in events and bytes. Producers
// block in push() while the queue is over budget (backpressure), until `abort` is set; with
// `abort` already set, push() refuses at once and the batch stays with the caller.
// Emitter::try_emit() checks full() first, which is how the HTTP input answers 503. One batch
// is always admitted into an empty queue, so a batch larger than the budget cannot wedge the
// pipeline.
//
// An output's queue may instead be a disk buffer (src/buffer/disk_queue.h, `buffer = { type =
// "disk" }`): the same interface, overridden, with open() and close() around the output's life.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include <concurrentqueue/blockingconcurrentqueue.h>

#include "batch.h"

namespace hbf {

// A filter that its single upstream may run on the upstream's own thread instead of queueing
// to it (see Runtime: a chain input -> json -> enrich runs on one thread, one hop fewer each).
class InlineConsumer {
public:
    virtual ~InlineConsumer() = default;
    virtual void consume(BatchPtr b) = 0;
    // True when the consumer's own downstream queues are over budget.
    virtual bool downstream_full() const = 0;
};

// A consumer that finds its queue empty spins this many times before it sleeps (moodycamel's
// default is 10,000). Batches come far apart compared with that (a 1,024-event batch every ~1 ms
// in a bulk file, the linger between webhook requests), so the spin was wasted: 3-4% of the CPU
// of the file and webhook pipelines in bench/profile.sh.
struct BatchQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
    static const int MAX_SEMA_SPINS = 200;
};

class BatchQueue {
public:
    BatchQueue(int64_t max_events, int64_t max_bytes) : max_events_(max_events), max_bytes_(max_bytes) {}
    // Batches still queued are freed; their acks report failed ("not settled").
    virtual ~BatchQueue();
    BatchQueue(const BatchQueue&) = delete;
    BatchQueue& operator=(const BatchQueue&) = delete;

    // Before the consumer starts / after it finished (a disk buffer opens and closes its files).
    // open() throws with a message for the user.
    virtual void open() {}
    virtual void close() {}

    // Blocks while full; returns false (keeping the batch) only if `abort` becomes true.
    virtual bool push(BatchPtr& b, const std::atomic<bool>& abort);

    // Waits up to `timeout` for batches; returns how many were taken into out[0..n).
    virtual size_t pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout);

    // Events and bytes waiting for the consumer.
    virtual int64_t events() const { return events_.load(std::memory_order_relaxed); }
    virtual int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
    int64_t max_events() const { return max_events_; }
    int64_t max_bytes() const { return max_bytes_; }
    virtual bool full() const { return events() >= max_events_ || bytes() >= max_bytes_; }
    // Extra members for the stage's entry in /pipeline ("" = none), e.g. "\"buffer\":{...}".
    virtual std::string describe_json() const { return ""; }
    // Whether what it hands out comes from files (a disk buffer, a backlog): such batches go to
    // their output one at a time.
    virtual bool on_disk() const { return false; }

    // Producers are counted, by the Edges that lead here, so a consumer knows when no more
    // batches can come.
    int producers() const { return producers_.load(); }
    void wake_consumer();

    // The consumer finished and drains no more: a later push() refuses the batch (the emitter
    // reports it failed) instead of leaving it queued until the queue is destroyed.
    void seal() { sealed_.store(true); }
    bool sealed() const { return sealed_.load(); }

    // Set while the queue's filter runs inline in its one producer's thread; batches then
    // bypass the queue.
    std::atomic<InlineConsumer*> inline_consumer{nullptr};

private:
    friend class Edge;
    bool admit(BatchPtr& b);
    void fail_sealed();  // a push that raced with seal(): what got in reports failed

    moodycamel::BlockingConcurrentQueue<Batch*, BatchQueueTraits> q_;
    const int64_t max_events_, max_bytes_;
    std::atomic<int64_t> events_{0}, bytes_{0};
    std::atomic<int> producers_{0};
    std::atomic<int> waiting_{0};
    std::atomic<bool> sealed_{false};
    std::mutex m_;
    std::condition_variable space_;
};

// A stage's edge to a downstream queue: while it lives, the stage counts as one of the queue's
// producers. The runtime keeps one per distinct downstream queue of each stage; dropping it (the
// stage finished, or a reload rewired it) is how the consumer learns that no more will come.
class Edge {
public:
    explicit Edge(BatchQueue& q) : q_(&q) { q_->producers_.fetch_add(1); }
    ~Edge() { release(); }
    Edge(Edge&& o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    Edge& operator=(Edge&& o) noexcept {
        if (this != &o) {
            release();
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }
    Edge(const Edge&) = delete;
    Edge& operator=(const Edge&) = delete;
    BatchQueue* queue() const { return q_; }

private:
    void release() {
        if (!q_) return;
        q_->producers_.fetch_sub(1);
        q_->wake_consumer();
        q_ = nullptr;
    }
    BatchQueue* q_;
};

}  // namespace hbf
