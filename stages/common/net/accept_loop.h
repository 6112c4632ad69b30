// The accept loop of the socket inputs (forward, tcp, syslog): each connection accepted is handed
// to the server, or closed at once when max_connections are open; a failed accept (out of file
// descriptors and the like) is logged, rate limited, and retried after 100 ms rather than spun on.
// Runs on the server's io_context thread; ends when the acceptor is closed or the server stops.
#pragma once

#include <boost/asio.hpp>
#include <functional>
#include <memory>

#include "log.h"
#include "metrics.h"

namespace hbf::net {

template <class Protocol>
class AcceptLoop {
public:
    using Socket = typename Protocol::socket;
    using Acceptor = boost::asio::basic_socket_acceptor<Protocol>;

    struct Hooks {
        std::function<bool()> stopped;      // the server stops: accept no more
        std::function<size_t()> open;       // connections open now
        std::function<void(Socket)> adopt;  // a new connection within max_connections
    };

    AcceptLoop(boost::asio::io_context& io, Hooks hooks) : retry_(io), hooks_(std::move(hooks)) {}

    // At listen(), before the first next().
    void bind(Acceptor& acceptor, spdlog::logger& log, Counter& refused, size_t max_connections) {
        acceptor_ = &acceptor;
        log_ = &log;
        refused_ = &refused;
        max_ = max_connections;
    }

    // Accepts the next connection, and then the one after. `keep` (the server, when it is owned
    // by a shared_ptr) is held by every pending handler.
    void next(std::shared_ptr<void> keep = nullptr) {
        if (hooks_.stopped()) return;
        acceptor_->async_accept([this, keep](const boost::system::error_code& ec, Socket s) {
            if (ec) return failed(ec, keep);
            if (hooks_.open() >= max_) refuse(s);
            else hooks_.adopt(std::move(s));
            next(keep);
        });
    }

    // At stop, with the acceptor's close: a retry that waits is not made.
    void cancel() { retry_.cancel(); }

private:
    void failed(const boost::system::error_code& ec, std::shared_ptr<void> keep) {
        if (ec == boost::asio::error::operation_aborted || hooks_.stopped()) return;
        log_limited(rl_, *log_, spdlog::level::err, "accept failed: {}", ec.message());
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this, keep](const boost::system::error_code& e) {
            if (!e) next(keep);
        });
    }

    void refuse(Socket& s) {
        refused_->add();
        log_limited(rl_, *log_, spdlog::level::warn, "refused a connection: max_connections ({}) reached", max_);
        boost::system::error_code e;
        s.close(e);
    }

    boost::asio::steady_timer retry_;
    Hooks hooks_;
    Acceptor* acceptor_ = nullptr;
    spdlog::logger* log_ = nullptr;
    Counter* refused_ = nullptr;
    size_t max_ = 0;
    RateLimit rl_;
};

}  // namespace hbf::net
