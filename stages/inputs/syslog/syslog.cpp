// input "syslog": RFC 5424 and RFC 3164 messages over TCP (octet-counted or LF-framed, optional
// TLS) or UDP (one message a datagram), each parsed into one JSON event (parser.h).
//
// One Asio event loop on the input's thread. Messages go into the round's batch, which is
// emitted once per round of ready sockets (or at batch_events); emit() blocks while the pipeline
// is full, so the loop stops reading: TCP pushes back on senders, UDP datagrams wait in (and past
// its size, are dropped by) the kernel's receive buffer.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <cstring>
#include <fmt/format.h>
#include <netinet/tcp.h>

#include "framing.h"
#include "net/accept_loop.h"
#include "net/listen_address.h"
#include "net/server_tls.h"
#include "parser.h"
#include "registry.h"

namespace hbf::stages {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;

constexpr size_t kReadChunk = 64 << 10;
constexpr int kUdpBurst = 256;  // datagrams read per wake-up before the batch is handed on

struct Options {
    std::string host;
    uint16_t port = 0;
    bool udp = false;
    std::string tls_cert, tls_key;
    size_t max_line = 64 << 10;
    size_t max_connections = 1024;
    syslog::ParserOptions parser;
};

struct SyslogOptions {
    std::string address = "0.0.0.0:5514";
    std::string mode = "tcp";
    StringMap tls;
    Size max_line{64 << 10};
    int64_t max_connections = 1024;
    std::string timezone = "local";
    std::vector<Resource> resources(const StagePlace&) const {
        return {{Resource::Kind::listen, address, mode == "udp" ? Resource::Protocol::udp : Resource::Protocol::tcp}};
    }
};

using SO = SyslogOptions;
const OptionSchema<SO> kSyslogSchema{
    {"address", &SO::address, "host:port to listen on (514 needs privileges; 5514 does not)."},
    {"mode", &SO::mode, "tcp (octet-counted or LF-framed, RFC 6587) | udp (one message a datagram)."},
    {"tls", &SO::tls, "{ cert = \"server.pem\", key = \"server.key\" }: syslog over TLS (RFC 5425); tcp only."},
    {"max_line", &SO::max_line, "Longest message; longer ones are dropped, counted and logged.", between{64, double(64u << 20)}},
    {"max_connections", &SO::max_connections, "Open TCP connections allowed; more are closed at once.", at_least{1}},
    {"timezone", &SO::timezone, "Zone of RFC 3164 timestamps, which carry none: \"local\" (TZ), \"UTC\" or \"+01:00\"."},
};

Options parse_options(const SyslogOptions& in, const StageConfig& c) {
    Options o;
    net::read_listen_address(c, in.address, "0.0.0.0:5514", o.host, o.port);
    if (in.mode == "udp") o.udp = true;
    else if (in.mode != "tcp") c.problem("mode", "mode must be \"tcp\" or \"udp\", not \"" + in.mode + "\"");
    if (c.has("tls")) {
        if (o.udp) c.problem("tls", "tls applies to mode = \"tcp\" only");
        else
            for (const auto& why : net::server_tls_problems(in.tls, o.tls_cert, o.tls_key)) c.problem("tls", why);
    }
    o.max_line = in.max_line;
    if (o.udp && o.max_line > 65535) o.max_line = 65535;
    o.max_connections = size_t(in.max_connections);
    if (!syslog::parse_timezone(in.timezone, o.parser))
        c.problem("timezone", "timezone must be \"local\", \"UTC\" or an offset like \"+01:00\"");
    return o;
}

class SyslogInput;

class Conn : public std::enable_shared_from_this<Conn> {
public:
    Conn(SyslogInput& in, tcp::socket s);
    void start();
    void close();
    size_t slot = 0;

private:
    void read();
    void consume(bool eof);

    SyslogInput& in_;
    tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
    syslog::Framer framer_;
    std::string buf_;
    size_t filled_ = 0;
    std::string peer_;
    bool closed_ = false;
};

class SyslogInput final : public Input {
public:
    SyslogInput(const SyslogOptions& in, const StageConfig& c) : o_(parse_options(in, c)), parser_(o_.parser) {}

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        auto& reg = MetricsRegistry::global();
        const Labels l{{"stage", ctx.name()}};
        messages_ = &reg.counter("hbf_syslog_messages_total", "Syslog messages received (parsed or not).", l);
        parse_errors_ = &reg.counter("hbf_syslog_parse_errors_total",
                                     "Messages kept as {message, parse_error}: no valid PRI, or a malformed RFC 5424 header.", l);
        too_long_ = &ctx.metrics().dropped("too_long");
        truncated_ = &ctx.metrics().dropped("truncated_frame");
        open_ = &reg.gauge("hbf_syslog_connections_open", "Open syslog TCP connections.", l);
        refused_ = &reg.counter("hbf_syslog_connections_refused_total", "Connections closed at once: max_connections reached.", l);
        tls_failures_ = &reg.counter("hbf_syslog_tls_failures_total", "TLS handshakes that failed.", l);
        if (!o_.tls_cert.empty()) load_tls();
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(o_.host, ec);
        if (ec) throw std::runtime_error(fmt::format("cannot listen on {}:{}: not an IP address", o_.host, o_.port));
        std::string where = fmt::format("{}:{}", o_.host, o_.port);
        if (o_.udp) {
            udp::endpoint ep(addr, o_.port);
            udp_.emplace(io_);
            udp_->open(ep.protocol(), ec);
            if (!ec) udp_->set_option(asio::socket_base::reuse_address(true), ec);
            if (!ec) udp_->bind(ep, ec);
            if (ec) throw std::runtime_error(fmt::format("cannot listen on udp {}: {}", where, ec.message()));
            boost::system::error_code ignore;
            udp_->set_option(asio::socket_base::receive_buffer_size(8 << 20), ignore);  // bursts wait in the kernel
            udp_->non_blocking(true, ignore);
            dgram_.resize(65536);
        } else {
            tcp::endpoint ep(addr, o_.port);
            acceptor_.emplace(io_);
            acceptor_->open(ep.protocol(), ec);
            if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
            if (!ec) acceptor_->bind(ep, ec);
            if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
            if (ec) throw std::runtime_error(fmt::format("cannot listen on tcp {}: {}", where, ec.message()));
            accepting_.bind(*acceptor_, ctx.log(), *refused_, o_.max_connections);
        }
        ctx.log().info("listening for syslog on {} {}{}", o_.udp ? "udp" : "tcp", where, tls_ ? " with TLS" : "");
    }

    void run(StageContext&, Emitter& out) override {
        out_ = &out;
        if (udp_) asio::post(io_, [this] { receive(); });
        else asio::post(io_, [this] { accepting_.next(); });
        io_.run();
        flush();
        ctx_->log().info("stopped");
    }

    void stop() override {
        if (stopped_.exchange(true)) return;
        asio::post(io_, [this] {
            boost::system::error_code ec;
            if (acceptor_) acceptor_->close(ec);
            accepting_.cancel();
            if (udp_) udp_->close(ec);
            std::vector<std::shared_ptr<Conn>> snap;
            for (Conn* c : conns_) snap.push_back(c->shared_from_this());
            for (auto& c : snap) c->close();
        });
    }

    // Called by connections and the UDP reader on the loop's thread.
    void message(std::string_view m) {
        // rsyslog's templates end in LF, inside the octet count too: not part of the message.
        while (!m.empty() && (m.back() == '\n' || m.back() == '\r' || m.back() == '\0')) m.remove_suffix(1);
        if (m.empty()) return;
        messages_->add();
        Batch& b = batch();
        if (!parser_.parse(m, b.received_ns, b)) {
            parse_errors_->add();
            ctx_->metrics().errors.add();
            uint64_t held_back = 0;
            if (parse_rl_.allow(held_back)) {
                // The excerpt goes to a terminal or a log file: control bytes are shown as '?'.
                std::string ex(m.substr(0, 120));
                for (char& ch : ex)
                    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
                ctx_->log().warn("kept a message that is not syslog ({}): {}{}", parser_.last_error(), ex,
                                 held_back ? fmt::format(" (repeated {} times since the last report)", held_back) : "");
            }
        }
        if (b.size() >= ctx_->batch_events) flush();
    }
    void refused_frame(const char* why, const std::string& peer) {
        (std::strstr(why, "closed inside") ? truncated_ : too_long_)->add();
        log_limited(long_rl_, ctx_->log(), spdlog::level::warn, "dropped a message from {}: {} ({} bytes)", peer, why, o_.max_line);
    }
    void post_flush() {
        if (flush_posted_ || !pending_ || pending_->empty()) return;
        flush_posted_ = true;
        asio::post(io_, [this] { flush(); });
    }
    void flush() {
        flush_posted_ = false;
        if (!pending_ || pending_->empty()) return;
        BatchPtr b = std::move(pending_);
        size_t n = b->size();
        // Blocks while the pipeline is full: the loop stops reading and the senders are pushed back.
        if (out_->emit(std::move(b))) ctx_->metrics().events_in.add(n);
    }

    void opened(Conn* c) {
        c->slot = conns_.size();
        conns_.push_back(c);
        open_->add(1);
    }
    void closed(Conn* c) {
        size_t i = c->slot;
        if (i < conns_.size() && conns_[i] == c) {
            conns_[i] = conns_.back();
            conns_[i]->slot = i;
            conns_.pop_back();
        }
        open_->add(-1);
    }

    StageContext* ctx_ = nullptr;
    Options o_;
    std::optional<asio::ssl::context> tls_;
    Counter* tls_failures_ = nullptr;
    RateLimit tls_rl_;

private:
    Batch& batch() {
        if (!pending_) {
            pending_ = Batch::make();
            pending_->received_ns = now_ns();
        }
        return *pending_;
    }

    void receive() {
        if (stopped_) return;
        udp_->async_wait(udp::socket::wait_read, [this](const boost::system::error_code& ec) {
            if (ec) return;
            for (int i = 0; i < kUdpBurst; ++i) {
                boost::system::error_code e;
                size_t n = udp_->receive_from(asio::buffer(dgram_), from_, 0, e);
                if (e) break;  // would_block: the kernel's queue is empty
                ctx_->metrics().bytes_in.add(n);
                if (n > o_.max_line) {
                    refused_frame("a datagram is longer than max_line", from_.address().to_string());
                    continue;
                }
                std::string_view m(dgram_.data(), n);
                while (!m.empty() && (m.back() == '\n' || m.back() == '\r' || m.back() == '\0')) m.remove_suffix(1);
                if (!m.empty()) message(m);
            }
            post_flush();
            receive();
        });
    }

    void load_tls() {
        tls_.emplace(asio::ssl::context::tls_server);
        net::load_server_tls(*tls_, o_.tls_cert, o_.tls_key);
    }

    asio::io_context io_{1};
    std::optional<tcp::acceptor> acceptor_;
    std::optional<udp::socket> udp_;
    std::string dgram_;
    udp::endpoint from_;
    syslog::Parser parser_;
    Emitter* out_ = nullptr;
    BatchPtr pending_;
    bool flush_posted_ = false;
    std::vector<Conn*> conns_;
    std::atomic<bool> stopped_{false};
    net::AcceptLoop<tcp> accepting_{io_, {[this] { return stopped_.load(); }, [this] { return conns_.size(); },
                                          [this](tcp::socket s) { std::make_shared<Conn>(*this, std::move(s))->start(); }}};
    Counter *messages_ = nullptr, *parse_errors_ = nullptr, *too_long_ = nullptr, *truncated_ = nullptr, *refused_ = nullptr;
    Gauge* open_ = nullptr;
    RateLimit parse_rl_, long_rl_;
};

Conn::Conn(SyslogInput& in, tcp::socket s) : in_(in), sock_(std::move(s)), framer_(in.o_.max_line) {
    boost::system::error_code ec;
    auto ep = sock_.remote_endpoint(ec);
    peer_ = ec ? "?" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    if (in_.tls_) tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, *in_.tls_);
    buf_.resize(std::max(kReadChunk, in_.o_.max_line + 32));
}

void Conn::start() {
    in_.opened(this);
    if (!tls_) return read();
    tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const boost::system::error_code& ec) {
        if (self->closed_) return;
        if (ec) {
            self->in_.tls_failures_->add();
            log_limited(self->in_.tls_rl_, self->in_.ctx_->log(), spdlog::level::warn, "TLS handshake with {} failed: {}", self->peer_,
                        ec.message());
            return self->close();
        }
        self->read();
    });
}

void Conn::close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    sock_.close(ec);
    in_.closed(this);
}

void Conn::read() {
    auto buf = asio::buffer(buf_.data() + filled_, buf_.size() - filled_);
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (self->closed_) return;
        self->filled_ += n;
        self->in_.ctx_->metrics().bytes_in.add(n);
        if (ec) {  // EOF or reset: what is left is the last message (LF framing needs no final LF)
            self->consume(true);
            self->in_.post_flush();
            return self->close();
        }
        self->consume(false);
        self->in_.post_flush();
        self->read();
    };
    if (tls_) tls_->async_read_some(buf, std::move(done));
    else sock_.async_read_some(buf, std::move(done));
}

void Conn::consume(bool eof) {
    size_t used = framer_.feed(
        buf_.data(), filled_, eof, [&](std::string_view m) { in_.message(m); }, [&](const char* why) { in_.refused_frame(why, peer_); });
    if (used > 0) {
        std::memmove(buf_.data(), buf_.data() + used, filled_ - used);
        filled_ -= used;
    }
}

HBF_REGISTER_INPUT("syslog", SyslogInput, kSyslogSchema,
                   "Syslog (RFC 5424 and RFC 3164, detected per message) over TCP, TLS or UDP, one JSON event per message.");

}  // namespace
}  // namespace hbf::stages
