#include "ordered.h"
#include "thread_name.h"

#include <algorithm>

namespace hbf {

// No spinning: with two cores, a worker spinning for its turn takes the core the batch before it
// needs to finish.
void Turnstile::enter(uint64_t t) {
    if (turn_.load(std::memory_order_acquire) == t) return;
    std::unique_lock lk(m_);
    waiters_.fetch_add(1);  // seq_cst with leave()'s store and load: one of the two sees the other
    cv_.wait(lk, [&] { return turn_.load() == t; });
    waiters_.fetch_sub(1);
}

void Turnstile::leave(uint64_t t) {
    turn_.store(t + 1);
    if (waiters_.load() > 0) {
        std::lock_guard lk(m_);
        cv_.notify_all();  // a handful of workers at most: the one whose turn it is goes on
    }
}

thread_local OrderedSection* OrderedSection::current_ = nullptr;

OrderedSection::OrderedSection(Turnstile& ts, uint64_t ticket, size_t slot)
    : ts_(ts), ticket_(ticket), slot_(slot), outer_(current_) {
    current_ = this;
}

OrderedSection::~OrderedSection() {
    enter();
    ts_.leave(ticket_);
    current_ = outer_;
}

OrderedPool::OrderedPool(size_t workers, size_t capacity, Work work, std::string name)
    : work_(std::move(work)), name_(std::move(name)), ring_(std::max(capacity, workers)) {
    threads_.reserve(workers);
    for (size_t i = 1; i <= workers; ++i) threads_.emplace_back([this, i] { run(i); });
}

OrderedPool::~OrderedPool() { stop(); }

void OrderedPool::submit(BatchPtr b) {
    std::unique_lock lk(m_);
    room_cv_.wait(lk, [&] { return in_pool_.load() < ring_.size() || stopping_; });
    if (stopping_) {  // a late batch (its stage was aborted): run on the caller's thread, as without a pool
        lk.unlock();
        work_(std::move(b));
        return;
    }
    ring_[(head_ + count_) % ring_.size()] = Item{next_ticket_++, std::move(b)};
    ++count_;
    in_pool_.fetch_add(1);
    lk.unlock();
    work_cv_.notify_one();
}

void OrderedPool::run(size_t slot) {
    if (!name_.empty()) name_this_thread(name_, "/" + std::to_string(slot));
    for (;;) {
        Item it;
        {
            std::unique_lock lk(m_);
            work_cv_.wait(lk, [&] { return count_ > 0 || stopping_; });
            if (count_ == 0) return;
            it = std::move(ring_[head_]);
            head_ = (head_ + 1) % ring_.size();
            --count_;
        }
        {
            OrderedSection s(ts_, it.ticket, slot);
            try {
                work_(std::move(it.b));
            } catch (...) {
                // The work reports its own failures; a batch it let go of unsettled reports failed.
            }
        }
        {
            std::lock_guard lk(m_);
            in_pool_.fetch_sub(1);
        }
        room_cv_.notify_all();  // the producer, or stop()
    }
}

void OrderedPool::stop() {
    {
        std::unique_lock lk(m_);
        room_cv_.wait(lk, [&] { return in_pool_.load() == 0; });
        stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

}  // namespace hbf
