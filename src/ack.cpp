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

void AckState::release(AckStatus status, const std::string* reason) {
    int s = static_cast<int>(status);
    int cur = status_.load(std::memory_order_relaxed);
    while (s > cur && !status_.compare_exchange_weak(cur, s)) {}
    if (reason && !reason->empty() && !has_reason_.exchange(true)) reason_ = *reason;
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        Callback cb = std::move(cb_);
        AckStatus final_status = this->status();
        std::string why = reason_;
        delete this;
        if (cb) cb(final_status, why);
    }
}

void AckRef::mark(AckStatus s, const std::string* reason) {
    if (static_cast<int>(s) > static_cast<int>(status_)) {
        status_ = s;
        if (reason) reason_ = *reason;
    }
}

void AckRef::reset() {
    if (s_) {
        AckState* s = std::exchange(s_, nullptr);
        s->release(status_, reason_.empty() ? nullptr : &reason_);
    }
    status_ = AckStatus::delivered;
    reason_.clear();
}

AckRef make_ack(AckState::Callback cb) {
    return AckRef(new AckState(std::move(cb)));
}

}  // namespace hbf
