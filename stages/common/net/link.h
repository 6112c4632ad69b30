// One client connection (the forward and tcp outputs): TCP, optionally TLS (OpenSSL), non-blocking,
// with poll()-based deadlines so that the output's thread never waits longer than it chose.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <sys/types.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace hbf::net {

// A client TLS context: CA file (or the system's), peer verification, optional client certificate.
// nullptr with `err` set when a file cannot be loaded. Free with SSL_CTX_free.
SSL_CTX* make_client_tls(const std::string& ca, bool verify, const std::string& cert, const std::string& key, std::string* err);
// The same from a client stage's `tls = { ca, verify, cert, key }` table: nullptr with what is
// wrong in `problems` (an unknown key, a verify that is not true or false, a file that does not load).
SSL_CTX* client_tls_from(const std::vector<std::pair<std::string, std::string>>& tls, std::vector<std::string>& problems);

class Link {
public:
    Link() = default;
    ~Link() { close(); }
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    // Resolves, connects and (with tls) handshakes before deadline; "" or what went wrong.
    std::string open(const std::string& host, uint16_t port, SSL_CTX* tls, int64_t deadline_ns);
    // Writes every byte before deadline; "" or what went wrong.
    std::string write_all(std::string_view data, int64_t deadline_ns);
    // Reads what is there without waiting: bytes read, 0 when nothing is, -1 when closed or failed.
    ssize_t read_some(char* buf, size_t n, std::string* err);
    // Waits until readable or deadline; false on timeout.
    bool wait_readable(int64_t deadline_ns) const;
    void close();
    bool is_open() const { return fd_ >= 0; }
    int fd() const { return fd_; }

private:
    bool wait(short events, int64_t deadline_ns) const;

    int fd_ = -1;
    SSL* ssl_ = nullptr;
};

}  // namespace hbf::net
