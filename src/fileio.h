// Writing batches to a file descriptor: one write() for a dense batch, writev() otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <sys/uio.h>
#include <vector>

#include "batch.h"

namespace hbf {

// Writes every event of `b` followed by '\n'. Returns 0, or errno on failure.
int write_batch(int fd, const Batch& b);
// Writes every event of bs[0..n), in order, each followed by '\n', with as few writev() calls as
// IOV_MAX allows (a dense batch is one iovec; neighbouring events of another are coalesced).
// `iov` is the caller's scratch space, kept so that nothing is allocated once it has grown.
// Returns 0 with the bytes written in `written`, or errno on failure (what was written by then
// stays written).
int write_batches(int fd, const BatchPtr* bs, size_t n, std::vector<iovec>& iov, uint64_t& written);
// Writes all of [p, p+n), retrying short writes and EINTR. Returns 0 or errno.
int write_all(int fd, const char* p, size_t n);

}  // namespace hbf
