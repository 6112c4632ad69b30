// The ceiling for the http input's benchmark: the least an HTTP/1.1 server can do.
//
// One thread, epoll, non-blocking sockets. Reads requests (header up to "\r\n\r\n", then
// Content-Length bytes of body), answers each with the same 200 and a short JSON body, keeps
// the connection alive, honours pipelining. No validation, no queue, no allocation per request.
// Usage: http_bare_responder PORT
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr std::string_view kReply =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"accepted\":1}";

struct Conn {
    std::string in, out;
};

// Length of the first complete request in `s`, or 0 when more bytes are needed.
size_t request_length(std::string_view s) {
    size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos) return 0;
    size_t body = 0;
    for (size_t p = 0; p < end;) {
        size_t eol = s.find("\r\n", p);
        std::string_view line = s.substr(p, eol - p);
        if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) body = std::strtoul(line.data() + 15, nullptr, 10);
        p = eol + 2;
    }
    size_t total = end + 4 + body;
    return s.size() >= total ? total : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(std::atoi(argv[1])));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1024) != 0) {
        std::perror("bind/listen");
        return 1;
    }
    int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::vector<Conn> conns(65536);
    std::vector<epoll_event> events(256);
    char buf[65536];
    for (;;) {
        int n = ::epoll_wait(ep, events.data(), int(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event ce{};
                    ce.events = EPOLLIN;
                    ce.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            Conn& c = conns[size_t(fd)];
            ssize_t r = ::read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                ::close(fd);
                c.in.clear();
                continue;
            }
            c.in.append(buf, size_t(r));
            size_t used = 0, len;
            while ((len = request_length(std::string_view(c.in).substr(used))) > 0) {
                c.out.append(kReply);
                used += len;
            }
            c.in.erase(0, used);
            if (!c.out.empty()) {
                ssize_t w = ::write(fd, c.out.data(), c.out.size());  // replies are small: the send buffer takes them
                if (w > 0) c.out.erase(0, size_t(w));
            }
        }
    }
}
