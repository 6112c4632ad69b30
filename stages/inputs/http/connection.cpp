#include "connection.h"

#include <boost/asio/bind_allocator.hpp>
#include <charconv>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json_util.h"

namespace hbf::http {

namespace beast = boost::beast;

namespace {
constexpr size_t kReadChunk = 16 << 10;
constexpr int64_t kLingerNs = 2'000'000'000;  // how long a closing connection's late bytes are read and dropped
constexpr uint64_t kMaxPipelined = 64;         // requests of one connection waiting for the same flush

// Whether the header in `head` (up to its blank line) has an Expect field.
bool expects(std::string_view head) {
    constexpr std::string_view kName = "\r\nexpect:";
    for (size_t at = head.find("\r\n"); at != std::string_view::npos && at + kName.size() <= head.size(); at = head.find("\r\n", at + 2))
        if (iequals(head.substr(at, kName.size()), kName)) return true;
    return false;
}

std::string retry_after(const ServerOptions& o) { return fmt::format("Retry-After: {}\r\n", o.retry_after); }
}  // namespace

Conn::Conn(Worker& w, tcp::socket s) : w_(w), srv_(w.srv), sock_(std::move(s)) {
    req_.info.header_values.resize(srv_.opts.headers.size());
    req_.info.header_seen.resize(srv_.opts.headers.size());
    boost::system::error_code ec;
    auto ep = sock_.remote_endpoint(ec);
    if (!ec && !srv_.remote_field_q.empty()) {
        remote_extra_ = "," + srv_.remote_field_q + ":";
        append_json_string(remote_extra_, ep.address().to_string());
    }
    sock_.set_option(tcp::no_delay(true), ec);
    sock_.non_blocking(true, ec);  // write_now() must not block; Asio's own operations are unaffected
    if (srv_.tls) tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, *srv_.tls);
}

Conn::~Conn() {
    if (fd_ >= 0) ::close(fd_);
}

void Conn::start() {
    if (tls_) {
        deadline_ = timeout_clock_ns() + srv_.opts.read_timeout.count();  // the handshake must finish in time
        return sniff();
    }
    idle_now();
    // Plain: the socket leaves Asio for the worker's epoll set (worker.h); reads wait for bytes.
    boost::system::error_code ec;
    int fd = sock_.release(ec);
    if (ec) return start_read();
    fd_ = fd;
    interest_ = EPOLLIN;
    self_ = shared_from_this();
    if (!w_.watch(*this, fd_)) close_now();
}

// Called by the parser once the header is complete: refuse early, or invite the body.
void Conn::on_header(RequestParser& p, beast::error_code& ec) {
    req_.refused = route(p);
    if (req_.refused == 0) {
        if (req_.info.expect_continue && !(p.content_length() && *p.content_length() == 0)) out_ += "HTTP/1.1 100 Continue\r\n\r\n";  // never while waiting: see can_join_round()
        return;
    }
    p.discard = true;
    // A client that waits for 100 Continue will not send the body: answer now and close.
    if (req_.info.expect_continue || req_.refused == 411 || req_.refused == 503) ec = asio::error::operation_aborted;
}

void Conn::finish_waiting(uint64_t id, int code, uint32_t events) {
    if (phase_ != Phase::waiting || id <= answered_ || id > req_.id) return;
    bool closing = false;
    while (answered_ < id) {
        ++answered_;
        const bool last = answered_ == req_.id;
        closing = last && (close_last_ || (code != 200 && code != 504 && w_.draining));
        answer(code, answered_ == id ? events : 0, closing);
    }
    if (answered_ == req_.id) all_answered(closing);
}

// The reply to one waiting request, in order; `close` ends the connection with it.
void Conn::answer(int code, uint32_t events, bool close) {
    srv_.count(code);
    if (code == 200) {
        char body[48] = "{\"accepted\":";
        char* end = std::to_chars(body + 12, body + sizeof body - 1, events).ptr;
        *end++ = '}';
        append_reply(out_, 200, std::string_view(body, size_t(end - body)), close);
    } else if (code == 504) {
        append_reply(out_, 504, R"({"error":"not delivered within ack_timeout; the events may still arrive"})", close);
    } else {
        const char* why = srv_.ctx->stopping()                       ? "shutting down"
                          : code == 503 && !srv_.opts.ack_delivered ? "pipeline full, retry later"
                                                                    : "an output failed to deliver the events";
        append_reply(out_, 503, error_body(why), close, retry_after(srv_.opts));
    }
}

// Every waiting request is answered: the replies held behind them follow, and parsing goes on
// (unless the connection ends: then what was held behind its last reply is never sent).
void Conn::all_answered(bool closing) {
    if (closing || close_held_) phase_ = Phase::closing;
    else phase_ = Phase::open;
    if (!closing) out_ += held_;
    held_.clear();
    hold_ = close_last_ = close_held_ = false;
    if (phase_ == Phase::open) {
        if (req_.parser) deadline_ = timeout_clock_ns() + srv_.opts.read_timeout.count();  // one begun behind the waiting ones
        else idle_now();
    }
    process();
}

void Conn::sweep(int64_t now) {
    if (phase_ == Phase::closed) return;
    if (writing_ && now >= write_deadline_) return close_now();
    if (now < deadline_) return;
    if (phase_ == Phase::lingering) return close_now();
    if (phase_ == Phase::waiting) return finish_waiting(req_.id, 504, 0);  // ack_timeout
    if (req_.parser) {  // a request begun but not finished within read_timeout
        req_.parser.reset();
        reply(408, R"({"error":"request not received within read_timeout"})", true);
        return kick();
    }
    close_now();  // idle
}

void Conn::on_drain() {
    if (!req_.parser && phase_ != Phase::waiting && !writing_ && rbuf_.size() == 0) close_now();
}

void Conn::close_now() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    if (fd_ >= 0) {
        ::close(fd_);  // which takes it out of the epoll set
        fd_ = -1;
        // Freed behind the current handler: the epoll pass that called this may hold its events.
        asio::post(w_.io, [keep = std::move(self_)] {});
    } else {
        boost::system::error_code ec;
        sock_.close(ec);
    }
    w_.remove(this);
}

// TLS: peek at the first byte. A TLS handshake record starts with 0x16; anything else is
// most likely plain HTTP sent to the HTTPS port, which gets a plain 400 saying so.
void Conn::sniff() {
    sock_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
        if (self->phase_ == Phase::closed) return;
        if (ec) return self->close_now();
        unsigned char first = 0;
        boost::system::error_code e;
        size_t n = self->sock_.receive(asio::buffer(&first, 1), tcp::socket::message_peek, e);
        if (e == asio::error::would_block) return self->sniff();
        if (e || n == 0) return self->close_now();
        if (first != 0x16) return self->plain_on_tls_port();
        self->tls_->async_handshake(asio::ssl::stream_base::server, [self](const boost::system::error_code& hec) {
            if (self->phase_ == Phase::closed) return;
            if (hec) {
                self->srv_.tls_failures->add();
                log_limited(self->srv_.rl_tls, self->srv_.ctx->log(), spdlog::level::warn, "TLS handshake failed: {}", hec.message());
                return self->close_now();
            }
            self->idle_now();
            self->start_read();
        });
    });
}

void Conn::plain_on_tls_port() {
    srv_.tls_failures->add();
    log_limited(srv_.rl_plain, srv_.ctx->log(), spdlog::level::warn, "refused a plain-HTTP connection on the TLS port");
    tls_.reset();  // what follows is plain: the reply, then the linger
    reply(400, R"({"error":"this port speaks HTTPS; use https://"})", true);
    kick();
}

// The status a request is refused with from its header alone; 0 = read its body.
int Conn::route(RequestParser& p) {
    const RequestInfo& info = req_.info;
    if (req_.after_drain) return 503;
    bool known = false;
    for (const auto& path : srv_.opts.paths)
        if (info.path == path) known = true;
    if (!known) return 404;
    if (info.method != bhttp::verb::post) return 405;
    if (!srv_.auth_token.empty()) {
        std::string_view a = info.authorization;
        size_t sp = a.find(' ');
        if (sp == std::string_view::npos || !iequals(a.substr(0, sp), srv_.auth_scheme)) return 401;
        std::string_view tok = a.substr(sp + 1);
        while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
        if (!same_secret(tok, srv_.auth_token)) return 401;
    }
    if (encoding_of(info.content_encoding) == Encoding::unsupported) return 415;
    if (!p.content_length() && !p.chunked()) return 411;
    return 0;
}

void Conn::begin_request() {
    req_.parser.emplace(static_cast<HeaderHandler&>(*this), req_.info, req_.body, srv_.opts.headers);
    req_.parser->header_limit(srv_.opts.header_limit);
    req_.parser->body_limit(srv_.opts.max_body);
    req_.parser->eager(true);
    req_.info.reset();
    req_.body.clear();
    req_.refused = 0;
    req_.after_drain = w_.draining;
    if (phase_ != Phase::waiting) deadline_ = timeout_clock_ns() + srv_.opts.read_timeout.count();  // else ack_timeout runs
}

void Conn::idle_now() {
    if (phase_ != Phase::waiting) deadline_ = timeout_clock_ns() + srv_.opts.idle_timeout.count();
}

// While requests wait for the round's flush, a pipelined request behind them is parsed now only
// if its whole header was read and it does not expect a 100 Continue (which would have to go
// out before the replies of the requests ahead of it).
bool Conn::can_join_round() const {
    auto buf = rbuf_.data();
    std::string_view have(static_cast<const char*>(buf.data()), buf.size());
    size_t end = have.find("\r\n\r\n");
    return end != std::string_view::npos && !expects(have.substr(0, end + 2));
}

// Parses what was read, answering each complete request, until more bytes are needed (or, with
// requests waiting, until one cannot join their round).
void Conn::process() {
    while (phase_ == Phase::open || (phase_ == Phase::waiting && !hold_)) {
        if (rbuf_.size() == 0) break;
        if (!req_.parser) {
            if (phase_ == Phase::waiting && !can_join_round()) {
                hold_ = true;
                break;
            }
            begin_request();
        }
        beast::error_code ec;
        size_t n = req_.parser->put(rbuf_.data(), ec);
        rbuf_.consume(n);
        if (ec == bhttp::error::need_more) break;
        if (ec) {
            refuse(ec);
            break;
        }
        if (req_.parser->is_done()) {
            complete();
            continue;
        }
        if (n == 0) break;
    }
    kick();
}

void Conn::kick() {
    if (phase_ == Phase::closed) return;
    if (!out_.empty() && !writing_) start_write();
    if (!reading_ && (phase_ == Phase::open || phase_ == Phase::lingering)) {
        if (w_.defer_reads && fd_ < 0) return w_.read_later.push_back(shared_from_this());
        start_read();
    }
}

// A parse error, or a request refused from its header.
void Conn::refuse(const beast::error_code& ec) {
    int code = req_.refused;
    std::string body;
    if (code == 0) {
        if (ec == bhttp::error::header_limit) code = 431, body = R"({"error":"request header larger than header_limit"})";
        else if (ec == bhttp::error::body_limit) code = 413, body = R"({"error":"body larger than max_body"})";
        else code = 400, body = error_body("malformed HTTP request: " + ec.message());
    } else {
        body = refusal_body(code);
    }
    req_.parser.reset();
    reply(code, body, true, refusal_headers(code));
}

std::string Conn::refusal_headers(int code) const {
    switch (code) {
        case 401: return "WWW-Authenticate: " + srv_.opts.auth_challenge + "\r\n";
        case 405: return "Allow: POST\r\n";
        case 503: return retry_after(srv_.opts);
        default: return "";
    }
}

// The request was read whole: answer a refused one, take the events of the others.
void Conn::complete() {
    req_.keep_alive = req_.parser->keep_alive() && !w_.draining;
    req_.parser.reset();
    if (req_.refused) {
        reply(req_.refused, refusal_body(req_.refused), !req_.keep_alive, refusal_headers(req_.refused));
        idle_now();
        return;
    }
    accept_body();
    if (req_.body.capacity() > (256u << 10)) std::string().swap(req_.body);
    if (phase_ != Phase::waiting) idle_now();
}

void Conn::accept_body() {
    std::string& body = req_.body;
    const RequestInfo& info = req_.info;
    size_t len = body.size();
    body.reserve(len + simdjson::SIMDJSON_PADDING);
    const char* p = body.data();
    size_t cap = body.capacity();
    if (encoding_of(info.content_encoding) == Encoding::gzip) {
        int rc = w_.inflater.inflate(body, srv_.opts.max_body, w_.inflated);
        if (rc == 1) return reply(413, R"({"error":"decompressed body larger than max_body"})", !req_.keep_alive);
        if (rc != 0) return bad_body(0, "corrupt gzip data");
        p = w_.inflated.data();
        len = w_.inflated.size();
        cap = w_.inflated.capacity();
    }
    std::string& extra = w_.extra;
    extra.clear();
    if (!srv_.path_field_q.empty()) {
        extra += ',';
        extra += srv_.path_field_q;
        extra += ':';
        append_json_string(extra, info.path);
    }
    for (size_t i = 0; i < info.header_values.size(); ++i)
        if (info.header_seen[i]) {
            extra += srv_.header_fields[i];
            append_json_string(extra, info.header_values[i]);
        }
    extra += remote_extra_;
    Batch& b = w_.pending_batch();
    BodyResult r = append_events(w_.parsers, p, len, cap, format_of(info.content_type), extra, b);
    if (!r.ok) return bad_body(r.offset, r.message);
    // The path and header values are copied byte for byte: invalid UTF-8 there makes the event
    // invalid JSON, which the json filter must still see (and drop, as it always did).
    if (r.events != 0 && !extra.empty() && !simdjson::validate_utf8(extra.data(), extra.size())) b.compact_json = false;
    srv_.ctx->metrics().bytes_in.add(body.size());
    if (r.events == 0) return reply(200, R"({"accepted":0})", !req_.keep_alive);
    if (phase_ != Phase::waiting) {
        phase_ = Phase::waiting;
        answered_ = req_.id;
        deadline_ = timeout_clock_ns() + srv_.opts.ack_timeout.count();
    }
    close_last_ = !req_.keep_alive;
    if (close_last_ || req_.id - answered_ + 1 >= kMaxPipelined) hold_ = true;  // nothing is parsed behind a closing request
    w_.wait_for_flush(shared_from_this(), ++req_.id, uint32_t(r.events));
}

void Conn::bad_body(size_t offset, const char* message) {
    srv_.rejected_invalid->add();
    log_limited(srv_.rl_invalid, srv_.ctx->log(), spdlog::level::warn, "refused a request to {}: invalid JSON at byte {}: {}", req_.info.path,
                offset, message);
    std::string body = R"({"error":)";
    append_json_string(body, message);
    fmt::format_to(std::back_inserter(body), ",\"offset\":{}}}", offset);
    reply(400, body, !req_.keep_alive);
}

// Queues a reply; with `close`, the connection closes once it is written. Behind requests still
// waiting for their flush, it is held until they are answered, and parsing stops there.
void Conn::reply(int code, std::string_view body, bool close, std::string_view headers) {
    srv_.count(code);
    if (phase_ == Phase::waiting) {
        append_reply(held_, code, body, close, headers);
        hold_ = true;
        close_held_ = close_held_ || close;
        return;
    }
    append_reply(out_, code, body, close, headers);
    if (close && phase_ == Phase::open) phase_ = Phase::closing;
}

void Conn::start_read() {
    if (fd_ >= 0) return want(interest_ | EPOLLIN);
    reading_ = true;
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        self->reading_ = false;
        if (self->phase_ == Phase::closed) return;
        if (ec) return self->read_ended();
        self->rbuf_.commit(n);
        if (self->phase_ == Phase::lingering) {
            self->rbuf_.clear();
            return self->start_read();
        }
        self->process();
    };
    auto h = asio::bind_allocator(HandlerAllocator<char>(read_mem_), std::move(done));
    if (tls_) tls_->async_read_some(rbuf_.prepare(kReadChunk), std::move(h));
    else sock_.async_read_some(rbuf_.prepare(kReadChunk), std::move(h));
}

void Conn::start_write() {
    if (!tls_ && write_now()) return;
    writing_ = true;
    write_deadline_ = timeout_clock_ns() + srv_.opts.read_timeout.count();
    if (fd_ >= 0) return want(interest_ | EPOLLOUT);  // the rest when the socket takes more (on_ready)
    wout_.swap(out_);
    out_.clear();
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
        self->writing_ = false;
        self->wout_.clear();
        if (self->phase_ == Phase::closed) return;
        if (ec) return self->close_now();
        if (!self->out_.empty()) return self->start_write();
        if (self->phase_ == Phase::closing) self->linger();
    };
    auto h = asio::bind_allocator(HandlerAllocator<char>(write_mem_), std::move(done));
    if (tls_) asio::async_write(*tls_, asio::buffer(wout_), std::move(h));
    else asio::async_write(sock_, asio::buffer(wout_), std::move(h));
}

// Plain TCP: a reply goes to the socket at once, and when the send buffer takes all of it (replies
// are small) no completion handler is queued. Through async_write the send was already made at
// once, but its handler ran in a later pass of the event loop (bench/README.md, eleventh round).
// Returns false when bytes remain: they are written asynchronously.
bool Conn::write_now() {
    boost::system::error_code ec;
    size_t n = send_some(ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        close_now();
        return true;
    }
    if (n < out_.size()) {
        out_.erase(0, n);
        return false;
    }
    out_.clear();
    if (phase_ == Phase::closing) linger();
    return true;
}

// Half-close, then read and drop what the client still sends for a moment, so that our last
// reply is not lost to a reset caused by unread data. With TLS the TCP half-close comes
// without a close_notify: every reply carries its length, so nothing can be truncated unseen.
void Conn::linger() {
    phase_ = Phase::lingering;
    boost::system::error_code ec;
    if (fd_ >= 0) {
        if (::shutdown(fd_, SHUT_WR) != 0) return close_now();
    } else {
        sock_.shutdown(tcp::socket::shutdown_send, ec);
    }
    if (ec) return close_now();
    rbuf_.clear();
    deadline_ = timeout_clock_ns() + kLingerNs;
    if (!reading_) start_read();
}

size_t Conn::send_some(boost::system::error_code& ec) {
    if (fd_ < 0) return sock_.write_some(asio::buffer(out_), ec);
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n >= 0) return size_t(n);
    ec = boost::system::error_code(errno, boost::system::system_category());
    return 0;
}

// The events asked for in the epoll set: EPOLLIN while requests may be read (it stays while a
// connection waits for its round, and is dropped only if bytes come then), EPOLLOUT while a
// reply waits for room.
void Conn::want(uint32_t events) {
    if (events == interest_ || fd_ < 0) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = this;
    if (::epoll_ctl(w_.poller.native_handle(), EPOLL_CTL_MOD, fd_, &ev) != 0) return close_now();
    interest_ = events;
}

// EOF or reset: a request cut off mid-way was never queued. Replies still owed are written first
// (a plain connection stops asking for reads meanwhile: the end would be reported on every pass).
void Conn::read_ended() {
    if (!writing_) return close_now();
    if (phase_ == Phase::open) phase_ = Phase::closing;
    want(interest_ & ~uint32_t(EPOLLIN));
}

// A plain connection's socket is ready. A write that finishes (or fails: write_now() then closed
// the connection) stops asking for room.
void Conn::on_ready(uint32_t events) {
    if (phase_ == Phase::closed) return;
    if (writing_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && write_now()) {
        writing_ = false;
        if (phase_ == Phase::closed) return;
        want(interest_ & ~uint32_t(EPOLLOUT));
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_ready();
}

// Bytes (or the end) came. While the connection may not read (waiting for its round, or closing)
// it stops asking, and kick() asks again: a level-triggered set would report the unread bytes on
// every pass. An error or hang-up is reported even unasked: the peer is gone, and it closes.
void Conn::read_ready() {
    if ((interest_ & EPOLLIN) == 0) return close_now();
    if (phase_ != Phase::open && phase_ != Phase::lingering) return want(interest_ & ~uint32_t(EPOLLIN));
    auto buf = rbuf_.prepare(kReadChunk);
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return read_ended();
    if (size_t(n) == buf.size()) w_.poll_again = true;
    rbuf_.commit(size_t(n));
    if (phase_ == Phase::lingering) return rbuf_.clear();
    process();
}

}  // namespace hbf::http
