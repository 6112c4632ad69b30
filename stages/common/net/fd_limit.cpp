#include "net/fd_limit.h"

#include <algorithm>
#include <sys/resource.h>

namespace hbf::net {

void raise_fd_limit(size_t want) {
    rlimit rl{};
    const rlim_t n = rlim_t(want);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = std::min(n, rl.rlim_max);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace hbf::net
