// The http input's server: Asio io_contexts (one per I/O thread), a Beast request parser per
// connection, and a per-thread collector that turns the requests of one event-loop round into
// one batch.
//
// A connection lives on one thread from accept to close, so it needs no lock. A request is
// parsed with Beast's basic_parser (callbacks, no allocation), its body validated completely
// and appended to the thread's pending batch; the batch is handed downstream once per round
// (try_emit: a full queue answers 503 to every request in it, nothing queued) and then each
// request gets its reply. With ack = "delivered" the replies wait for the batch's AckState.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/server_input.h"

namespace hbf::http {

struct ServerOptions {
    std::string host = "0.0.0.0";
    uint16_t port = 8080;
    std::vector<std::string> paths{"/"};
    std::string auth_header;     // expected Authorization value ("Basic dXNlcjpwYXNz"); empty = none
    std::string auth_challenge;  // WWW-Authenticate value
    size_t max_body = 1 << 20;
    uint32_t header_limit = 16 << 10;
    bool ack_delivered = false;
    std::chrono::nanoseconds ack_timeout = std::chrono::seconds(10);
    std::chrono::nanoseconds read_timeout = std::chrono::seconds(10);
    std::chrono::nanoseconds idle_timeout = std::chrono::seconds(60);
    size_t max_connections = 4096;
    int threads = 1;
    int retry_after = 1;
    std::string path_field, remote_addr_field;
    std::vector<std::string> headers;  // request headers copied into each event, by lowercase name
    std::string tls_cert, tls_key;     // PEM files; both empty = plain HTTP
};

// The server (net::Server): listen() loads the TLS certificate and key (if any), binds and
// listens; run() runs the I/O threads (this one included); stop() stops accepting, closes idle
// connections and finishes in-flight requests.
std::shared_ptr<net::Server> make_server(ServerOptions opts);

}  // namespace hbf::http
