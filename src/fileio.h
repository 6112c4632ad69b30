// Writing a batch to a file descriptor: one write() for a dense batch, writev() otherwise.
#pragma once

#include <string>

#include "batch.h"

namespace hbf {

// Writes every event of `b` followed by '\n'. Returns 0, or errno on failure.
int write_batch(int fd, const Batch& b);
// Writes all of [p, p+n), retrying short writes and EINTR. Returns 0 or errno.
int write_all(int fd, const char* p, size_t n);

}  // namespace hbf
