#include "net/link.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "batch.h"

namespace hbf::net {
namespace {

std::string ssl_error() {
    unsigned long e = ERR_get_error();
    if (!e) return "TLS error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

}  // namespace

SSL_CTX* make_client_tls(const std::string& ca, bool verify, const std::string& cert, const std::string& key, std::string* err) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    auto fail = [&](std::string why) {
        *err = why + ": " + ssl_error();
        SSL_CTX_free(ctx);
        return nullptr;
    };
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (ca.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1 : SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
            return fail("cannot load the CA certificates" + (ca.empty() ? std::string() : " from " + ca));
    }
    if (!cert.empty() || !key.empty()) {
        if (cert.empty() || key.empty()) {
            *err = "a client certificate needs both cert and key";
            SSL_CTX_free(ctx);
            return nullptr;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) return fail("cannot load the certificate " + cert);
        if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) return fail("cannot load the key " + key);
    }
    return ctx;
}

SSL_CTX* client_tls_from(const std::vector<std::pair<std::string, std::string>>& tls, std::vector<std::string>& problems) {
    std::string ca, cert, key;
    bool verify = true;
    size_t before = problems.size();
    for (const auto& [k, v] : tls) {
        if (k == "ca") ca = v;
        else if (k == "cert") cert = v;
        else if (k == "key") key = v;
        else if (k == "verify" && (v == "true" || v == "false")) verify = v == "true";
        else if (k == "verify") problems.push_back("tls.verify must be true or false");
        else problems.push_back("unknown key '" + k + "' in tls (use ca, verify, cert, key)");
    }
    if (problems.size() != before) return nullptr;
    std::string err;
    SSL_CTX* ctx = make_client_tls(ca, verify, cert, key, &err);
    if (!ctx) problems.push_back(err);
    return ctx;
}

bool Link::wait(short events, int64_t deadline_ns) const {
    for (;;) {
        int64_t left = deadline_ns - mono_ns();
        if (left <= 0) return false;
        pollfd p{fd_, events, 0};
        int rc = ::poll(&p, 1, int(std::min<int64_t>(left / 1'000'000 + 1, 1000)));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return false;
    }
}

bool Link::wait_readable(int64_t deadline_ns) const { return fd_ >= 0 && wait(POLLIN, deadline_ns); }

std::string Link::open(const std::string& host, uint16_t port, SSL_CTX* tls, int64_t deadline_ns) {
    close();
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) return fmt::format("cannot resolve {}: {}", host, gai_strerror(rc));
    std::string err = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        fd_ = fd;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            if (wait(POLLOUT, deadline_ns)) {
                int soerr = 0;
                socklen_t len = sizeof soerr;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
                if (soerr == 0) break;
                err = std::strerror(soerr);
            } else {
                err = "connect timed out";
            }
        } else {
            err = std::strerror(errno);
        }
        ::close(fd);
        fd_ = -1;
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) return err;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!tls) return "";
    ssl_ = SSL_new(tls);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, host.c_str());
    SSL_set1_host(ssl_, host.c_str());  // the certificate must name this host (or IP) when verify is on
    for (;;) {
        int r = SSL_connect(ssl_);
        if (r == 1) return "";
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ && wait(POLLIN, deadline_ns)) continue;
        if (e == SSL_ERROR_WANT_WRITE && wait(POLLOUT, deadline_ns)) continue;
        std::string why = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? "TLS handshake timed out" : "TLS handshake failed: " + ssl_error();
        long v = SSL_get_verify_result(ssl_);
        if (v != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
        close();
        return why;
    }
}

std::string Link::write_all(std::string_view data, int64_t deadline_ns) {
    size_t off = 0;
    while (off < data.size()) {
        if (fd_ < 0) return "not connected";
        ssize_t n;
        if (ssl_) {
            int r = SSL_write(ssl_, data.data() + off, int(std::min<size_t>(data.size() - off, 1 << 30)));
            if (r > 0) {
                off += size_t(r);
                continue;
            }
            int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_WRITE && wait(POLLOUT, deadline_ns)) continue;
            if (e == SSL_ERROR_WANT_READ && wait(POLLIN, deadline_ns)) continue;
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? "write timed out" : "TLS write failed: " + ssl_error();
        }
        n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += size_t(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait(POLLOUT, deadline_ns)) return "write timed out (the server does not read)";
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return std::string("write failed: ") + std::strerror(errno);
    }
    return "";
}

ssize_t Link::read_some(char* buf, size_t n, std::string* err) {
    if (fd_ < 0) return -1;
    if (ssl_) {
        int r = SSL_read(ssl_, buf, int(n));
        if (r > 0) return r;
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        if (err) *err = e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "TLS read failed: " + ssl_error();
        return -1;
    }
    for (;;) {
        ssize_t r = ::recv(fd_, buf, n, 0);
        if (r > 0) return r;
        if (r == 0) {
            if (err) *err = "closed by the server";
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        if (err) *err = std::string("read failed: ") + std::strerror(errno);
        return -1;
    }
}

void Link::close() {
    if (ssl_) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace hbf::net
