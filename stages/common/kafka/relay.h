// A TCP relay on 127.0.0.1:port to another local address, on one thread of its own.
//
// librdkafka 2.0's mock brokers listen on random ports; the relay gives the dev broker the fixed
// bootstrap port users ask for. Only bootstrap traffic passes here: clients then connect to the
// brokers' advertised addresses.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace hbf::kafka {

class TcpRelay {
public:
    // Binds at once (throws std::runtime_error naming the port when it cannot).
    TcpRelay(int port, std::string target_host, int target_port);
    ~TcpRelay();
    TcpRelay(const TcpRelay&) = delete;
    TcpRelay& operator=(const TcpRelay&) = delete;
    int port() const { return port_; }

private:
    void loop();
    int port_;
    std::string host_;
    int target_port_;
    int listen_fd_ = -1;
    int wake_[2] = {-1, -1};
    std::thread thread_;
};

}  // namespace hbf::kafka
