// Memory for a connection's asynchronous reads and writes, reused from one request to the next.
//
// asio allocates every operation it queues (the handler and its state) through the handler's
// associated allocator; the default one caches only a couple of blocks per thread, so with 32
// busy connections each request cost two malloc/free pairs (its read and its reply's write,
// bench/README.md). A connection has at most one read and one write in flight: each gets a
// HandlerMemory, and an operation that does not fit (a TLS write's larger state) falls back to
// the heap. One thread uses it (the connection's I/O thread).
#pragma once

#include <cstddef>
#include <new>

namespace hbf::http {

class HandlerMemory {
public:
    HandlerMemory() = default;
    HandlerMemory(const HandlerMemory&) = delete;
    HandlerMemory& operator=(const HandlerMemory&) = delete;

    void* allocate(std::size_t n) {
        if (!used_ && n <= sizeof storage_) {
            used_ = true;
            return storage_;
        }
        return ::operator new(n);
    }
    void deallocate(void* p) {
        if (p == storage_) used_ = false;
        else ::operator delete(p);
    }

private:
    alignas(std::max_align_t) unsigned char storage_[512];
    bool used_ = false;
};

// The allocator asio::bind_allocator attaches to a handler.
template <typename T>
class HandlerAllocator {
public:
    using value_type = T;
    explicit HandlerAllocator(HandlerMemory& m) : m_(&m) {}
    template <typename U>
    HandlerAllocator(const HandlerAllocator<U>& o) noexcept : m_(o.m_) {}
    T* allocate(std::size_t n) { return static_cast<T*>(m_->allocate(sizeof(T) * n)); }
    void deallocate(T* p, std::size_t) { m_->deallocate(p); }
    bool operator==(const HandlerAllocator& o) const noexcept { return m_ == o.m_; }
    bool operator!=(const HandlerAllocator& o) const noexcept { return m_ != o.m_; }

private:
    template <typename>
    friend class HandlerAllocator;
    HandlerMemory* m_;
};

}  // namespace hbf::http
