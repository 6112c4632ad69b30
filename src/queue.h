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

    // Producers are counted so a consumer knows when no more batches can come.
    void add_producer() { producers_.fetch_add(1); }
    void remove_producer() { producers_.fetch_sub(1); wake_consumer(); }
    int producers() const { return producers_.load(); }
    void wake_consumer();

    // Set while the queue's filter runs inline in its one producer's thread; batches then
    // bypass the queue.
    std::atomic<InlineConsumer*> inline_consumer{nullptr};

private:
    bool admit(BatchPtr& b);

    moodycamel::BlockingConcurrentQueue<Batch*> q_;
    const int64_t max_events_, max_bytes_;
    std::atomic<int64_t> events_{0}, bytes_{0};
    std::atomic<int> producers_{0};
    std::atomic<int> waiting_{0};
    std::mutex m_;
    std::condition_variable space_;
};

}  // namespace hbf
