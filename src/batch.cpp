#include "batch.h"

#include <algorithm>
#include <concurrentqueue/concurrentqueue.h>
#include <ctime>

namespace hbf {

namespace {
constexpr size_t kPoolMax = 512;
constexpr size_t kKeepCapacity = 8u << 20;  // larger buffers go back to the allocator

moodycamel::ConcurrentQueue<Batch*>& pool() {
    static auto* q = new moodycamel::ConcurrentQueue<Batch*>(kPoolMax);
    return *q;
}
std::atomic<size_t> g_pooled{0};

void to_pool(Batch* b) {
    if (g_pooled.load(std::memory_order_relaxed) >= kPoolMax) {
        delete b;
        return;
    }
    g_pooled.fetch_add(1, std::memory_order_relaxed);
    if (!pool().enqueue(b)) {
        g_pooled.fetch_sub(1, std::memory_order_relaxed);
        delete b;
    }
}

// The last few batches a thread released, taken back first by the same thread (last in, first
// out): their buffers are still in this core's cache. The shared pool is first in, first out and
// mixes threads, so a batch from it is the one released longest ago, often by the output's thread
// on the other core, and the first writes into it wait for its cache lines (a read into the file
// input's batch, the json filter's walk, enrich's splice).
struct LocalBatches {
    static constexpr size_t kMax = 4;
    Batch* held[kMax] = {};
    size_t n = 0;
    bool gone = false;  // destroyed: a batch released later (a static's destructor) goes to the pool
    ~LocalBatches() {  // the thread ends: its batches go to the other threads
        gone = true;
        while (n > 0) to_pool(held[--n]);
    }
};
thread_local LocalBatches t_local;
}  // namespace

void BatchRecycler::operator()(Batch* b) const noexcept {
    b->clear();
    if (b->buf.capacity() > kKeepCapacity) {
        delete b;
        return;
    }
    LocalBatches& l = t_local;
    if (l.gone) return to_pool(b);
    if (l.n == LocalBatches::kMax) {  // the oldest of them goes to the shared pool
        to_pool(l.held[0]);
        std::move(l.held + 1, l.held + l.n, l.held);
        --l.n;
    }
    l.held[l.n++] = b;
}

BatchPtr Batch::make() {
    Batch* b = nullptr;
    LocalBatches& l = t_local;
    if (l.n > 0) {
        b = l.held[--l.n];
    } else if (pool().try_dequeue(b)) {
        g_pooled.fetch_sub(1, std::memory_order_relaxed);
    } else {
        b = new Batch();
    }
    b->received_ns = now_ns();
    return BatchPtr(b);
}

bool Batch::dense() const {
    size_t pos = 0;
    for (const auto& e : events) {
        if (e.off != pos) return false;
        pos = e.off + e.len + 1;
    }
    return pos == buf.size();
}

BatchPtr Batch::clone() const {
    BatchPtr c = make();
    c->buf.reserve(buf.size() + kPadding);
    c->buf = buf;
    c->events = events;
    c->acks.reserve(acks.size());
    for (const auto& a : acks) c->acks.push_back(a.clone());
    c->received_ns = received_ns;
    c->compact_json = compact_json;
    return c;
}

void Batch::take_acks_from(Batch& from) {
    for (auto& a : from.acks) acks.push_back(std::move(a));
    from.acks.clear();
    received_ns = from.received_ns;
}

void Batch::mark(AckStatus s, const std::string& reason) {
    for (auto& a : acks) a.mark(s, reason.empty() ? nullptr : &reason);
}

void Batch::mark_failed_for_good(const std::string& reason) {
    for (auto& a : acks) a.mark(AckStatus::failed, reason.empty() ? nullptr : &reason, true);
}

void Batch::settle_accepted() {
    size_t k = 0;
    for (size_t i = 0; i < acks.size(); ++i) {
        if (acks[i].settles_on_accept()) {
            acks[i].mark(AckStatus::delivered);
            acks[i].reset();
        } else {
            if (k != i) acks[k] = std::move(acks[i]);
            ++k;
        }
    }
    acks.erase(acks.begin() + ptrdiff_t(k), acks.end());
}

void Batch::clear() {
    acks.clear();  // releases the holds: an emptied batch is settled
    events.clear();
    buf.clear();
    received_ns = 0;
    compact_json = false;
    pending_off_ = 0;
}

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace hbf
