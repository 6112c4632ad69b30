// What the http input's connections and I/O threads share: the options as they are used per
// request, the listening socket, the TLS context, the counters and the rate-limited log lines.
// Set up by listen() before any thread runs; afterwards only `open`, `stopped` and
// `next_worker` (the acceptor's, on I/O thread 0) change.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <optional>
#include <string>
#include <time.h>
#include <vector>

#include "log.h"
#include "metrics.h"
#include "replies.h"
#include "server.h"

namespace hbf::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Worker;

// The clock of the connections' timeouts (read, idle, ack, write, linger), read a few times per
// request: CLOCK_MONOTONIC_COARSE costs a few ns where CLOCK_MONOTONIC costs tens, and its
// resolution (a scheduler tick) is far finer than the 200 ms sweep that checks the timeouts.
inline int64_t timeout_clock_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Server final : net::Server {
    explicit Server(ServerOptions o);

    void listen(StageContext& ctx) override;
    void run(Emitter& out) override;
    void stop() override;

    // Accepts the next connection onto the next I/O thread, round robin (I/O thread 0).
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

}  // namespace hbf::http
