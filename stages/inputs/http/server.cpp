// The http input's server: the options it derives once, the acceptor that deals connections out
// to the I/O threads, and the lifecycle (listen, run, stop). Connections are in connection.*,
// the per-thread batching and acks in worker.*, the request parser in request_parser.*.
#include "server.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <thread>

#include "connection.h"
#include "json_util.h"
#include "net/fd_limit.h"
#include "net/server_tls.h"
#include "worker.h"

namespace hbf::http {

Server::Server(ServerOptions o) : opts(std::move(o)) {
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

void Server::do_accept() {
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

std::shared_ptr<net::Server> make_server(ServerOptions opts) { return std::make_shared<Server>(std::move(opts)); }

void Server::listen(StageContext& ctx) {
    Server& s = *this;
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
    if (!s.opts.tls_cert.empty()) {
        s.tls.emplace(asio::ssl::context::tls_server);
        net::load_server_tls(*s.tls, s.opts.tls_cert, s.opts.tls_key);
    }
    s.too_many.clear();
    append_reply(s.too_many, 503, R"({"error":"too many connections"})", true, fmt::format("Retry-After: {}\r\n", s.opts.retry_after));
    net::raise_fd_limit(s.opts.max_connections + 256);
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
    Server& s = *this;
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
    Server& s = *this;
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
