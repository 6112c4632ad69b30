#include "fileio.h"

#include <cerrno>
#include <climits>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace hbf {

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
    size_t i = 0;
    while (i < b.size()) {
        iov.clear();
        // Coalesce neighbouring events into one iovec.
        while (i < b.size() && iov.size() < IOV_MAX) {
            const auto& e = b.events[i];
            char* p = const_cast<char*>(b.buf.data()) + e.off;
            size_t len = e.len + 1;
            if (!iov.empty() && static_cast<char*>(iov.back().iov_base) + iov.back().iov_len == p) iov.back().iov_len += len;
            else iov.push_back({p, len});
            ++i;
        }
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
    }
    return 0;
}

}  // namespace hbf
