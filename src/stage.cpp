#include "stage.h"

#include "ordered.h"
#include "queue.h"

#include <algorithm>
#include <thread>

#include <boost/container/small_vector.hpp>

namespace hbf {

StageContext::StageContext(std::string name, std::string type, std::string kind)
    : name_(std::move(name)), type_(std::move(type)), logger_(make_logger(name_)), metrics_(name_, type_, kind) {}

void StageContext::set_failed(const std::string& reason) {
    std::lock_guard lk(m_);
    failure_ = reason;
}

void StageContext::clear_failed() {
    std::lock_guard lk(m_);
    failure_.clear();
}

std::string StageContext::failure() const {
    std::lock_guard lk(m_);
    return failure_;
}

void StageContext::set_degraded(const std::string& reason) {
    std::lock_guard lk(m_);
    degraded_ = reason;
}

void StageContext::clear_degraded() {
    std::lock_guard lk(m_);
    degraded_.clear();
}

std::string StageContext::degraded() const {
    std::lock_guard lk(m_);
    return degraded_;
}

bool Emitter::has_targets(size_t port) const {
    std::shared_lock lk(ctx_.targets_m);
    return port < ctx_.targets.size() && !ctx_.targets[port].empty(); }

namespace {
bool queue_full(BatchQueue* q) {
    if (InlineConsumer* ic = q->inline_consumer.load(std::memory_order_acquire)) return ic->downstream_full();
    return q->full();
}

}  // namespace

bool Emitter::any_full() const {
    std::shared_lock lk(ctx_.targets_m);
    for (const auto& port : ctx_.targets)
        for (auto* q : port)
            if (queue_full(q)) return true;
    return false;
}

// A filter that emits an empty batch dropped all of its events (and counted them).
static bool emptied(Batch& b) {
    if (!b.empty()) return false;
    b.mark(AckStatus::dropped, "every event of the batch was dropped");
    return true;
}

namespace {
using Handed = boost::container::small_vector<const BatchQueue*, 8>;
bool handed_to(const Handed& h, const BatchQueue* q) { return std::find(h.begin(), h.end(), q) != h.end(); }
}  // namespace

// Hands `b` to every queue of `port`: a clone each, the original to the last. A push blocked by
// backpressure gives up when the shutdown timeout aborts it or a reload retargets this stage; on
// a retarget the emitter lets go of its targets until the reload has rewired them, then hands
// what it holds to the queues it has not reached yet (the copies are alike), so a reload never
// waits for a queue that cannot drain. A filter that runs inline is called under the lock, which
// keeps it alive: a reload that changes this stage's targets while that filter's own push is
// blocked, and not its targets, still waits for that push.
// Returns false only when aborted: what it still held is reported failed.
bool Emitter::deliver_all(BatchPtr b, size_t port) {
    Handed handed;
    BatchPtr spare;  // a copy a queue refused, for the next queue
    const size_t n = b->size(), bytes = b->bytes();
    for (;;) {
        std::shared_lock lk(ctx_.targets_m);
        const std::vector<BatchQueue*>* qs = port < ctx_.targets.size() ? &ctx_.targets[port] : nullptr;
        size_t left = 0;
        if (qs)
            for (auto* q : *qs) left += !handed_to(handed, q);
        if (left == 0 || (!b && !spare)) break;
        // In a worker of an ordered pool (src/ordered.h), nothing goes into a queue before the
        // batch's turn: the next stage gets the batches in the order they came.
        if (OrderedSection* s = OrderedSection::current(); s && !s->entered() && std::any_of(qs->begin(), qs->end(), [&](BatchQueue* q) {
                return !handed_to(handed, q) && !q->inline_consumer.load(std::memory_order_acquire);
            })) {
            lk.unlock();
            s->enter();
            continue;
        }
        bool refused = false;
        for (BatchQueue* q : *qs) {
            if (handed_to(handed, q)) continue;
            BatchPtr c = spare ? std::move(spare) : (left == 1 || !b ? std::move(b) : b->clone());
            if (InlineConsumer* ic = q->inline_consumer.load(std::memory_order_acquire)) {
                ic->consume(std::move(c));  // under the lock: it keeps the filter alive
                handed.push_back(q);
                if (--left == 0) break;
                continue;
            }
            if (!q->push(c, ctx_.push_stop_flag())) {
                spare = std::move(c);
                refused = true;
                break;
            }
            handed.push_back(q);
            if (--left == 0) break;
        }
        if (!refused) break;
        lk.unlock();
        if (ctx_.abort_flag().load()) {
            const std::string why = "shutdown timeout: not handed to the next stage";
            spare->mark(AckStatus::failed, why);
            if (b) b->mark(AckStatus::failed, why);
            return false;
        }
        while (ctx_.retargeting() && !ctx_.abort_flag().load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Left over: nothing was handed (no downstream stage), or a copy more than the queues that
    // remain after a reload removed one. Every queue that remains has its own copy, whose outcome
    // its stage reports; the extra copy adds nothing to it (delivered is the best outcome).
    for (BatchPtr* x : {&b, &spare})
        if (*x) (*x)->mark(handed.empty() ? AckStatus::dropped : AckStatus::delivered,
                           handed.empty() ? "no downstream stage" : "a copy for a stage a reload removed");
    if (handed.empty()) return true;
    ctx_.metrics().events_out.add(n);
    ctx_.metrics().bytes_out.add(bytes);
    return true;
}

// A tap sees the batches in order too (see deliver_all).
static void offer_to_tap(StageContext& ctx, const Batch& b, size_t port) {
    if (OrderedSection* s = OrderedSection::current()) s->enter();
    ctx.tap->offer(b, port);
}

bool Emitter::emit(BatchPtr b, size_t port) {
    if (!b || emptied(*b)) return true;
    if (ctx_.tap->active()) offer_to_tap(ctx_, *b, port);
    return deliver_all(std::move(b), port);
}

bool Emitter::try_emit(BatchPtr& b, size_t port) {
    if (!b || emptied(*b)) {
        b.reset();
        return true;
    }
    {
        std::shared_lock lk(ctx_.targets_m);
        if (port < ctx_.targets.size())
            for (auto* q : ctx_.targets[port])
                if (queue_full(q)) return false;
    }
    if (ctx_.tap->active()) offer_to_tap(ctx_, *b, port);
    // Room was checked: a race with another producer only overshoots the budget a little. A push
    // still blocks if the room was taken meanwhile. Handed over (partly as failed when aborted):
    // the caller must not offer it again.
    deliver_all(std::move(b), port);
    return true;
}

}  // namespace hbf
