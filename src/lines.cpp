#include "lines.h"

#include <cstring>

#include "string_util.h"

namespace hbf {

void LineSplitter::begin(Batch& b) {
    b.reserve_more(carry_.size());
    next_ = line_ = b.buf.size();
    b.buf.append(carry_);
    carry_.clear();
}

char* LineSplitter::room(Batch& b, size_t n) {
    b.reserve_more(n);
    room_ = n;
    resize_uninitialized(b.buf, b.buf.size() + n);  // read() writes them; commit() cuts what it did not
    return b.buf.data() + b.buf.size() - n;
}

size_t LineSplitter::commit(Batch& b, size_t got) {
    std::string& buf = b.buf;
    const size_t end = buf.size() - room_ + got;
    buf.resize(end);  // shrinking: no copy, the padding stays reserved
    char* base = buf.data();
    size_t from = end - got, dropped = 0;  // the unfinished line has no newline before `from`
    room_ = 0;
    while (const void* nl = std::memchr(base + from, '\n', end - from)) {
        const size_t e = size_t(static_cast<const char*>(nl) - base);
        size_t len = e - line_;
        if (len > 0 && base[e - 1] == '\r') --len;
        if (skipping_) {
            skipping_ = false;  // the newline that ends an over-long line
        } else if (len > max_line_) {
            ++dropped;
        } else if (len > 0) {
            if (line_ != next_) {  // a line was cut out before this one: move this one down
                std::memmove(base + next_, base + line_, len);
                base[next_ + len] = '\n';
            } else if (len != e - line_) {
                base[next_ + len] = '\n';  // over the CR; the events stay back to back below
            }
            b.events.push_back({uint32_t(next_), uint32_t(len)});
            next_ += len + 1;
        }
        line_ = from = e + 1;
    }
    // The unfinished line is too long (it may still end in the CR of a CRLF): forget its bytes.
    if (skipping_ || end - line_ > max_line_ + 1) {
        if (!skipping_) ++dropped;
        skipping_ = true;
        line_ = end;
    }
    if (line_ != next_) {  // close the gap before the unfinished line
        std::memmove(base + next_, base + line_, end - line_);
        buf.resize(next_ + end - line_);
        line_ = next_;
    }
    return dropped;
}

void LineSplitter::end(Batch& b) {
    carry_.assign(b.buf, line_, std::string::npos);
    b.buf.resize(line_);
}

size_t LineSplitter::feed(const char* p, size_t n, Batch& b) {
    begin(b);
    std::memcpy(room(b, n), p, n);
    size_t dropped = commit(b, n);
    end(b);
    return dropped;
}

size_t LineSplitter::finish(Batch& b) {
    // The newline the input lacked: the last line then goes by commit()'s rules, as any other.
    size_t d = feed("\n", 1, b);
    reset();
    return d;
}

}  // namespace hbf
