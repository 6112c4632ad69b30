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

bool Emitter::has_targets(size_t port) const {
    std::shared_lock lk(ctx_.targets_m);
    return port < ctx_.targets.size() && !ctx_.targets[port].empty(); }

bool Emitter::full(size_t port) const {
    std::shared_lock lk(ctx_.targets_m);
    if (port >= ctx_.targets.size()) return false;
    for (auto* q : ctx_.targets[port])
        if (q->full()) return true;
    return false;
}

bool Emitter::emit(BatchPtr b, size_t port) {
    if (!b || b->empty()) return true;
    std::shared_lock lk(ctx_.targets_m);
    if (port >= ctx_.targets.size() || ctx_.targets[port].empty()) {
        b->mark(AckStatus::dropped, "no downstream stage");
        return true;
    }
    const size_t n = b->size(), bytes = b->bytes();
    auto& qs = ctx_.targets[port];
    for (size_t i = 0; i + 1 < qs.size(); ++i) {
        BatchPtr c = b->clone();
        if (!qs[i]->push(c, ctx_.abort_flag())) return false;
    }
    if (!qs.back()->push(b, ctx_.abort_flag())) return false;
    ctx_.metrics().events_out.add(n);
    ctx_.metrics().bytes_out.add(bytes);
    return true;
}

bool Emitter::try_emit(BatchPtr& b, size_t port) {
    if (!b || b->empty()) return true;
    std::shared_lock lk(ctx_.targets_m);
    if (port >= ctx_.targets.size() || ctx_.targets[port].empty()) {
        b->mark(AckStatus::dropped, "no downstream stage");
        b.reset();
        return true;
    }
    auto& qs = ctx_.targets[port];
    for (auto* q : qs)
        if (q->full()) return false;
    const size_t n = b->size(), bytes = b->bytes();
    for (size_t i = 0; i + 1 < qs.size(); ++i) {
        BatchPtr c = b->clone();
        if (!qs[i]->try_push(c)) qs[i]->push(c, ctx_.abort_flag());  // room was checked; a race only overshoots
    }
    if (!qs.back()->try_push(b)) qs.back()->push(b, ctx_.abort_flag());
    ctx_.metrics().events_out.add(n);
    ctx_.metrics().bytes_out.add(bytes);
    return true;
}

}  // namespace hbf
