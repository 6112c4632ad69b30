// Successive batches of one stream processed on several threads at once, handed on in order.
//
// A filter with `workers = N` (see Runtime) runs its batches through an OrderedPool: each batch
// gets a ticket in the order it arrived, and N worker threads process tickets at once. While a
// worker runs the filter chain on a batch it holds an OrderedSection; before anything leaves the
// section where the order shows (a push into a queue, a filter that keeps state between batches,
// a tap), the worker enters the Turnstile, which lets tickets through strictly in order. So what
// the chain does before that point runs in parallel, and everything after it in the input's order.
// A batch that produced nothing still takes its turn.
//
// Like Vector's FuturesOrdered, with tickets at the split and a turnstile at the merge point.
//
// Threads: submit() from any thread (the stage's upstream, several I/O threads, its own queue's
// thread): tickets follow the order submit() took the batches. The work runs on the pool's threads. At most `capacity` batches are in the pool (submit() blocks), so
// backpressure passes through it and memory stays bounded.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "batch.h"

namespace hbf {

// `workers`, as `hbforward stages`, the man page and the README list it for a stateless filter.
inline constexpr const char* kWorkersDoc =
    "Threads that run this filter, and the filters inline below it, on successive batches at once; order kept (1..16).";

class Turnstile {
public:
    // Blocks until every ticket before `t` has left.
    void enter(uint64_t t);
    // Ticket `t`, which entered, leaves: t + 1 may enter.
    void leave(uint64_t t);

private:
    std::atomic<uint64_t> turn_{0};
    std::atomic<int> waiters_{0};
    std::mutex m_;
    std::condition_variable cv_;
};

// The batch a worker thread is processing. Made by the pool around each batch: its destructor
// takes the batch's turn if nothing did yet, and lets the next ticket in.
class OrderedSection {
public:
    OrderedSection(Turnstile& ts, uint64_t ticket, size_t slot);
    ~OrderedSection();
    OrderedSection(const OrderedSection&) = delete;
    OrderedSection& operator=(const OrderedSection&) = delete;

    // Waits for this batch's turn (once): what follows happens in ticket order.
    void enter() {
        if (entered_) return;
        ts_.enter(ticket_);
        entered_ = true;
    }
    bool entered() const { return entered_; }
    // Which worker of its pool (1..N): the instance of a stateless filter it uses.
    size_t slot() const { return slot_; }

    // The calling thread's section, or nullptr outside a pool's worker.
    static OrderedSection* current() { return current_; }

private:
    static thread_local OrderedSection* current_;
    Turnstile& ts_;
    uint64_t ticket_;
    size_t slot_;
    bool entered_ = false;
    OrderedSection* outer_;
};

class OrderedPool {
public:
    using Work = std::function<void(BatchPtr)>;
    // `workers` threads (slots 1..workers) run `work` on the batches submitted, each inside an
    // OrderedSection; at most `capacity` (>= workers) batches are in the pool at once.
    // Its threads are named `name`/1 .. `name`/N (src/thread_name.h).
    OrderedPool(size_t workers, size_t capacity, Work work, std::string name = {});
    ~OrderedPool();  // stop()
    OrderedPool(const OrderedPool&) = delete;
    OrderedPool& operator=(const OrderedPool&) = delete;

    // Takes the next ticket for `b`; blocks while the pool is full. After stop(), runs the work on
    // the calling thread.
    void submit(BatchPtr b);
    // Nothing waiting and nothing being processed.
    bool idle() const { return in_pool_.load() == 0; }
    // Finishes what it holds, then ends its threads.
    void stop();

private:
    void run(size_t slot);

    struct Item {
        uint64_t ticket = 0;
        BatchPtr b;
    };
    Work work_;
    std::string name_;
    Turnstile ts_;
    std::vector<Item> ring_;   // the batches not yet taken by a worker, by ticket
    size_t head_ = 0, count_ = 0;
    uint64_t next_ticket_ = 0;
    std::atomic<size_t> in_pool_{0};  // waiting + being processed
    bool stopping_ = false;
    std::mutex m_;
    std::condition_variable work_cv_, room_cv_;
    std::vector<std::thread> threads_;
};

}  // namespace hbf
