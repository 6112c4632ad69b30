// Acknowledgement tokens: how an input learns that every output finished with its events.
//
// An input that cares (HTTP with ack = "delivered", Kafka offsets, file checkpoints) makes an
// AckState with a callback and attaches an AckRef to the batch it emits. Every copy of a batch
// (fan-out, route) holds its own AckRef; the state settles when the last ref is released, with
// the worst status any holder reported: delivered < dropped < failed.
//
// A hold must be settled explicitly: the stage that finishes with a batch marks it delivered,
// dropped or failed. A hold released without a mark (a batch a stage let go of by mistake, or
// one unwound by an exception) reports `failed` with the reason "not settled", so nothing is
// ever taken for delivered by default. The runtime reopens every hold when it hands a batch to
// the next stage: a mark speaks for the stage that made it, not for the ones after it.
//
// An AckState made with AckLevel::accepted (the webhook's ack = "accepted") asks less: its holds
// settle when the batch is in a queue (an output's memory queue, or a filter's) or written to an
// output's disk buffer (and synced, with sync = "batch"), not when an output delivered it. The
// queue settles such holds and takes them off the batch (Batch::settle_accepted()).
//
// A failure is retryable unless the stage that marked it says it is final (`failed for good`: a
// peer that refused the events, such as an HTTP 4xx or a message too large for Kafka): a disk
// buffer hands a retryable failure to its output again and removes a final one. The outcome is
// final only if every failed hold said so; a hold released without a mark is retryable.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

namespace hbf {

enum class AckStatus : int { delivered = 0, dropped = 1, failed = 2 };
enum class AckLevel : uint8_t { delivered, accepted };

const char* to_string(AckStatus s);

// The reason given for a hold released without a mark.
inline constexpr const char* kNotSettled = "not settled (a stage let go of the batch without reporting an outcome)";

// What an AckState settled with, for a callback that tells retryable failures from final ones.
struct AckOutcome {
    AckStatus status;
    const std::string& reason;
    bool final;  // status is failed and every failure was marked final
};

class AckState {
public:
    using Callback = std::function<void(AckStatus, const std::string& reason)>;
    using OutcomeCallback = std::function<void(const AckOutcome&)>;
    explicit AckState(Callback cb, AckLevel level = AckLevel::delivered) : cb_(std::move(cb)), level_(level) {}
    explicit AckState(OutcomeCallback cb) : outcome_cb_(std::move(cb)), level_(AckLevel::delivered) {}

    void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    // `weak`: the reason is only the default "not settled"; any reason a stage gave for the same
    // status replaces it, so the callback hears the exception's text, not the unwinding's.
    // `final`: a failure the stage marked as failed for good.
    void release(AckStatus status, const std::string* reason = nullptr, bool weak = false, bool final = false);

    AckStatus status() const noexcept { return static_cast<AckStatus>(status_.load()); }
    AckLevel level() const noexcept { return level_; }

private:
    std::atomic<int> refs_{0};
    std::atomic<int> status_{0};
    std::atomic<bool> retryable_failure_{false};
    std::mutex reason_m_;  // taken only by holders that give a reason (failures, drops)
    int reason_rank_ = -1;  // status * 2 + (strong ? 1 : 0) of reason_
    std::string reason_;
    Callback cb_;
    OutcomeCallback outcome_cb_;
    const AckLevel level_;
};

// A counted hold on an AckState. Move-only.
class AckRef {
public:
    AckRef() = default;
    explicit AckRef(AckState* s) : s_(s) { if (s_) s_->retain(); }
    AckRef(const AckRef&) = delete;
    AckRef& operator=(const AckRef&) = delete;
    AckRef(AckRef&& o) noexcept
        : s_(std::exchange(o.s_, nullptr)), status_(o.status_), settled_(o.settled_), final_(o.final_), reason_(std::move(o.reason_)) {}
    AckRef& operator=(AckRef&& o) noexcept {
        if (this != &o) {
            reset();
            s_ = std::exchange(o.s_, nullptr);
            status_ = o.status_;
            settled_ = o.settled_;
            final_ = o.final_;
            reason_ = std::move(o.reason_);
        }
        return *this;
    }
    ~AckRef() { reset(); }

    // A new hold on the same state: it carries the outcomes marked so far but is not settled.
    AckRef clone() const;
    // Records an outcome (the worst one seen wins) and settles this hold. `final` with failed:
    // failed for good, sending again would not help (see above).
    void mark(AckStatus s, const std::string* reason = nullptr, bool final = false);
    // The batch goes to another stage, which must report its own outcome.
    void reopen() noexcept { settled_ = false; }
    bool settled() const noexcept { return settled_; }
    // Releases the hold: its marked outcome, or failed ("not settled") when nothing was marked.
    void reset();
    explicit operator bool() const { return s_ != nullptr; }
    // True for a hold that settles once the batch is queued or on disk (AckLevel::accepted).
    bool settles_on_accept() const noexcept { return s_ && s_->level() == AckLevel::accepted; }

private:
    AckState* s_ = nullptr;
    AckStatus status_ = AckStatus::delivered;
    bool settled_ = false;
    bool final_ = false;  // the failed status_ was marked final
    std::string reason_;
};

// Creates an AckState (deleted after its callback ran) and returns the creator's hold on it,
// which is settled (it reports nothing of its own). Attach clones to batches, then let this one
// go: the callback runs when the last hold is released.
AckRef make_ack(AckState::Callback cb, AckLevel level = AckLevel::delivered);
// The same, for a callback that tells a final failure from a retryable one (a disk buffer).
AckRef make_outcome_ack(AckState::OutcomeCallback cb);

}  // namespace hbf
