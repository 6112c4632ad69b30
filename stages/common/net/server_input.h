// An input that is one network server (the forward and http inputs). The server listens at the
// stage's start, so a port in use or a TLS file that does not load fails the start before any
// thread runs; it serves on the stage's thread until stop() and the drain finish.
#pragma once

#include <memory>

#include "stage.h"

namespace hbf::net {

class Server {
public:
    virtual ~Server() = default;
    // Loads the TLS files (if any), binds and listens; throws std::runtime_error naming the file
    // or the address.
    virtual void listen(StageContext& ctx) = 0;
    // Serves until stop() and the drain finish.
    virtual void run(Emitter& out) = 0;
    // Any thread: stop accepting, finish or fail what is in flight, close.
    virtual void stop() = 0;
};

class ServerInput : public Input {
public:
    explicit ServerInput(std::shared_ptr<Server> server) : server_(std::move(server)) {}

    void start(StageContext& ctx) override { server_->listen(ctx); }
    void run(StageContext&, Emitter& out) override { server_->run(out); }
    void stop() override { server_->stop(); }

private:
    std::shared_ptr<Server> server_;
};

}  // namespace hbf::net
