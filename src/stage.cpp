#include "stage.h"

#include "queue.h"

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

// Hands one batch to a queue, or to the filter that runs inline in this thread.
bool deliver(BatchQueue* q, BatchPtr& b, const std::atomic<bool>& abort) {
    if (InlineConsumer* ic = q->inline_consumer.load(std::memory_order_acquire)) {
        ic->consume(std::move(b));
        return true;
    }
    return q->push(b, abort);
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

bool Emitter::emit(BatchPtr b, size_t port) {
    if (!b || emptied(*b)) return true;
    if (ctx_.tap->active()) ctx_.tap->offer(*b, port);
    std::shared_lock lk(ctx_.targets_m);
    if (port >= ctx_.targets.size() || ctx_.targets[port].empty()) {
        b->mark(AckStatus::dropped, "no downstream stage");
        return true;
    }
    const size_t n = b->size(), bytes = b->bytes();
    auto& qs = ctx_.targets[port];
    // deliver() fails only when the shutdown timeout aborts a blocked push: what it kept is
    // reported failed, so no input takes it for delivered.
    for (size_t i = 0; i + 1 < qs.size(); ++i) {
        BatchPtr c = b->clone();
        if (!deliver(qs[i], c, ctx_.abort_flag())) {
            c->mark(AckStatus::failed, "shutdown timeout: not handed to the next stage");
            b->mark(AckStatus::failed, "shutdown timeout: not handed to the next stage");
            return false;
        }
    }
    if (!deliver(qs.back(), b, ctx_.abort_flag())) {
        b->mark(AckStatus::failed, "shutdown timeout: not handed to the next stage");
        return false;
    }
    ctx_.metrics().events_out.add(n);
    ctx_.metrics().bytes_out.add(bytes);
    return true;
}

bool Emitter::try_emit(BatchPtr& b, size_t port) {
    if (!b || emptied(*b)) {
        b.reset();
        return true;
    }
    std::shared_lock lk(ctx_.targets_m);
    if (port >= ctx_.targets.size() || ctx_.targets[port].empty()) {
        b->mark(AckStatus::dropped, "no downstream stage");
        b.reset();
        return true;
    }
    auto& qs = ctx_.targets[port];
    for (auto* q : qs)
        if (queue_full(q)) return false;
    if (ctx_.tap->active()) ctx_.tap->offer(*b, port);
    const size_t n = b->size(), bytes = b->bytes();
    // Room was checked: a race with another producer only overshoots the budget a little.
    // A push still blocks if the room was taken meanwhile; only the shutdown timeout ends it.
    bool all = true;
    for (size_t i = 0; i + 1 < qs.size(); ++i) {
        BatchPtr c = b->clone();
        if (!deliver(qs[i], c, ctx_.abort_flag())) {
            c->mark(AckStatus::failed, "shutdown timeout: not handed to the next stage");
            all = false;
        }
    }
    if (!deliver(qs.back(), b, ctx_.abort_flag())) {
        b->mark(AckStatus::failed, "shutdown timeout: not handed to the next stage");
        b.reset();
        all = false;
    }
    if (!all) return true;  // handed over, partly as failed: the caller must not offer it again
    ctx_.metrics().events_out.add(n);
    ctx_.metrics().bytes_out.add(bytes);
    return true;
}

}  // namespace hbf
