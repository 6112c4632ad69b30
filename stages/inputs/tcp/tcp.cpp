// input "tcp": NDJSON lines over TCP (optionally TLS), the way syslog relays and `nc` send them.
//
// One Asio event loop on the input's thread. Each connection keeps its partial line across reads
// (a LineSplitter); complete lines of every connection go into the round's batch, handed
// downstream once per round or at batch_events. A line longer than max_line is dropped and
// counted, and the connection carries on with the next line. emit() blocks while the pipeline is
// full, so reading stops and TCP pushes back on the senders. There is no acknowledgement in this
// protocol: lines are taken once read.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>
#include <optional>

#include "lines.h"
#include "net/accept_loop.h"
#include "net/listen_address.h"
#include "net/server_tls.h"
#include "registry.h"

namespace hbf::stages {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kBatchBytes = 4 << 20;

struct TcpOptions {
    std::string host = "0.0.0.0";
    uint16_t port = 5170;
    size_t max_line = 1 << 20, max_connections = 4096;
    std::string tls_cert, tls_key;
};

struct TcpInOptions {
    std::string address = "0.0.0.0:5170";
    Size max_line{1 << 20};
    int64_t max_connections = 4096;
    StringMap tls;
    std::vector<Resource> resources(const StagePlace&) const { return {{Resource::Kind::listen, address}}; }
};

const OptionSchema<TcpInOptions> kTcpSchema{
    {"address", &TcpInOptions::address, "host:port to listen on."},
    {"max_line", &TcpInOptions::max_line, "Longest accepted line; longer ones are dropped and counted, the connection carries on.",
     at_least{2}},
    {"max_connections", &TcpInOptions::max_connections, "Open connections allowed; more are closed at once.", at_least{1}},
    {"tls", &TcpInOptions::tls, "{ cert = \"server.pem\", key = \"server.key\" }: serve TLS with these PEM files."},
};

TcpOptions parse(const TcpInOptions& in, const StageConfig& c) {
    TcpOptions o;
    net::read_listen_address(c, in.address, "0.0.0.0:5170", o.host, o.port);
    o.max_line = in.max_line;
    o.max_connections = size_t(in.max_connections);
    if (c.has("tls"))
        for (const auto& why : net::server_tls_problems(in.tls, o.tls_cert, o.tls_key)) c.problem("tls", why);
    return o;
}

struct Loop;

class Conn : public std::enable_shared_from_this<Conn> {
public:
    Conn(Loop& l, tcp::socket s);
    void start();
    void close_now();
    size_t slot = 0;

private:
    void read();

    Loop& loop_;
    tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
    LineSplitter lines_;
    std::string buf_;
    bool closed_ = false;
};

struct Loop : std::enable_shared_from_this<Loop> {
    explicit Loop(TcpOptions o) : opts(std::move(o)) {}

    // A connection within max_connections: it reads lines from now on.
    void adopt(tcp::socket s) {
        auto c = std::make_shared<Conn>(*this, std::move(s));
        c->slot = conns.size();
        conns.push_back(c.get());
        open->add(1);
        c->start();
    }

    Batch& batch() {
        if (!pending) pending = Batch::make();
        return *pending;
    }

    void lines_added() {
        if (pending && (pending->size() >= ctx->batch_events || pending->bytes() >= kBatchBytes)) flush();
        else if (pending && !pending->empty() && !flush_posted) {
            flush_posted = true;
            asio::post(io, [self = shared_from_this()] { self->flush(); });
        }
    }

    void flush() {
        flush_posted = false;
        if (!pending || pending->empty()) return;
        const size_t n = pending->size();
        if (emitter->emit(std::move(pending))) ctx->metrics().events_in.add(n);
    }

    void remove(Conn* c) {
        if (c->slot < conns.size() && conns[c->slot] == c) {
            conns[c->slot] = conns.back();
            conns[c->slot]->slot = c->slot;
            conns.pop_back();
        }
        open->add(-1);
    }

    TcpOptions opts;
    asio::io_context io{1};
    net::AcceptLoop<tcp> accepting{io, {[this] { return stopped.load(); }, [this] { return conns.size(); },
                                        [this](tcp::socket s) { adopt(std::move(s)); }}};
    std::optional<tcp::acceptor> acceptor;
    std::optional<asio::ssl::context> tls;
    StageContext* ctx = nullptr;
    Emitter* emitter = nullptr;
    BatchPtr pending;
    bool flush_posted = false;
    std::vector<Conn*> conns;
    std::atomic<bool> stopped{false};
    Gauge* open = nullptr;
    Counter *too_long = nullptr, *refused = nullptr;
    RateLimit rl_long, rl_tls;
};

Conn::Conn(Loop& l, tcp::socket s) : loop_(l), sock_(std::move(s)), lines_(l.opts.max_line) {
    if (loop_.tls) tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, *loop_.tls);
}

void Conn::start() {
    if (!tls_) return read();
    tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const boost::system::error_code& ec) {
        if (self->closed_) return;
        if (ec) {
            log_limited(self->loop_.rl_tls, self->loop_.ctx->log(), spdlog::level::warn, "TLS handshake failed: {}", ec.message());
            return self->close_now();
        }
        self->read();
    });
}

void Conn::read() {
    buf_.resize(kReadChunk);
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (self->closed_) return;
        Loop& l = self->loop_;
        if (ec) {  // EOF: the last line needs no newline
            if (size_t d = self->lines_.finish(l.batch())) l.too_long->add(d);
            l.lines_added();
            return self->close_now();
        }
        if (l.stopped.load()) return self->close_now();
        l.ctx->metrics().bytes_in.add(n);
        if (size_t d = self->lines_.feed(self->buf_.data(), n, l.batch())) {
            l.too_long->add(d);
            log_limited(l.rl_long, l.ctx->log(), spdlog::level::warn, "dropped {} line(s) longer than max_line ({} bytes)", d,
                        l.opts.max_line);
        }
        l.lines_added();
        self->read();
    };
    if (tls_) tls_->async_read_some(asio::buffer(buf_), std::move(done));
    else sock_.async_read_some(asio::buffer(buf_), std::move(done));
}

void Conn::close_now() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    sock_.close(ec);
    loop_.remove(this);
}

class TcpInput final : public Input {
public:
    TcpInput(const TcpInOptions& o, const StageConfig& c) : loop_(std::make_shared<Loop>(parse(o, c))) {}

    void start(StageContext& ctx) override {
        Loop& l = *loop_;
        l.ctx = &ctx;
        auto& reg = MetricsRegistry::global();
        const Labels lb{{"stage", ctx.name()}};
        l.open = &reg.gauge("hbf_tcp_connections_open", "Open TCP input connections.", lb);
        l.refused = &reg.counter("hbf_tcp_connections_refused_total", "Connections closed at once: max_connections reached.", lb);
        l.too_long = &ctx.metrics().dropped("line_too_long");
        if (!l.opts.tls_cert.empty()) {
            l.tls.emplace(asio::ssl::context::tls_server);
            net::load_server_tls(*l.tls, l.opts.tls_cert, l.opts.tls_key);
        }
        const std::string where = fmt::format("{}:{}", l.opts.host, l.opts.port);
        boost::system::error_code ec;
        tcp::resolver resolver(l.io);
        auto res = resolver.resolve(l.opts.host, std::to_string(l.opts.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
        if (ec || res.empty()) throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec ? ec.message() : "no address"));
        l.acceptor.emplace(l.io);
        auto ep = res.begin()->endpoint();
        l.acceptor->open(ep.protocol(), ec);
        if (!ec) l.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) l.acceptor->bind(ep, ec);
        if (!ec) l.acceptor->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            l.acceptor.reset();
            throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, ec.message()));
        }
        l.accepting.bind(*l.acceptor, ctx.log(), *l.refused, l.opts.max_connections);
        ctx.log().info("listening on {}{} for NDJSON lines", where, l.tls ? " with TLS" : "");
    }

    void run(StageContext& ctx, Emitter& out) override {
        auto l = loop_;
        l->emitter = &out;
        asio::post(l->io, [l] { l->accepting.next(l); });
        l->io.run();
        ctx.log().info("stopped: every connection closed");
    }

    void stop() override {
        auto l = loop_;
        if (l->stopped.exchange(true)) return;
        asio::post(l->io, [l] {
            boost::system::error_code ec;
            if (l->acceptor) l->acceptor->close(ec);
            l->accepting.cancel();
            std::vector<std::shared_ptr<Conn>> snap;
            for (Conn* c : l->conns) snap.push_back(c->shared_from_this());
            for (auto& c : snap) c->close_now();  // what was read is in the round's batch
            l->flush();
        });
    }

private:
    std::shared_ptr<Loop> loop_;
};

HBF_REGISTER_INPUT("tcp", TcpInput, kTcpSchema, "NDJSON lines over TCP (optionally TLS), one event a line.");

}  // namespace
}  // namespace hbf::stages
