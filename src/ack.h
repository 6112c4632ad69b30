// Acknowledgement tokens: how an input learns that every output finished with its events.
//
// An input that cares (HTTP with ack = "delivered", Kafka offsets, file checkpoints) makes an
// AckState with a callback and attaches an AckRef to the batch it emits. Every copy of a batch
// (fan-out, route) holds its own AckRef; the state settles when the last ref is released, with
// the worst status any holder reported: delivered < dropped < failed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace hbf {

enum class AckStatus : int { delivered = 0, dropped = 1, failed = 2 };

const char* to_string(AckStatus s);

class AckState {
public:
    using Callback = std::function<void(AckStatus, const std::string& reason)>;
    explicit AckState(Callback cb) : cb_(std::move(cb)) {}

    void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void release(AckStatus status, const std::string* reason = nullptr);

    AckStatus status() const noexcept { return static_cast<AckStatus>(status_.load()); }

private:
    std::atomic<int> refs_{0};
    std::atomic<int> status_{0};
    std::atomic<bool> has_reason_{false};
    std::string reason_;  // written once, by the first holder that fails
    Callback cb_;
};

// A counted hold on an AckState. Move-only; releasing without a status means "delivered".
class AckRef {
public:
    AckRef() = default;
    explicit AckRef(AckState* s) : s_(s) { if (s_) s_->retain(); }
    AckRef(const AckRef&) = delete;
    AckRef& operator=(const AckRef&) = delete;
    AckRef(AckRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)), status_(o.status_) {}
    AckRef& operator=(AckRef&& o) noexcept {
        if (this != &o) { reset(); s_ = std::exchange(o.s_, nullptr); status_ = o.status_; }
        return *this;
    }
    ~AckRef() { reset(); }

    AckRef clone() const { AckRef r(s_); r.status_ = status_; return r; }
    // Records the worst outcome seen by this holder; applied on release.
    void mark(AckStatus s, const std::string* reason = nullptr);
    void reset();
    explicit operator bool() const { return s_ != nullptr; }

private:
    AckState* s_ = nullptr;
    AckStatus status_ = AckStatus::delivered;
    std::string reason_;
};

// Creates an AckState (deleted after its callback ran) and returns the first hold on it.
// Attach clones to batches, then let this one go: the callback runs when the last hold is released.
AckRef make_ack(AckState::Callback cb);

}  // namespace hbf
