// Load generator for bench/syslog/run.sh: CONNS TCP connections each send their share of TOTAL
// octet-counted RFC 5424 messages (Junos-like, with structured data) as fast as the socket takes
// them, then close. Usage: syslog_blast HOST PORT CONNS TOTAL
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s HOST PORT CONNS TOTAL\n", argv[0]);
        return 2;
    }
    const char* host = argv[1];
    int port = std::atoi(argv[2]), conns = std::atoi(argv[3]);
    long total = std::atol(argv[4]);
    std::vector<std::thread> ts;
    for (int c = 0; c < conns; ++c) {
        ts.emplace_back([=] {
            long n = total / conns + (c < total % conns ? 1 : 0);
            // 256 distinct messages, repeated: the parser sees varied interfaces and sequence numbers.
            std::string block;
            for (int i = 0; i < 256; ++i) {
                char msg[512];
                int len = std::snprintf(msg, sizeof msg,
                                        "<188>1 2026-11-29T15:00:%02d.%06dZ mx480-pe%d.ams mib2d 2%04d SNMP_TRAP_LINK_DOWN "
                                        "[junos@2636.1.1.1.2.57 snmp-interface-index=\"%d\" admin-status=\"up(1)\" "
                                        "operational-status=\"down(2)\" interface-name=\"xe-0/1/%d\"] "
                                        "SNMP_TRAP_LINK_DOWN: ifIndex %d, ifAdminStatus up(1), ifOperStatus down(2), ifName xe-0/1/%d",
                                        i % 60, i * 3907, c, i, 500 + i, i % 48, 500 + i, i % 48);
                block += std::to_string(len) + " " + std::string(msg, size_t(len));
            }
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(uint16_t(port));
            inet_pton(AF_INET, host, &a.sin_addr);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                std::perror("connect");
                std::exit(1);
            }
            // Whole blocks of 256, then the remainder message by message.
            long left = n;
            while (left >= 256) {
                size_t off = 0;
                while (off < block.size()) {
                    ssize_t w = ::write(fd, block.data() + off, block.size() - off);
                    if (w <= 0) {
                        std::perror("write");
                        std::exit(1);
                    }
                    off += size_t(w);
                }
                left -= 256;
            }
            size_t pos = 0;
            for (; left > 0; --left) pos = block.find(' ', pos) + 1 + std::stoul(block.substr(pos));
            for (size_t off = 0; off < pos;) {
                ssize_t w = ::write(fd, block.data() + off, pos - off);
                if (w <= 0) std::exit(1);
                off += size_t(w);
            }
            ::close(fd);
        });
    }
    for (auto& t : ts) t.join();
    return 0;
}
