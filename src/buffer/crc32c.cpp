#include "buffer/crc32c.h"

#include <climits>
#include <isa-l/crc.h>

namespace hbf::buffer {

uint32_t crc32c(const void* data, size_t len, uint32_t crc) {
    auto* p = static_cast<unsigned char*>(const_cast<void*>(data));  // ISA-L takes a non-const pointer; it only reads
    uint32_t c = ~crc;
    while (len > 0) {  // crc32_iscsi takes an int length
        int n = len > size_t(INT_MAX) ? INT_MAX : int(len);
        c = crc32_iscsi(p, n, c);
        p += n;
        len -= size_t(n);
    }
    return ~c;
}

}  // namespace hbf::buffer
