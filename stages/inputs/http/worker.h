// One I/O thread of the http input: its io_context, its connections, and the batch of the
// current event-loop round.
//
// Every request that parsed and validated in a round appends its events to the round's batch and
// waits; one flush() posted behind them hands the batch downstream with one try_emit and answers
// them all, through one AckState for the whole group: 200 once queued or written to a disk buffer
// (ack = "accepted"; a disk buffer's writer settles it after its fdatasync, so the I/O thread
// never waits for the disk) or once every output settled it (ack = "delivered"), 503 when the
// queue was full or an output failed.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <string>
#include <vector>

#include "batch.h"
#include "body.h"
#include "server_impl.h"

namespace hbf::http {

class Conn;

// A request waiting for its batch to be handed over (or, with ack = "delivered", settled).
struct Waiter {
    std::shared_ptr<Conn> conn;
    uint64_t id;
    uint32_t events;
};

struct Worker : std::enable_shared_from_this<Worker> {
    explicit Worker(Server& s);

    void adopt(tcp::socket s);
    void remove(Conn* c);
    // Every 200 ms: timeouts of every connection.
    void sweep();
    // Shutdown: idle connections close now, the others after their reply.
    void drain();

    // The round's batch, for a request to append its events to. Its events are validated and
    // compacted here, so it is marked compact_json (a request whose added fields are not valid
    // UTF-8 clears the mark: the json filter then checks the batch as before).
    Batch& pending_batch() {
        if (!pending) {
            pending = Batch::make();
            pending->compact_json = true;
        }
        return *pending;
    }
    // The request's events are in the round's batch: flush() answers it.
    void wait_for_flush(std::shared_ptr<Conn> c, uint64_t id, uint32_t events);

    Server& srv;
    asio::io_context io;
    asio::steady_timer sweep_timer;
    BodyParsers parsers;
    Inflater inflater;
    std::string inflated, extra;
    BatchPtr pending;
    std::vector<Waiter> waiters;  // the round's
    bool flush_posted = false;
    std::vector<Conn*> conns;
    bool draining = false;
    // While a round's replies are written (answer_round): the connections that will read next.
    bool defer_reads = false;
    std::vector<std::shared_ptr<Conn>> read_later, reading_now;
    // Answers the round's waiting requests with `code` (200 with their events counted).
    void answer_round(const std::vector<Waiter>& round, int code);

    // Plain connections are read and written on readiness from this epoll set, level-triggered,
    // which the io_context waits on as one descriptor (Conn::on_ready()): one pass reads every
    // connection that has bytes, and a read is made only when the socket has bytes. Asio's own
    // sockets try each read at once, which finds nothing right after a reply (EAGAIN: a system
    // call for nothing per request) and queues an operation per read (bench/README.md, twelfth round).
    asio::posix::stream_descriptor poller;
    bool poll_armed = false;  // the io_context waits for the set (until drain() or remove() cancels it)
    bool poll_again = false;  // a read filled its buffer: the socket may hold more, and no new edge will say so
    // A connection enters the set (it keeps itself alive until it closes: Conn::close_now()).
    bool watch(Conn& c, int fd);

private:
    void flush();
    void arm_poll();
    void poll_pass();
};

}  // namespace hbf::http
