#include "ack.h"

namespace hbf {

const char* to_string(AckStatus s) {
    switch (s) {
        case AckStatus::delivered: return "delivered";
        case AckStatus::dropped: return "dropped";
        case AckStatus::failed: return "failed";
    }
    return "?";
}

void AckState::release(AckStatus status, const std::string* reason, bool weak, bool final) {
    int s = static_cast<int>(status);
    if (status == AckStatus::failed && !final) retryable_failure_.store(true, std::memory_order_relaxed);
    int cur = status_.load(std::memory_order_relaxed);
    while (s > cur && !status_.compare_exchange_weak(cur, s)) {}
    if (reason && !reason->empty()) {
        // The reason kept is the one of the worst status; for equal statuses a stage's own
        // reason beats "not settled", and otherwise the first one given stays.
        int rank = s * 2 + (weak ? 0 : 1);
        std::lock_guard lk(reason_m_);
        if (rank > reason_rank_) {
            reason_rank_ = rank;
            reason_ = *reason;
        }
    }
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        Callback cb = std::move(cb_);
        OutcomeCallback ocb = std::move(outcome_cb_);
        AckStatus final_status = this->status();
        const bool for_good = final_status == AckStatus::failed && !retryable_failure_.load(std::memory_order_relaxed);
        std::string why;
        {
            std::lock_guard lk(reason_m_);
            // A reason given for a lesser status (a drop) does not explain a failure.
            if (reason_rank_ / 2 == static_cast<int>(final_status)) why = std::move(reason_);
        }
        delete this;
        if (cb) cb(final_status, why);
        if (ocb) ocb(AckOutcome{final_status, why, for_good});
    }
}

AckRef AckRef::clone() const {
    AckRef r(s_);
    r.status_ = status_;
    r.reason_ = reason_;
    r.final_ = final_;
    return r;
}

void AckRef::mark(AckStatus s, const std::string* reason, bool final) {
    if (static_cast<int>(s) > static_cast<int>(status_)) {
        final_ = final;
    } else if (s == status_ && s == AckStatus::failed) {
        final_ = final_ && final;  // a retryable failure wins over a final one
    }
    if (static_cast<int>(s) > static_cast<int>(status_) || (s == status_ && reason_.empty())) {
        status_ = s;
        if (reason) reason_ = *reason;
    }
    settled_ = true;
}

void AckRef::reset() {
    if (s_) {
        AckState* s = std::exchange(s_, nullptr);
        if (settled_) {
            s->release(status_, reason_.empty() ? nullptr : &reason_, false, final_);
        } else if (status_ == AckStatus::failed && !reason_.empty()) {
            s->release(AckStatus::failed, &reason_);  // a failure noted upstream keeps its reason
        } else {
            static const std::string not_settled = kNotSettled;
            s->release(AckStatus::failed, &not_settled, true);
        }
    }
    status_ = AckStatus::delivered;
    settled_ = false;
    final_ = false;
    reason_.clear();
}

AckRef make_ack(AckState::Callback cb, AckLevel level) {
    AckRef r(new AckState(std::move(cb), level));
    r.mark(AckStatus::delivered);
    return r;
}

}  // namespace hbf

namespace hbf {
AckRef make_outcome_ack(AckState::OutcomeCallback cb) {
    AckRef r(new AckState(std::move(cb)));
    r.mark(AckStatus::delivered);
    return r;
}
}  // namespace hbf
