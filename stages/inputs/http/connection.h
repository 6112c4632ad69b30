// One HTTP/1.1 connection of the http input, from accept to close, on one I/O thread (no lock).
//
// Requests are parsed as bytes arrive (pipelined ones included) and answered in order: a request
// refused from its header is answered at once, a valid one's events go into the thread's batch
// and the connection waits for that batch's flush (and, with ack = "delivered", its settling)
// before it reads on. Pipelined requests already read join the same batch behind it (up to
// kMaxPipelined), so one flush answers them all and their replies leave in one write; a reply
// that is ready before the requests ahead of it are answered (a refusal, a bad body) waits
// behind them, and parsing stops there until the flush. Timeouts (read, idle, ack, write,
// linger) are checked by Worker::sweep().
//
// A plain connection's socket is taken from Asio at start() and read and written on readiness
// from its worker's epoll set (Worker::poll_pass(), on_ready()); a TLS connection stays with Asio
// (sniff(), start_read(), start_write()). Replies go out at once either way (write_now()).
#pragma once

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "handler_memory.h"
#include "request_parser.h"
#include "worker.h"

namespace hbf::http {

// Where a connection is in its life. It moves down this list, except between open and waiting.
enum class Phase : uint8_t {
    open,       // reading and answering requests (a TLS connection's handshake included)
    waiting,    // requests' events are in the round's batch: nothing more is read until they are answered
    closing,    // the last reply is queued: it is written, then the connection lingers
    lingering,  // half-closed: what the client still sends is read and dropped for a moment
    closed,
};

class Conn final : public std::enable_shared_from_this<Conn>, private HeaderHandler {
public:
    Conn(Worker& w, tcp::socket s);
    ~Conn();

    size_t slot = 0;  // index in the worker's list

    void start();
    // The round's batch was handed over (code 200), refused (503), or settled: answers the
    // waiting requests up to `id` (the ones before it with `code` too: only a timeout skips any).
    void finish_waiting(uint64_t id, int code, uint32_t events);
    // The timeouts, at `now` (mono_ns).
    void sweep(int64_t now);
    // Shutdown began: an idle connection closes now, a busy one after its reply.
    void on_drain();
    void close_now();
    // Starts what the connection needs next: a write of queued replies, a read for more requests
    // (later, in the worker's answer_round(), while it writes a round's replies).
    void kick();
    // A plain connection's socket is ready (epoll `events`): it writes what waits, reads what came.
    void on_ready(uint32_t events);

private:
    // The request being read or answered. Its strings keep their capacity from one to the next.
    struct Request {
        std::optional<RequestParser> parser;  // set while a request is being read
        RequestInfo info;
        std::string body;
        int refused = 0;           // the status a request refused from its header gets, else 0
        bool keep_alive = true;    // the connection stays open after the reply
        bool after_drain = false;  // begun after shutdown started: refused with 503
        uint64_t id = 0;           // the last request that waits for a flush
    };

    void on_header(RequestParser& p, boost::beast::error_code& ec) override;
    void sniff();
    void plain_on_tls_port();
    int route(RequestParser& p);
    void begin_request();
    void idle_now();
    void process();
    void refuse(const boost::beast::error_code& ec);
    std::string refusal_headers(int code) const;
    bool can_join_round() const;
    void answer(int code, uint32_t events, bool last);
    void all_answered(bool closing);
    void complete();
    void accept_body();
    void bad_body(size_t offset, const char* message);
    void reply(int code, std::string_view body, bool close, std::string_view headers = {});
    void start_read();
    void start_write();
    bool write_now();
    void linger();
    void read_ended();
    void read_ready();
    void want(uint32_t events);
    size_t send_some(boost::system::error_code& ec);

    Worker& w_;
    Server& srv_;
    tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
    boost::beast::flat_buffer rbuf_;
    Request req_;
    std::string out_, wout_, remote_extra_;  // replies queued, replies being written
    // While waiting: requests answered so far (ids up to req_.id wait), the replies of requests
    // parsed behind them, whether parsing stopped until they are answered, whether the last
    // waiting request or a held reply ends the connection.
    uint64_t answered_ = 0;
    std::string held_;
    bool hold_ = false, close_last_ = false, close_held_ = false;
    Phase phase_ = Phase::open;
    bool reading_ = false, writing_ = false;  // an async read, an async write in flight
    HandlerMemory read_mem_, write_mem_;      // for that read and that write: no malloc per request
    int64_t deadline_ = 0, write_deadline_ = 0;
    // A plain connection, taken from Asio at start(): its descriptor in the worker's epoll set,
    // the events asked for there, and the reference that keeps it alive until it closes.
    int fd_ = -1;
    uint32_t interest_ = 0;
    std::shared_ptr<Conn> self_;
};

}  // namespace hbf::http
