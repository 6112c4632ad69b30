#include "lines.h"

#include <cstring>

namespace hbf {

size_t LineSplitter::emit(std::string_view line, Batch& b) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return 0;
    if (line.size() > max_line_) return 1;
    b.append(line);
    return 0;
}

size_t LineSplitter::feed(const char* p, size_t n, Batch& b) {
    size_t dropped = 0;
    const char* end = p + n;
    while (p < end) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
        if (!nl) {
            if (!skipping_) {
                carry_.append(p, size_t(end - p));
                if (carry_.size() > max_line_) {
                    carry_.clear();
                    skipping_ = true;
                    ++dropped;
                }
            }
            break;
        }
        if (skipping_) {
            skipping_ = false;
        } else if (!carry_.empty()) {
            carry_.append(p, size_t(nl - p));
            dropped += emit(carry_, b);
            carry_.clear();
        } else {
            dropped += emit(std::string_view(p, size_t(nl - p)), b);
        }
        p = nl + 1;
    }
    return dropped;
}

size_t LineSplitter::finish(Batch& b) {
    size_t d = 0;
    if (!carry_.empty() && !skipping_) d = emit(carry_, b);
    reset();
    return d;
}

}  // namespace hbf
