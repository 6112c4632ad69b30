#include "server.h"

#include <arpa/inet.h>
#include <boost/asio.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>

#include "forward/handshake.h"
#include "net/accept_loop.h"
#include "net/fd_limit.h"
#include "net/server_tls.h"

namespace hbf::forward {

namespace asio = boost::asio;
using gproto = asio::generic::stream_protocol;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kBatchBytes = 32 << 20;          // hand a round's batch over early past this size
constexpr int64_t kHandshakeNs = 10'000'000'000;  // TLS and PING must be done within this
constexpr int64_t kDrainNs = 5'000'000'000;       // at stop, how long outstanding acks are awaited
constexpr auto kSweepEvery = std::chrono::milliseconds(200);

bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char d = 0;
    for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
    return d == 0;
}

std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return fmt::format("{}:{}", host, ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
    }
    return "unix socket";
}

}  // namespace

class Conn;

struct Waiter {
    std::weak_ptr<Conn> conn;
    std::string chunk;
};

struct Server final : net::Server, std::enable_shared_from_this<Server> {
    explicit Server(ServerOptions o)
        : opts(std::move(o)), decoder(opts.decoder), sweep_timer(io),
          accepting(io, {[this] { return stopped.load(); }, [this] { return conns.size(); },
                         [this](gproto::socket s) { adopt(std::move(s)); }}) {}

    void listen(StageContext& ctx) override;
    void run(Emitter& out) override;
    void stop() override;

    void adopt(gproto::socket s);
    void remove(Conn* c);
    void flush();
    void post_flush() {
        if (flush_posted || ((!pending || pending->empty()) && waiters.empty())) return;
        flush_posted = true;
        asio::post(io, [self = shared_from_this()] { self->flush(); });
    }
    void settle(std::vector<Waiter>& group, AckStatus s, const std::string& why);
    void sweep();
    void drain();
    Batch& pending_batch() {
        if (!pending) pending = Batch::make();
        return *pending;
    }

    ServerOptions opts;
    asio::io_context io{1};
    ForwardDecoder decoder;
    asio::steady_timer sweep_timer;
    net::AcceptLoop<gproto> accepting;
    std::optional<asio::basic_socket_acceptor<gproto>> acceptor;
    std::optional<asio::ssl::context> tls;
    StageContext* ctx = nullptr;
    Emitter* emitter = nullptr;
    BatchPtr pending;
    std::vector<Waiter> waiters;
    bool flush_posted = false;
    std::vector<Conn*> conns;
    std::atomic<bool> stopped{false};
    bool draining = false;
    int64_t drain_deadline = 0;
    Gauge* open_gauge = nullptr;
    Counter *bad_frames = nullptr, *acks_sent = nullptr, *auth_failures = nullptr, *refused = nullptr, *tls_failures = nullptr,
            *nacked = nullptr;
    RateLimit rl_bad, rl_auth, rl_tls, rl_nack;
};

class Conn : public std::enable_shared_from_this<Conn> {
public:
    Conn(Server& s, gproto::socket sock) : srv_(s), sock_(std::move(sock)), scanner_(s.opts.max_frame) {
        peer_ = peer_of(sock_.native_handle());
        int one = 1;
        ::setsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // acks go out at once; fails harmlessly on unix sockets
        if (srv_.tls) tls_ = std::make_unique<asio::ssl::stream<gproto::socket&>>(sock_, *srv_.tls);
        authed_ = srv_.opts.shared_key.empty();
    }

    size_t slot = 0;

    void start() {
        deadline_ = mono_ns() + kHandshakeNs;
        if (!tls_) return begin();
        tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const boost::system::error_code& ec) {
            if (self->closed_) return;
            if (ec) {
                self->srv_.tls_failures->add();
                log_limited(self->srv_.rl_tls, self->srv_.ctx->log(), spdlog::level::warn, "TLS handshake with {} failed: {}",
                            self->peer_, ec.message());
                return self->close_now();
            }
            self->begin();
        });
    }

    void acked(const std::string& chunk) {
        --outstanding_;
        if (closed_) return;
        send(make_ack_reply(chunk));
        srv_.acks_sent->add();
    }

    void nacked() {
        --outstanding_;
        close_now();
    }

    void sweep(int64_t now) {
        if (closed_) return;
        if (!authed_ && now >= deadline_) {
            log_limited(srv_.rl_auth, srv_.ctx->log(), spdlog::level::warn, "closing {}: no handshake within 10s", peer_);
            srv_.auth_failures->add();
            return close_now();
        }
        if (srv_.draining && (outstanding_ == 0 || now >= srv_.drain_deadline) && !writing_) close_now();
    }

    void on_drain() {
        if (outstanding_ == 0 && !writing_) close_now();
    }

    void close_now() {
        if (closed_) return;
        closed_ = true;
        boost::system::error_code ec;
        sock_.close(ec);
        srv_.remove(this);
    }

private:
    void begin() {
        if (!srv_.opts.shared_key.empty()) {
            nonce_ = random_bytes(16);
            if (!srv_.opts.users.empty()) auth_salt_ = random_bytes(16);
            send(make_helo(nonce_, auth_salt_));
        }
        start_read();
    }

    void start_read() {
        if (rbuf_.size() - filled_ < kReadChunk / 2) rbuf_.resize(filled_ + kReadChunk);
        auto buf = asio::buffer(rbuf_.data() + filled_, rbuf_.size() - filled_);
        auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
            if (self->closed_) return;
            if (ec) {
                // EOF or reset: an unfinished frame is dropped; replies still owed are written first.
                if (self->writing_ || self->outstanding_ > 0) self->close_after_write_ = true;
                else self->close_now();
                return;
            }
            if (self->srv_.draining) return;  // stop taking frames; the sweep closes us once acks are out
            self->filled_ += n;
            self->srv_.ctx->metrics().bytes_in.add(n);
            self->process();
            if (!self->closed_ && !self->close_after_write_) self->start_read();
        };
        if (tls_) tls_->async_read_some(buf, std::move(done));
        else sock_.async_read_some(buf, std::move(done));
    }

    void process() {
        size_t start = 0;
        while (!closed_ && !close_after_write_) {
            Scan s = scanner_.scan(rbuf_.data() + start, filled_ - start);
            if (s == Scan::incomplete) break;
            if (s == Scan::error) {
                bad_frame(scanner_.error(), start + scanner_.error_offset());
                break;
            }
            const size_t n = scanner_.size();
            on_frame(rbuf_.data() + start, n);
            start += n;
            scanner_.reset();
        }
        if (start > 0) {
            std::memmove(rbuf_.data(), rbuf_.data() + start, filled_ - start);
            filled_ -= start;
            stream_off_ += start;
        }
        if (filled_ == 0 && rbuf_.size() > 4 * kReadChunk) {  // a big frame passed: give the memory back
            rbuf_.clear();
            rbuf_.shrink_to_fit();
        }
        srv_.post_flush();
    }

    void on_frame(const char* p, size_t n) {
        if (!authed_) return on_ping(p);
        Batch& b = srv_.pending_batch();
        const Frame& f = srv_.decoder.decode(p, n, b);
        if (f.kind == Frame::Kind::error) return bad_frame(f.error, 0);
        if (f.kind == Frame::Kind::heartbeat) return;
        if (f.has_chunk) {
            srv_.waiters.push_back({weak_from_this(), f.chunk});
            ++outstanding_;
        }
        if (b.size() >= srv_.ctx->batch_events || b.bytes() >= kBatchBytes) srv_.flush();
    }

    void on_ping(const char* p) {
        Ping ping;
        if (!parse_ping(p, ping)) return bad_frame("expected the handshake's PING (shared_key is set)", 0);
        const auto& o = srv_.opts;
        Pong pong;
        pong.hostname = o.self_hostname;
        pong.ok = same_secret(ping.digest, sha512_hex({ping.salt, ping.hostname, nonce_, o.shared_key}));
        if (!pong.ok) pong.reason = "shared_key mismatch";
        if (pong.ok && !o.users.empty()) {
            bool user_ok = false;
            for (const auto& [user, pass] : o.users)
                if (user == ping.username) user_ok = same_secret(ping.password_digest, sha512_hex({auth_salt_, user, pass}));
            if (!user_ok) pong.ok = false, pong.reason = "username/password mismatch";
        }
        if (pong.ok) {
            pong.digest = sha512_hex({ping.salt, o.self_hostname, nonce_, o.shared_key});
            authed_ = true;
        } else {
            srv_.auth_failures->add();
            log_limited(srv_.rl_auth, srv_.ctx->log(), spdlog::level::warn, "refused {} (hostname '{}'): {}", peer_, ping.hostname,
                        pong.reason);
            close_after_write_ = true;
        }
        send(make_pong(pong));
    }

    void bad_frame(const char* why, size_t offset) {
        srv_.bad_frames->add();
        srv_.ctx->metrics().errors.add();
        log_limited(srv_.rl_bad, srv_.ctx->log(), spdlog::level::warn, "closing the connection from {}: malformed frame at byte {}: {}",
                    peer_, stream_off_ + offset, why);
        close_now();
    }

    void send(std::string_view bytes) {
        out_.append(bytes);
        if (!writing_) start_write();
    }

    void start_write() {
        writing_ = true;
        wout_.swap(out_);
        out_.clear();
        auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
            self->writing_ = false;
            self->wout_.clear();
            if (self->closed_) return;
            if (ec) return self->close_now();
            if (!self->out_.empty()) return self->start_write();
            if (self->close_after_write_ && self->outstanding_ == 0) self->close_now();
        };
        if (tls_) asio::async_write(*tls_, asio::buffer(wout_), std::move(done));
        else asio::async_write(sock_, asio::buffer(wout_), std::move(done));
    }

public:
    // After the last ack of a connection whose peer already closed its side.
    void maybe_finish() {
        if (!closed_ && close_after_write_ && outstanding_ == 0 && !writing_) close_now();
    }

private:
    Server& srv_;
    gproto::socket sock_;
    std::unique_ptr<asio::ssl::stream<gproto::socket&>> tls_;
    MsgpackScanner scanner_;
    std::string rbuf_, out_, wout_, peer_, nonce_, auth_salt_;
    size_t filled_ = 0, stream_off_ = 0;
    int64_t deadline_ = 0;
    int outstanding_ = 0;  // chunks waiting for their ack
    bool authed_ = false, writing_ = false, closed_ = false, close_after_write_ = false;
};

void Server::adopt(gproto::socket s) {
    auto c = std::make_shared<Conn>(*this, std::move(s));
    c->slot = conns.size();
    conns.push_back(c.get());
    open_gauge->add(1);
    c->start();
}

void Server::remove(Conn* c) {
    size_t i = c->slot;
    if (i < conns.size() && conns[i] == c) {
        conns[i] = conns.back();
        conns[i]->slot = i;
        conns.pop_back();
    }
    open_gauge->add(-1);
}

void Server::flush() {
    flush_posted = false;
    std::shared_ptr<std::vector<Waiter>> group;
    if (!waiters.empty()) {
        group = std::make_shared<std::vector<Waiter>>();
        group->swap(waiters);
    }
    if (!pending || pending->empty()) {  // only frames without events asked for acks
        if (group) settle(*group, AckStatus::delivered, "");
        return;
    }
    BatchPtr b = std::move(pending);
    const size_t n = b->size();
    AckRef ref;
    if (group) {
        ref = make_ack([self = shared_from_this(), group](AckStatus s, const std::string& why) {
            asio::post(self->io, [self, group, s, why] { self->settle(*group, s, why); });
        });
        b->acks.push_back(ref.clone());
    }
    // Blocks while the pipeline is full: this loop stops reading and TCP pushes back on senders.
    if (emitter->emit(std::move(b))) ctx->metrics().events_in.add(n);
    if (ref) {
        ref.mark(AckStatus::delivered);  // this input's own hold has no objection
        ref.reset();
    }
}

void Server::settle(std::vector<Waiter>& group, AckStatus s, const std::string& why) {
    for (auto& w : group) {
        auto c = w.conn.lock();
        if (!c) continue;
        if (s == AckStatus::failed) {
            nacked->add();
            log_limited(rl_nack, ctx->log(), spdlog::level::warn,
                        "not acknowledging chunk {}: an output failed ({}); closing the connection so the sender resends", w.chunk, why);
            c->nacked();
        } else {
            c->acked(w.chunk);
            c->maybe_finish();
        }
    }
}

void Server::sweep() {
    int64_t now = mono_ns();
    std::vector<std::shared_ptr<Conn>> snap;
    snap.reserve(conns.size());
    for (Conn* c : conns) snap.push_back(c->shared_from_this());
    for (auto& c : snap) c->sweep(now);
    if (draining && conns.empty()) return;
    sweep_timer.expires_after(kSweepEvery);
    sweep_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->sweep();
    });
}

void Server::drain() {
    draining = true;
    drain_deadline = mono_ns() + kDrainNs;
    boost::system::error_code ec;
    if (acceptor) acceptor->close(ec);
    accepting.cancel();
    flush();
    std::vector<std::shared_ptr<Conn>> snap;
    for (Conn* c : conns) snap.push_back(c->shared_from_this());
    for (auto& c : snap) c->on_drain();
    if (conns.empty()) sweep_timer.cancel();
}

std::shared_ptr<net::Server> make_server(ServerOptions opts) { return std::make_shared<Server>(std::move(opts)); }

void Server::listen(StageContext& ctx) {
    Server& s = *this;
    s.acceptor.reset();
    s.ctx = &ctx;
    auto& reg = MetricsRegistry::global();
    const Labels l{{"stage", ctx.name()}};
    s.open_gauge = &reg.gauge("hbf_forward_connections_open", "Open Forward protocol connections.", l);
    s.bad_frames = &ctx.metrics().dropped("malformed_frame");
    s.acks_sent = &reg.counter("hbf_forward_acks_sent_total", "Chunks acknowledged to senders ({\"ack\": chunk}).", l);
    s.nacked = &reg.counter("hbf_forward_chunks_failed_total", "Chunks not acknowledged because an output failed.", l);
    s.auth_failures = &reg.counter("hbf_forward_auth_failures_total", "Handshakes refused (shared_key, users) or not finished.", l);
    s.refused = &reg.counter("hbf_forward_connections_refused_total", "Connections closed at once: max_connections reached.", l);
    s.tls_failures = &reg.counter("hbf_forward_tls_failures_total", "TLS handshakes that failed.", l);
    if (!s.opts.tls_cert.empty()) {
        s.tls.emplace(asio::ssl::context::tls_server);
        net::load_server_tls(*s.tls, s.opts.tls_cert, s.opts.tls_key);
    }
    net::raise_fd_limit(s.opts.max_connections + 256);
    boost::system::error_code ec;
    std::string where;
    gproto::endpoint ep;
    if (!s.opts.unix_path.empty()) {
        where = "unix:" + s.opts.unix_path;
        ::unlink(s.opts.unix_path.c_str());  // a socket file left by a previous run
        ep = asio::local::stream_protocol::endpoint(s.opts.unix_path);
    } else {
        where = fmt::format("{}:{}", s.opts.host, s.opts.port);
        tcp::resolver resolver(s.io);
        auto results = resolver.resolve(s.opts.host, std::to_string(s.opts.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
        if (ec || results.empty()) throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec ? ec.message() : "no address"));
        ep = results.begin()->endpoint();
    }
    s.acceptor.emplace(s.io);
    s.acceptor->open(ep.protocol(), ec);
    if (!ec && s.opts.unix_path.empty()) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor->bind(ep, ec);
    if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        s.acceptor.reset();
        throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec.message()));
    }
    s.accepting.bind(*s.acceptor, ctx.log(), *s.refused, s.opts.max_connections);
    ctx.log().info("listening on {}{}{}", where, s.tls ? " with TLS" : "", s.opts.shared_key.empty() ? "" : " (shared_key handshake)");
}

void Server::run(Emitter& out) {
    auto s = shared_from_this();
    s->emitter = &out;
    asio::post(s->io, [s] { s->sweep(); });
    asio::post(s->io, [s] { s->accepting.next(s); });
    s->io.run();
    if (!s->opts.unix_path.empty()) ::unlink(s->opts.unix_path.c_str());
    s->ctx->log().info("stopped: every connection closed");
}

void Server::stop() {
    auto s = shared_from_this();
    if (s->stopped.exchange(true)) return;
    asio::post(s->io, [s] { s->drain(); });
}

}  // namespace hbf::forward
