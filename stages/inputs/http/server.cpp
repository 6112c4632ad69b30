#include "server.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sys/resource.h>
#include <thread>

#include "body.h"
#include "json_util.h"

namespace hbf::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kReadChunk = 16 << 10;
constexpr int64_t kLingerNs = 2'000'000'000;  // how long a closing connection's late bytes are read and dropped
constexpr auto kSweepEvery = std::chrono::milliseconds(200);
constexpr int kCodes[] = {200, 400, 401, 404, 405, 408, 411, 413, 415, 431, 500, 503, 504};
constexpr size_t kNCodes = std::size(kCodes);

size_t code_index(int code) {
    for (size_t i = 0; i < kNCodes; ++i)
        if (kCodes[i] == code) return i;
    return 10;  // 500
}

const char* reason(int code) {
    switch (code) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return "Internal Server Error";
    }
}

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// Constant-time comparison for credentials.
bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char d = 0;
    for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
    return d == 0;
}

}  // namespace

class Conn;
struct Worker;

// What one request's header said, as the parser callbacks saw it. Strings keep their capacity.
struct RequestInfo {
    bhttp::verb method = bhttp::verb::unknown;
    std::string path, authorization, content_type, content_encoding;
    bool expect_continue = false;
    std::vector<std::string> header_values;
    std::vector<char> header_seen;

    void reset() {
        method = bhttp::verb::unknown;
        path.clear();
        authorization.clear();
        content_type.clear();
        content_encoding.clear();
        expect_continue = false;
        for (auto& v : header_values) v.clear();
        std::fill(header_seen.begin(), header_seen.end(), 0);
    }
};

struct Server::Impl {
    explicit Impl(ServerOptions o) : opts(std::move(o)) {
        if (!opts.auth_header.empty()) {
            size_t sp = opts.auth_header.find(' ');
            auth_scheme = opts.auth_header.substr(0, sp);
            auth_token = opts.auth_header.substr(sp + 1);
        }
        for (const auto& h : opts.headers) {
            std::string lower;
            for (char c : h) lower.push_back(char(std::tolower(static_cast<unsigned char>(c))));
            std::string q;
            append_json_string(q, lower);
            header_fields.push_back("," + q + ":");
        }
        if (!opts.path_field.empty()) append_json_string(path_field_q, opts.path_field);
        if (!opts.remote_addr_field.empty()) append_json_string(remote_field_q, opts.remote_addr_field);
    }

    void do_accept();
    void count(int code) { codes[code_index(code)]->add(); }

    ServerOptions opts;
    std::string auth_scheme, auth_token;
    std::vector<std::string> header_fields;  // ,"x-request-id":
    std::string path_field_q, remote_field_q;
    StageContext* ctx = nullptr;
    Emitter* emitter = nullptr;
    std::vector<std::shared_ptr<Worker>> workers;
    std::optional<tcp::acceptor> acceptor;
    std::optional<asio::steady_timer> accept_retry;
    size_t next_worker = 0;
    std::atomic<int64_t> open{0};
    std::atomic<bool> stopped{false};
    Counter* codes[kNCodes] = {};
    std::string too_many;  // the whole reply to a connection over max_connections
    Gauge* open_gauge = nullptr;
    Counter* rejected_invalid = nullptr;
    Counter* tls_failures = nullptr;
    std::optional<asio::ssl::context> tls;  // set when tls is configured; shared by every worker
    RateLimit rl_invalid, rl_accept, rl_tls, rl_plain;
};

// A request waiting for its batch to be handed over (or, with ack = "delivered", settled).
struct Waiter {
    std::shared_ptr<Conn> conn;
    uint64_t id;
    uint32_t events;
};

struct AckGroup {
    std::shared_ptr<Worker> worker;
    std::vector<Waiter> waiters;
    bool abandoned = false;  // the batch was never queued; its release must not answer 200
};

// One I/O thread: its io_context, its connections, and the batch of the current round.
struct Worker : std::enable_shared_from_this<Worker> {
    explicit Worker(Server::Impl& s) : srv(s), io(1), sweep_timer(io) {}

    void adopt(tcp::socket s);
    void remove(Conn* c);
    void sweep();
    void drain();
    void flush();
    // Appends the request's events to the round's batch; the reply comes from flush().
    Batch& pending_batch() {
        if (!pending) pending = Batch::make();
        return *pending;
    }
    void wait_for_flush(std::shared_ptr<Conn> c, uint64_t id, uint32_t events) {
        waiters.push_back({std::move(c), id, events});
        if (!flush_posted) {
            flush_posted = true;
            asio::post(io, [self = shared_from_this()] { self->flush(); });
        }
    }

    Server::Impl& srv;
    asio::io_context io;
    asio::steady_timer sweep_timer;
    BodyParsers parsers;
    Inflater inflater;
    std::string inflated, extra;
    BatchPtr pending;
    std::vector<Waiter> waiters, flushing;
    bool flush_posted = false;
    std::vector<Conn*> conns;
    bool draining = false;
};

class ReqParser final : public bhttp::basic_parser<true> {
public:
    ReqParser(Conn& c, RequestInfo& info, std::string& body, const std::vector<std::string>& headers)
        : conn_(c), info_(info), body_(body), headers_(headers) {}
    bool discard = false;  // the request is refused already: its body is read and dropped

private:
    void on_request_impl(bhttp::verb m, beast::string_view, beast::string_view target, int, beast::error_code&) override {
        info_.method = m;
        std::string_view t = sv(target);
        if (size_t q = t.find('?'); q != std::string_view::npos) t = t.substr(0, q);
        info_.path.assign(t);
    }
    void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
    void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value, beast::error_code&) override {
        switch (f) {
            case bhttp::field::authorization: info_.authorization.assign(sv(value)); break;
            case bhttp::field::content_type: info_.content_type.assign(sv(value)); break;
            case bhttp::field::content_encoding: info_.content_encoding.assign(sv(value)); break;
            case bhttp::field::expect: info_.expect_continue = iequals(sv(value), "100-continue"); break;
            default: break;
        }
        for (size_t i = 0; i < headers_.size(); ++i)
            if (iequals(sv(name), headers_[i])) {
                info_.header_values[i].assign(sv(value));
                info_.header_seen[i] = 1;
            }
    }
    void on_header_impl(beast::error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>& len, beast::error_code&) override {
        body_.clear();
        if (len && !discard) body_.reserve(*len + simdjson::SIMDJSON_PADDING);
    }
    std::size_t on_body_impl(beast::string_view s, beast::error_code&) override {
        if (!discard) body_.append(s.data(), s.size());
        return s.size();
    }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view s, beast::error_code&) override {
        if (!discard) body_.append(s.data(), s.size());
        return s.size();
    }
    void on_finish_impl(beast::error_code&) override {}

    Conn& conn_;
    RequestInfo& info_;
    std::string& body_;
    const std::vector<std::string>& headers_;
};

class Conn : public std::enable_shared_from_this<Conn> {
public:
    Conn(Worker& w, tcp::socket s) : w_(w), srv_(w.srv), sock_(std::move(s)) {
        info_.header_values.resize(srv_.opts.headers.size());
        info_.header_seen.resize(srv_.opts.headers.size());
        boost::system::error_code ec;
        auto ep = sock_.remote_endpoint(ec);
        if (!ec && !srv_.remote_field_q.empty()) {
            remote_extra_ = "," + srv_.remote_field_q + ":";
            append_json_string(remote_extra_, ep.address().to_string());
        }
        sock_.set_option(tcp::no_delay(true), ec);
        if (srv_.tls) tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, *srv_.tls);
    }

    size_t slot = 0;  // index in the worker's list

    void start() {
        if (tls_) {
            deadline_ = mono_ns() + srv_.opts.read_timeout.count();  // the handshake must finish in time
            return sniff();
        }
        deadline_ = mono_ns() + srv_.opts.idle_timeout.count();
        start_read();
    }

    // Called by the parser once the header is complete: refuse early, or invite the body.
    void on_header(ReqParser& p, beast::error_code& ec) {
        early_ = route(p);
        if (early_ == 0) {
            if (info_.expect_continue && !(p.content_length() && *p.content_length() == 0)) out_ += "HTTP/1.1 100 Continue\r\n\r\n";
            return;
        }
        p.discard = true;
        // A client that waits for 100 Continue will not send the body: answer now and close.
        if (info_.expect_continue || early_ == 411 || early_ == 503) ec = asio::error::operation_aborted;
    }

    // The round's batch was handed over (code 200), refused (503), or settled.
    void finish_waiting(uint64_t id, int code, uint32_t events) {
        if (closed_ || !waiting_ || id != req_id_) return;
        waiting_ = false;
        if (code == 200) {
            char body[48];
            auto r = fmt::format_to_n(body, sizeof body, "{{\"accepted\":{}}}", events);
            reply(200, std::string_view(body, r.size), !keep_alive_);
        } else if (code == 504) {
            reply(504, R"({"error":"not delivered within ack_timeout; the events may still arrive"})", !keep_alive_);
        } else if (srv_.ctx->stopping()) {
            busy("shutting down");
        } else {
            busy(code == 503 && !srv_.opts.ack_delivered ? "pipeline full, retry later" : "an output failed to deliver the events");
        }
        idle_now();
        process();
    }

    void sweep(int64_t now) {
        if (closed_) return;
        if (writing_ && now >= write_deadline_) return close_now();
        if (now < deadline_) return;
        if (lingering_) return close_now();
        if (waiting_) {  // ack_timeout
            finish_waiting(req_id_, 504, 0);
            return;
        }
        if (parser_) {  // a request begun but not finished within read_timeout
            parser_.reset();
            reply(408, R"({"error":"request not received within read_timeout"})", true);
            kick();
            return;
        }
        close_now();  // idle
    }

    void on_drain() {
        if (!parser_ && !waiting_ && !writing_ && rbuf_.size() == 0) close_now();
    }

    void close_now() {
        if (closed_) return;
        closed_ = true;
        boost::system::error_code ec;
        sock_.close(ec);
        w_.remove(this);
    }

private:
    // TLS: peek at the first byte. A TLS handshake record starts with 0x16; anything else is
    // most likely plain HTTP sent to the HTTPS port, which gets a plain 400 saying so.
    void sniff() {
        sock_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
            if (self->closed_) return;
            if (ec) return self->close_now();
            unsigned char first = 0;
            boost::system::error_code e;
            size_t n = self->sock_.receive(asio::buffer(&first, 1), tcp::socket::message_peek, e);
            if (e == asio::error::would_block) return self->sniff();
            if (e || n == 0) return self->close_now();
            if (first != 0x16) return self->plain_on_tls_port();
            self->tls_->async_handshake(asio::ssl::stream_base::server, [self](const boost::system::error_code& hec) {
                if (self->closed_) return;
                if (hec) {
                    self->srv_.tls_failures->add();
                    log_limited(self->srv_.rl_tls, self->srv_.ctx->log(), spdlog::level::warn, "TLS handshake failed: {}",
                                hec.message());
                    return self->close_now();
                }
                self->idle_now();
                self->start_read();
            });
        });
    }

    void plain_on_tls_port() {
        srv_.tls_failures->add();
        log_limited(srv_.rl_plain, srv_.ctx->log(), spdlog::level::warn, "refused a plain-HTTP connection on the TLS port");
        tls_.reset();  // what follows is plain: the reply, then the linger
        reply(400, R"({"error":"this port speaks HTTPS; use https://"})", true);
        kick();
    }

    int route(ReqParser& p) {
        if (after_drain_) return 503;
        bool known = false;
        for (const auto& path : srv_.opts.paths)
            if (info_.path == path) known = true;
        if (!known) return 404;
        if (info_.method != bhttp::verb::post) return 405;
        if (!srv_.auth_token.empty()) {
            std::string_view a = info_.authorization;
            size_t sp = a.find(' ');
            if (sp == std::string_view::npos || !iequals(a.substr(0, sp), srv_.auth_scheme)) return 401;
            std::string_view tok = a.substr(sp + 1);
            while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
            if (!same_secret(tok, srv_.auth_token)) return 401;
        }
        if (encoding_of(info_.content_encoding) == Encoding::unsupported) return 415;
        if (!p.content_length() && !p.chunked()) return 411;
        return 0;
    }

    void begin_request() {
        parser_.emplace(*this, info_, body_, srv_.opts.headers);
        parser_->header_limit(srv_.opts.header_limit);
        parser_->body_limit(srv_.opts.max_body);
        parser_->eager(true);
        info_.reset();
        body_.clear();
        early_ = 0;
        after_drain_ = w_.draining;
        deadline_ = mono_ns() + srv_.opts.read_timeout.count();
    }

    void idle_now() { deadline_ = mono_ns() + srv_.opts.idle_timeout.count(); }

    void process() {
        while (!closed_ && !waiting_ && !close_after_write_) {
            if (rbuf_.size() == 0) break;
            if (!parser_) begin_request();
            beast::error_code ec;
            size_t n = parser_->put(rbuf_.data(), ec);
            rbuf_.consume(n);
            if (ec == bhttp::error::need_more) break;
            if (ec) {
                refuse(ec);
                break;
            }
            if (parser_->is_done()) {
                complete();
                continue;
            }
            if (n == 0) break;
        }
        kick();
    }

    // Starts what the connection needs next: a write of queued replies, a read for more requests.
    void kick() {
        if (closed_) return;
        if (!out_.empty() && !writing_) start_write();
        if (!reading_ && !waiting_ && (!close_after_write_ || lingering_)) start_read();
    }

    // A parse error, or a request refused from its header.
    void refuse(const beast::error_code& ec) {
        int code = early_;
        std::string body;
        if (code == 0) {
            if (ec == bhttp::error::header_limit) code = 431, body = R"({"error":"request header larger than header_limit"})";
            else if (ec == bhttp::error::body_limit) code = 413, body = R"({"error":"body larger than max_body"})";
            else {
                code = 400;
                body = R"({"error":)";
                append_json_string(body, "malformed HTTP request: " + ec.message());
                body += '}';
            }
        } else {
            body = early_body(code);
        }
        parser_.reset();
        reply(code, body, true, code == 401 ? challenge() : code == 405 ? "Allow: POST\r\n" : code == 503 ? retry_after() : "");
    }

    std::string early_body(int code) const {
        switch (code) {
            case 404: return R"({"error":"unknown path"})";
            case 405: return R"({"error":"method not allowed; use POST"})";
            case 401: return R"({"error":"missing or bad credentials"})";
            case 411: return R"({"error":"Content-Length or chunked Transfer-Encoding required"})";
            case 415: return R"({"error":"unsupported Content-Encoding; use gzip or identity"})";
            case 503: return R"({"error":"shutting down"})";
            default: return R"({"error":"refused"})";
        }
    }
    std::string challenge() const { return "WWW-Authenticate: " + srv_.opts.auth_challenge + "\r\n"; }
    std::string retry_after() const { return fmt::format("Retry-After: {}\r\n", srv_.opts.retry_after); }

    void busy(std::string_view why) {
        std::string body = R"({"error":)";
        append_json_string(body, why);
        body += '}';
        reply(503, body, !keep_alive_ || w_.draining, retry_after());
    }

    void complete() {
        keep_alive_ = parser_->keep_alive() && !w_.draining;
        parser_.reset();
        if (early_) {
            reply(early_, early_body(early_), !keep_alive_,
                  early_ == 401 ? challenge() : early_ == 405 ? "Allow: POST\r\n" : early_ == 503 ? retry_after() : "");
            idle_now();
            return;
        }
        accept_body();
        if (body_.capacity() > (256u << 10)) std::string().swap(body_);
        if (!waiting_) idle_now();
    }

    void accept_body() {
        const char* p = body_.data();
        size_t len = body_.size();
        body_.reserve(len + simdjson::SIMDJSON_PADDING);
        p = body_.data();
        size_t cap = body_.capacity();
        if (encoding_of(info_.content_encoding) == Encoding::gzip) {
            int rc = w_.inflater.inflate(body_, srv_.opts.max_body, w_.inflated);
            if (rc == 1) return reply(413, R"({"error":"decompressed body larger than max_body"})", !keep_alive_);
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
            append_json_string(extra, info_.path);
        }
        for (size_t i = 0; i < info_.header_values.size(); ++i)
            if (info_.header_seen[i]) {
                extra += srv_.header_fields[i];
                append_json_string(extra, info_.header_values[i]);
            }
        extra += remote_extra_;
        Batch& b = w_.pending_batch();
        BodyResult r = append_events(w_.parsers, p, len, cap, format_of(info_.content_type), extra, b);
        if (!r.ok) return bad_body(r.offset, r.message);
        srv_.ctx->metrics().bytes_in.add(body_.size());
        if (r.events == 0) return reply(200, R"({"accepted":0})", !keep_alive_);
        waiting_ = true;
        deadline_ = mono_ns() + srv_.opts.ack_timeout.count();
        w_.wait_for_flush(shared_from_this(), ++req_id_, uint32_t(r.events));
    }

    void bad_body(size_t offset, const char* message) {
        srv_.rejected_invalid->add();
        log_limited(srv_.rl_invalid, srv_.ctx->log(), spdlog::level::warn, "refused a request to {}: invalid JSON at byte {}: {}",
                    info_.path, offset, message);
        std::string body = R"({"error":)";
        append_json_string(body, message);
        fmt::format_to(std::back_inserter(body), ",\"offset\":{}}}", offset);
        reply(400, body, !keep_alive_);
    }

    void reply(int code, std::string_view body, bool close, std::string_view headers = {}) {
        srv_.count(code);
        fmt::format_to(std::back_inserter(out_), "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}{}\r\n{}",
                       code, reason(code), body.size(), headers, close ? "Connection: close\r\n" : "", body);
        if (close) close_after_write_ = true;
    }

    void start_read() {
        reading_ = true;
        auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
            self->reading_ = false;
            if (self->closed_) return;
            if (ec) {
                // EOF or reset: a request cut off mid-way was never queued. Replies still owed are written first.
                if (self->writing_) self->close_after_write_ = true;
                else self->close_now();
                return;
            }
            self->rbuf_.commit(n);
            if (self->lingering_) {
                self->rbuf_.clear();
                self->start_read();
                return;
            }
            self->process();
        };
        if (tls_) tls_->async_read_some(rbuf_.prepare(kReadChunk), std::move(done));
        else sock_.async_read_some(rbuf_.prepare(kReadChunk), std::move(done));
    }

    void start_write() {
        writing_ = true;
        wout_.swap(out_);
        out_.clear();
        write_deadline_ = mono_ns() + srv_.opts.read_timeout.count();
        auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
            self->writing_ = false;
            self->wout_.clear();
            if (self->closed_) return;
            if (ec) return self->close_now();
            if (!self->out_.empty()) return self->start_write();
            if (self->close_after_write_) return self->linger();
        };
        if (tls_) asio::async_write(*tls_, asio::buffer(wout_), std::move(done));
        else asio::async_write(sock_, asio::buffer(wout_), std::move(done));
    }

    // Half-close, then read and drop what the client still sends for a moment, so that our last
    // reply is not lost to a reset caused by unread data. With TLS the TCP half-close comes
    // without a close_notify: every reply carries its length, so nothing can be truncated unseen.
    void linger() {
        if (lingering_) return;
        lingering_ = true;
        boost::system::error_code ec;
        sock_.shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return close_now();
        rbuf_.clear();
        deadline_ = mono_ns() + kLingerNs;
        if (!reading_) start_read();
    }

    Worker& w_;
    Server::Impl& srv_;
    tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
    beast::flat_buffer rbuf_;
    std::optional<ReqParser> parser_;
    RequestInfo info_;
    std::string body_, out_, wout_, remote_extra_;
    int early_ = 0;
    uint64_t req_id_ = 0;
    int64_t deadline_ = 0, write_deadline_ = 0;
    bool reading_ = false, writing_ = false, waiting_ = false, keep_alive_ = true;
    bool close_after_write_ = false, lingering_ = false, closed_ = false, after_drain_ = false;
};

void ReqParser::on_header_impl(beast::error_code& ec) { conn_.on_header(*this, ec); }

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
}

void Worker::sweep() {
    int64_t now = mono_ns();
    // close_now() edits the list: walk a snapshot of the pointers, keeping each alive meanwhile.
    std::vector<std::shared_ptr<Conn>> snap;
    snap.reserve(conns.size());
    for (Conn* c : conns) snap.push_back(c->shared_from_this());
    for (auto& c : snap) c->sweep(now);
    if (draining && conns.empty() && waiters.empty()) return;
    sweep_timer.expires_after(kSweepEvery);
    sweep_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->sweep();
    });
}

void Worker::drain() {
    draining = true;
    std::vector<std::shared_ptr<Conn>> snap;
    for (Conn* c : conns) snap.push_back(c->shared_from_this());
    for (auto& c : snap) c->on_drain();
    if (conns.empty() && waiters.empty()) sweep_timer.cancel();
}

void Worker::flush() {
    flush_posted = false;
    flushing.swap(waiters);
    BatchPtr b = std::move(pending);
    if (!b || b->empty()) {  // cannot happen: every waiter added events
        for (auto& wt : flushing) wt.conn->finish_waiting(wt.id, 200, 0);
        flushing.clear();
        return;
    }
    const size_t n = b->size();
    std::shared_ptr<AckGroup> group;
    AckRef ref;
    if (srv.opts.ack_delivered) {
        group = std::make_shared<AckGroup>();
        group->worker = shared_from_this();
        group->waiters = flushing;
        ref = make_ack([group](AckStatus s, const std::string&) {
            asio::post(group->worker->io, [group, s] {
                if (group->abandoned) return;
                for (auto& wt : group->waiters) wt.conn->finish_waiting(wt.id, s == AckStatus::failed ? 503 : 200, wt.events);
            });
        });
        b->acks.push_back(ref.clone());
    }
    const bool queued = srv.emitter->try_emit(b);
    if (queued) {
        srv.ctx->metrics().events_in.add(n);
    } else {
        if (group) group->abandoned = true;
        b.reset();
    }
    ref.reset();
    if (!queued) {
        for (auto& wt : flushing) wt.conn->finish_waiting(wt.id, 503, 0);
    } else if (!srv.opts.ack_delivered) {
        for (auto& wt : flushing) wt.conn->finish_waiting(wt.id, 200, wt.events);
    }
    flushing.clear();
}

void Server::Impl::do_accept() {
    if (stopped.load()) return;
    Worker& target = *workers[next_worker % workers.size()];
    acceptor->async_accept(target.io, [this, &target](const boost::system::error_code& ec, tcp::socket s) {
        if (ec) {
            if (ec == asio::error::operation_aborted || stopped.load()) return;
            // Out of file descriptors and the like: say so, and try again shortly rather than spin.
            log_limited(rl_accept, ctx->log(), spdlog::level::err, "accept failed: {}", ec.message());
            accept_retry->expires_after(std::chrono::milliseconds(100));
            accept_retry->async_wait([this](const boost::system::error_code& e) {
                if (!e) do_accept();
            });
            return;
        }
        ++next_worker;
        if (size_t(open.load()) >= opts.max_connections) {
            boost::system::error_code e;
            s.non_blocking(true, e);
            s.write_some(asio::buffer(too_many), e);
            s.close(e);
            count(503);
            do_accept();
            return;
        }
        open.fetch_add(1);
        asio::post(target.io, [&target, sock = std::move(s)]() mutable { target.adopt(std::move(sock)); });
        do_accept();
    });
}

namespace {

void readable(const char* what, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error(fmt::format("tls.{}: cannot read {}: {}", what, path, std::strerror(errno)));
    std::fclose(f);
}

// The certificate chain and key, checked against each other now rather than at the first client.
void load_tls(Server::Impl& s) {
    const std::string& cert = s.opts.tls_cert;
    const std::string& key = s.opts.tls_key;
    readable("cert", cert);
    readable("key", key);
    s.tls.emplace(asio::ssl::context::tls_server);
    s.tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                       asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    boost::system::error_code ec;
    // The key first: loaded after the certificate, a mismatched key would be reported as unreadable.
    s.tls->use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.key: {} is not a PEM private key: {}", key, ec.message()));
    s.tls->use_certificate_chain_file(cert, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.cert: {} is not a PEM certificate (chain): {}", cert, ec.message()));
    if (SSL_CTX_check_private_key(s.tls->native_handle()) != 1)
        throw std::runtime_error(fmt::format("tls.key: {} does not match the certificate in {}", key, cert));
}

}  // namespace

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}

Server::~Server() = default;

void Server::listen(StageContext& ctx) {
    Impl& s = *impl_;
    // A failed attempt (a reload retries once the old version freed the port) leaves nothing behind.
    s.accept_retry.reset();
    s.acceptor.reset();
    s.workers.clear();
    s.ctx = &ctx;
    auto& reg = MetricsRegistry::global();
    for (size_t i = 0; i < kNCodes; ++i)
        s.codes[i] = &reg.counter("hbf_http_requests_total", "HTTP requests answered, by status code.",
                                  {{"stage", ctx.name()}, {"code", std::to_string(kCodes[i])}});
    s.open_gauge = &reg.gauge("hbf_http_connections_open", "Open HTTP connections.", {{"stage", ctx.name()}});
    s.rejected_invalid = &ctx.metrics().dropped("invalid_json_request");
    s.tls_failures = &reg.counter("hbf_http_tls_failures_total",
                                  "Connections to the TLS port closed before a request: failed handshakes, plain HTTP.",
                                  {{"stage", ctx.name()}});
    if (!s.opts.tls_cert.empty()) load_tls(s);
    std::string_view full = R"({"error":"too many connections"})";
    s.too_many = fmt::format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                             "Retry-After: {}\r\nConnection: close\r\n\r\n{}", full.size(), s.opts.retry_after, full);
    // Each connection is a file descriptor: make room for max_connections if the soft limit is lower.
    rlimit rl{};
    const rlim_t want = rlim_t(s.opts.max_connections) + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = std::min(want, rl.rlim_max);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < std::max(1, s.opts.threads); ++i) s.workers.push_back(std::make_shared<Worker>(s));
    asio::io_context& io0 = s.workers[0]->io;
    const std::string where = fmt::format("{}:{}", s.opts.host, s.opts.port);
    boost::system::error_code ec;
    tcp::resolver resolver(io0);
    auto results = resolver.resolve(s.opts.host, std::to_string(s.opts.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec ? ec.message() : "no address"));
    tcp::endpoint ep = results.begin()->endpoint();
    s.acceptor.emplace(io0);
    s.accept_retry.emplace(io0);
    if (!s.acceptor->open(ep.protocol(), ec)) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor->bind(ep, ec);
    if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec.message()));
    ctx.log().info("listening on {}{} (paths {}, ack {}, {} I/O thread{})", where, s.tls ? " with TLS" : "", fmt::join(s.opts.paths, ", "),
                   s.opts.ack_delivered ? "delivered" : "accepted", s.workers.size(), s.workers.size() == 1 ? "" : "s");
}

void Server::run(Emitter& out) {
    Impl& s = *impl_;
    s.emitter = &out;
    for (auto& w : s.workers) asio::post(w->io, [w] { w->sweep(); });
    asio::post(s.workers[0]->io, [&s] { s.do_accept(); });
    std::vector<std::thread> extra;
    for (size_t i = 1; i < s.workers.size(); ++i) extra.emplace_back([w = s.workers[i]] { w->io.run(); });
    s.workers[0]->io.run();
    for (auto& t : extra) t.join();
    s.ctx->log().info("stopped: every connection closed");
}

void Server::stop() {
    Impl& s = *impl_;
    if (s.stopped.exchange(true)) return;
    if (s.workers.empty()) return;
    asio::post(s.workers[0]->io, [&s] {
        boost::system::error_code ec;
        if (s.acceptor) s.acceptor->close(ec);
        if (s.accept_retry) s.accept_retry->cancel();
    });
    for (auto& w : s.workers) asio::post(w->io, [w] { w->drain(); });
}

}  // namespace hbf::http
