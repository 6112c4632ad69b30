#include "fileio.h"

#include <cerrno>
#include <climits>
#include <unistd.h>

namespace hbf {

namespace {

// Writes iov[0..) whole, resuming after a short write (which consumes the iovecs it covered).
int writev_all(int fd, std::vector<iovec>& iov) {
    size_t k = 0;
    while (k < iov.size()) {
        ssize_t w = ::writev(fd, iov.data() + k, int(iov.size() - k));
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        size_t left = size_t(w);
        while (k < iov.size() && left >= iov[k].iov_len) left -= iov[k++].iov_len;
        if (left) {
            iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
            iov[k].iov_len -= left;
        }
    }
    return 0;
}

// Appends [p, p+len) to `iov`, coalesced with the last iovec when it ends at p; a full `iov`
// (IOV_MAX) is written out first.
int add_iov(int fd, std::vector<iovec>& iov, const char* p, size_t len) {
    char* q = const_cast<char*>(p);
    if (!iov.empty() && static_cast<char*>(iov.back().iov_base) + iov.back().iov_len == q) {
        iov.back().iov_len += len;
        return 0;
    }
    if (iov.size() == IOV_MAX) {
        if (int err = writev_all(fd, iov)) return err;
        iov.clear();
    }
    iov.push_back({q, len});
    return 0;
}

// The iovecs of one batch: its whole buffer when dense, else each event and its newline. Adds
// the batch's bytes to `bytes`.
int add_batch(int fd, std::vector<iovec>& iov, const Batch& b, uint64_t& bytes) {
    if (b.empty()) return 0;
    if (b.dense()) {
        bytes += b.buf.size();
        return add_iov(fd, iov, b.buf.data(), b.buf.size());
    }
    for (const auto& e : b.events) {
        bytes += e.len + 1;
        if (int err = add_iov(fd, iov, b.buf.data() + e.off, e.len + 1)) return err;
    }
    return 0;
}

}  // namespace

int write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= size_t(w);
    }
    return 0;
}

int write_batch(int fd, const Batch& b) {
    if (b.empty()) return 0;
    if (b.dense()) return write_all(fd, b.buf.data(), b.buf.size());
    thread_local std::vector<iovec> iov;
    iov.clear();
    uint64_t bytes = 0;
    if (int err = add_batch(fd, iov, b, bytes)) return err;
    return writev_all(fd, iov);
}

int write_batches(int fd, const BatchPtr* bs, size_t n, std::vector<iovec>& iov, uint64_t& written) {
    iov.clear();
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; ++i)
        if (int err = add_batch(fd, iov, *bs[i], bytes)) return err;
    if (int err = iov.empty() ? 0 : writev_all(fd, iov)) return err;
    written = bytes;
    return 0;
}

}  // namespace hbf
