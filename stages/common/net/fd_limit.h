// Each connection is a file descriptor: the socket inputs (http, forward) make room for max_connections.
#pragma once

#include <cstddef>

namespace hbf::net {

// Raises the soft RLIMIT_NOFILE to `want` when it is lower and the hard limit allows (else as far
// as it allows). Failure leaves the limit as it was: accept() then reports what is wrong.
void raise_fd_limit(size_t want);

}  // namespace hbf::net
