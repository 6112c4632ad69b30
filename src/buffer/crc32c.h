// CRC32C (Castagnoli, the iSCSI polynomial), as in RFC 3720: crc32c("123456789") = 0xE3069283.
//
// Backed by Intel ISA-L's crc32_iscsi, which picks the SSE4.2/PCLMUL kernel at run time
// (several GB/s). ISA-L neither inverts the seed nor the result; these wrappers do, so the
// values match every other CRC32C (python3-crc32c, Kafka, ext4) and chain: crc32c(b, crc32c(a))
// is the CRC of a followed by b.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hbf::buffer {

uint32_t crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace hbf::buffer
