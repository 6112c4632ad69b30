#include "worker.h"

#include "connection.h"

#include <atomic>
#include <sys/epoll.h>
#include <system_error>
#include <thread>

namespace hbf::http {

namespace {

constexpr auto kSweepEvery = std::chrono::milliseconds(200);
constexpr int kPollEvents = 64;  // readiness events taken per pass

int make_epoll() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    return fd;
}

// The requests of one batch handed over: answered when its ack settles. With ack = "accepted"
// that is once every copy is queued (memory) or written to a disk buffer, which a disk buffer's
// writer reports from its own thread after the fdatasync covering the batch; with "delivered",
// once every output settled it.
// It holds its worker weakly: the settling may come after the I/O threads stopped (an output
// draining at shutdown), and a handler posted then stays in the worker's io_context until the
// worker is destroyed; a strong reference there kept the worker, its connections and its
// io_context alive for ever (a cycle LeakSanitizer reported after an ack_timeout).
struct AckGroup {
    std::weak_ptr<Worker> worker;
    std::vector<Waiter> waiters;
    bool abandoned = false;  // the batch was never queued; its release must not answer 200
    // Set while flush() runs on the worker's thread: an ack settled there (a memory queue took
    // the batch) is answered by flush() directly, without a post.
    std::atomic<std::thread::id> flushing_on{};
    int settled_in_flush = -1;
};

// What a round's requests hear once their batch's ack settled with `s`.
int round_code(AckStatus s) { return s == AckStatus::failed ? 503 : 200; }

// Keeps each connection alive while `fn` runs on it: fn may close it, which edits the list.
template <typename Fn>
void each_conn(const std::vector<Conn*>& conns, Fn&& fn) {
    std::vector<std::shared_ptr<Conn>> snap;
    snap.reserve(conns.size());
    for (Conn* c : conns) snap.push_back(c->shared_from_this());
    for (auto& c : snap) fn(*c);
}

}  // namespace

Worker::Worker(Server& s) : srv(s), io(1), sweep_timer(io), poller(io, make_epoll()) {}

void Worker::adopt(tcp::socket s) {
    auto c = std::make_shared<Conn>(*this, std::move(s));
    c->slot = conns.size();
    conns.push_back(c.get());
    srv.open_gauge->add(1);
    if (draining) {
        c->close_now();
        return;
    }
    c->start();
}

void Worker::remove(Conn* c) {
    size_t i = c->slot;
    if (i < conns.size() && conns[i] == c) {
        conns[i] = conns.back();
        conns[i]->slot = i;
        conns.pop_back();
    }
    srv.open.fetch_sub(1);
    srv.open_gauge->add(-1);
    if (draining && conns.empty()) poller.cancel();
}

void Worker::sweep() {
    int64_t now = timeout_clock_ns();
    each_conn(conns, [now](Conn& c) { c.sweep(now); });
    if (draining && conns.empty() && waiters.empty()) return;
    sweep_timer.expires_after(kSweepEvery);
    sweep_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->sweep();
    });
}

void Worker::drain() {
    draining = true;
    each_conn(conns, [](Conn& c) { c.on_drain(); });
    if (conns.empty() && waiters.empty()) sweep_timer.cancel();
    if (conns.empty()) poller.cancel();
}

bool Worker::watch(Conn& c, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    if (::epoll_ctl(poller.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) return false;
    arm_poll();
    return true;
}

void Worker::arm_poll() {
    if (poll_armed) return;
    poll_armed = true;
    poller.async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
        self->poll_armed = false;
        if (!ec) self->poll_pass();
    });
}

// One pass over the plain connections that are ready. A connection closed during the pass stays
// alive until a handler posted behind it (Conn::close_now()), so the events of this pass never
// point at a freed one; its descriptor left the set when it was closed.
void Worker::poll_pass() {
    poll_again = false;
    epoll_event ev[kPollEvents];
    int n = ::epoll_wait(poller.native_handle(), ev, kPollEvents, 0);
    for (int i = 0; i < n; ++i) static_cast<Conn*>(ev[i].data.ptr)->on_ready(ev[i].events);
    if (draining && conns.empty()) return;
    if (poll_again || n == kPollEvents) asio::post(io, [self = shared_from_this()] { self->poll_pass(); });
    else arm_poll();
}

void Worker::wait_for_flush(std::shared_ptr<Conn> c, uint64_t id, uint32_t events) {
    waiters.push_back({std::move(c), id, events});
    if (!flush_posted) {
        flush_posted = true;
        asio::post(io, [self = shared_from_this()] { self->flush(); });
    }
}

void Worker::flush() {
    flush_posted = false;
    BatchPtr b = std::move(pending);
    auto group = std::make_shared<AckGroup>();
    group->waiters.swap(waiters);  // the group owns the round's waiters: answering one may add to the next round's
    waiters.reserve(group->waiters.size());
    if (!b || b->empty()) {        // cannot happen: every waiter added events
        for (auto& wt : group->waiters) wt.conn->finish_waiting(wt.id, 200, 0);
        return;
    }
    const size_t n = b->size();
    group->worker = shared_from_this();
    group->flushing_on.store(std::this_thread::get_id());
    AckRef ref = make_ack(
        [group](AckStatus s, const std::string&) {
            if (group->flushing_on.load() == std::this_thread::get_id()) {
                group->settled_in_flush = int(s);
                return;
            }
            std::shared_ptr<Worker> w = group->worker.lock();
            if (!w) return;  // the input is gone: nobody is waiting any more
            asio::post(w->io, [group, s] {
                std::shared_ptr<Worker> w = group->worker.lock();
                if (group->abandoned || !w) return;
                w->answer_round(group->waiters, round_code(s));
            });
        },
        srv.opts.ack_delivered ? AckLevel::delivered : AckLevel::accepted);
    b->acks.push_back(ref.clone());
    const bool queued = srv.emitter->try_emit(b);
    if (queued) {
        srv.ctx->metrics().events_in.add(n);
    } else {
        group->abandoned = true;
        b.reset();
    }
    ref.reset();
    group->flushing_on.store(std::thread::id{});
    if (!queued) answer_round(group->waiters, 503);
    else if (group->settled_in_flush >= 0) answer_round(group->waiters, round_code(AckStatus(group->settled_in_flush)));
}

// The round's replies go out first; TLS connections (read through Asio) read again only in a
// handler posted behind them. Asio tries a read at once before it waits for the socket, and a
// read started right after the reply finds nothing yet (EAGAIN: a syscall for nothing); started
// after the whole round, it often finds the client's next request already there (bench/README.md,
// tenth round). Plain connections read only when their socket has bytes (poll_pass()).
void Worker::answer_round(const std::vector<Waiter>& round, int code) {
    defer_reads = true;
    for (auto& wt : round) wt.conn->finish_waiting(wt.id, code, code == 200 ? wt.events : 0);
    defer_reads = false;
    if (read_later.empty()) return;
    asio::post(io, [self = shared_from_this()] {
        self->reading_now.swap(self->read_later);
        for (auto& c : self->reading_now) c->kick();
        self->reading_now.clear();
    });
}

}  // namespace hbf::http
