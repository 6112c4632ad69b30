#include "relay.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace hbf::kafka {
namespace {

constexpr size_t kMaxPending = 1 << 20;  // per direction; reading pauses above it

void set_nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

struct Conn {
    int fd[2];            // 0 = client, 1 = broker
    std::string out[2];   // bytes waiting to be written to fd[i]
    bool dead = false;
};

// Writes what is pending; false when the socket failed.
bool drain(int fd, std::string& buf) {
    while (!buf.empty()) {
        ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        buf.erase(0, size_t(n));
    }
    return true;
}

// A connection to the broker, or -1 when it refuses (it is down).
int connect_broker(const std::string& host, int port) {
    int bfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in t{};
    t.sin_family = AF_INET;
    t.sin_port = htons(uint16_t(port));
    ::inet_pton(AF_INET, host.c_str(), &t.sin_addr);
    if (::connect(bfd, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
        ::close(bfd);
        return -1;
    }
    return bfd;
}

// Each side of a relayed connection: no Nagle delay, and non-blocking for the poll loop.
void relay_socket(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(fd);
}

// One poll's worth of both directions of `c` (pf: its two pollfds, client then broker).
void move_bytes(Conn& c, const pollfd* pf, char* buf, size_t cap) {
    for (int s = 0; s < 2 && !c.dead; ++s) {
        short re = pf[s].revents;
        if (re & POLLOUT && !drain(c.fd[s], c.out[s])) c.dead = true;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = ::recv(c.fd[s], buf, cap, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                c.dead = true;
            } else if (n > 0) {
                c.out[1 - s].append(buf, size_t(n));
                if (!drain(c.fd[1 - s], c.out[1 - s])) c.dead = true;
            }
        }
    }
}

}  // namespace

TcpRelay::TcpRelay(int port, std::string target_host, int target_port)
    : port_(port), host_(std::move(target_host)), target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0) {
        std::string why = std::strerror(errno);
        ::close(listen_fd_);
        throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
    set_nonblock(listen_fd_);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    thread_ = std::thread([this] { loop(); });
}

TcpRelay::~TcpRelay() {
    char c = 'x';
    (void)!::write(wake_[1], &c, 1);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void TcpRelay::loop() {
    std::vector<Conn> conns;
    std::vector<pollfd> pfds;
    char buf[64 << 10];
    for (;;) {
        pfds.clear();
        pfds.push_back({wake_[0], POLLIN, 0});
        pfds.push_back({listen_fd_, POLLIN, 0});
        for (auto& c : conns)
            for (int s = 0; s < 2; ++s) {
                short ev = 0;
                if (c.out[1 - s].size() < kMaxPending) ev |= POLLIN;
                if (!c.out[s].empty()) ev |= POLLOUT;
                pfds.push_back({c.fd[s], ev, 0});
            }
        if (::poll(pfds.data(), pfds.size(), -1) < 0 && errno != EINTR) return;
        if (pfds[0].revents) break;
        if (pfds[1].revents & POLLIN) {
            int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (cfd >= 0) {
                if (int bfd = connect_broker(host_, target_port_); bfd >= 0) {
                    relay_socket(cfd);
                    relay_socket(bfd);
                    conns.push_back(Conn{{cfd, bfd}, {}, false});
                } else {
                    ::close(cfd);  // broker down: refuse
                }
            }
        }
        // pfds[2 + 2i + s] belongs to conns[i].fd[s]; connections accepted above are not in pfds yet.
        size_t polled = (pfds.size() - 2) / 2;
        for (size_t i = 0; i < polled; ++i) move_bytes(conns[i], &pfds[2 + 2 * i], buf, sizeof buf);
        for (size_t i = conns.size(); i-- > 0;) {
            if (!conns[i].dead) continue;
            ::close(conns[i].fd[0]);
            ::close(conns[i].fd[1]);
            conns.erase(conns.begin() + long(i));
        }
    }
    for (auto& c : conns) {
        ::close(c.fd[0]);
        ::close(c.fd[1]);
    }
}

}  // namespace hbf::kafka
