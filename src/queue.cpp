#include "queue.h"

#include <memory>
#include <unordered_map>

#include "ordered.h"

namespace hbf {

namespace {
// The workers of an ordered pool (src/ordered.h) push from several threads, one at a time in
// ticket order. moodycamel's queue is FIFO per producer only (each thread is an implicit producer
// of its own), so those pushes share one explicit producer token per queue, under a lock: the
// consumer then takes them in the order they were pushed. The tokens live beside the queues, not
// in them, so that queue.h (included everywhere) stays as it is; ~BatchQueue drops its token.
struct OrderedTokens {
    std::mutex m;
    std::unordered_map<const BatchQueue*, std::unique_ptr<moodycamel::ProducerToken>> by_queue;
};
OrderedTokens& ordered_tokens() {
    static auto* t = new OrderedTokens;  // never destroyed: queues may outlive static destruction
    return *t;
}
}  // namespace

bool BatchQueue::admit(BatchPtr& b) {
    const int64_t n = static_cast<int64_t>(b->size());
    const int64_t sz = static_cast<int64_t>(b->bytes());
    // Reserve first, then check: concurrent producers cannot overshoot by more than one batch each.
    int64_t ev = events_.fetch_add(n) ;
    int64_t by = bytes_.fetch_add(sz);
    if (ev != 0 && (ev + n > max_events_ || by + sz > max_bytes_)) {
        events_.fetch_sub(n);
        bytes_.fetch_sub(sz);
        return false;
    }
    if (!b->acks.empty()) b->settle_accepted();  // queued: what the webhook's ack = "accepted" waits for
    if (OrderedSection::current()) {
        OrderedTokens& t = ordered_tokens();
        std::lock_guard lk(t.m);
        auto& tok = t.by_queue[this];
        if (!tok) tok = std::make_unique<moodycamel::ProducerToken>(q_);
        q_.enqueue(*tok, b.release());
        return true;
    }
    q_.enqueue(b.release());
    return true;
}

bool BatchQueue::push(BatchPtr& b, const std::atomic<bool>& abort) {
    if (sealed_.load()) return false;
    if (admit(b)) {
        if (sealed_.load()) fail_sealed();
        return true;
    }
    const int64_t n = static_cast<int64_t>(b->size());
    const int64_t sz = static_cast<int64_t>(b->bytes());
    // The same test admit() makes: waking for less room than this batch needs would spin.
    auto room = [&] { return events() == 0 || (events() + n <= max_events_ && bytes() + sz <= max_bytes_); };
    waiting_.fetch_add(1);
    while (!abort.load(std::memory_order_relaxed) && !sealed_.load(std::memory_order_relaxed)) {
        {
            std::unique_lock lk(m_);
            space_.wait_for(lk, std::chrono::milliseconds(5), room);
        }
        if (admit(b)) {
            waiting_.fetch_sub(1);
            if (sealed_.load()) fail_sealed();
            return true;
        }
    }
    waiting_.fetch_sub(1);
    return false;
}

size_t BatchQueue::pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) {
    Batch* raw[64];
    if (n > 64) n = 64;
    size_t got = q_.wait_dequeue_bulk_timed(raw, n, timeout.count());
    int64_t ev = 0, by = 0;
    for (size_t i = 0; i < got; ++i) {
        if (!raw[i]) continue;  // a wake-up token
        ev += static_cast<int64_t>(raw[i]->size());
        by += static_cast<int64_t>(raw[i]->bytes());
    }
    size_t k = 0;
    for (size_t i = 0; i < got; ++i)
        if (raw[i]) out[k++] = BatchPtr(raw[i]);
    if (k) {
        events_.fetch_sub(ev);
        bytes_.fetch_sub(by);
        if (waiting_.load(std::memory_order_relaxed) > 0) {
            std::lock_guard lk(m_);
            space_.notify_all();
        }
    }
    return k;
}

void BatchQueue::fail_sealed() {
    Batch* b = nullptr;
    while (q_.try_dequeue(b)) {
        if (!b) continue;
        events_.fetch_sub(static_cast<int64_t>(b->size()));
        bytes_.fetch_sub(static_cast<int64_t>(b->bytes()));
        b->mark(AckStatus::failed, "its stage had finished: not handed over");
        BatchPtr(b).reset();
    }
}

void BatchQueue::wake_consumer() { q_.enqueue(nullptr); }

BatchQueue::~BatchQueue() {
    {
        OrderedTokens& t = ordered_tokens();
        std::lock_guard lk(t.m);
        t.by_queue.erase(this);
    }
    Batch* b = nullptr;
    while (q_.try_dequeue(b))
        if (b) BatchPtr(b).reset();
}

}  // namespace hbf
