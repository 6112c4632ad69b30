// Syslog over TCP (RFC 6587): each message is either octet-counted ("LEN SP MSG", what
// `logger --octet-count` and rsyslog's octet-counted framing send) or ends at LF (the
// "traditional" framing), decided per message by its first byte: a digit means octet-counting.
// A trailing CR (and NUL) is trimmed from LF-framed messages.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace hbf::syslog {

class Framer {
public:
    explicit Framer(size_t max_line) : max_(max_line) {}

    // Calls msg(std::string_view) for each complete message in [p, p+n) and bad(const char* why)
    // for each one refused (longer than max_line); returns how many bytes were used. The caller
    // keeps the rest and calls again with it and more bytes. `eof`: the rest is a last message.
    template <typename Msg, typename Bad>
    size_t feed(const char* p, size_t n, bool eof, Msg&& msg, Bad&& bad) {
        size_t i = 0;
        while (i < n) {
            if (skip_ > 0) {  // the rest of a refused octet-counted message
                size_t k = skip_ < n - i ? skip_ : n - i;
                skip_ -= k;
                i += k;
                continue;
            }
            if (discard_line_) {  // the rest of a refused LF-framed message
                const void* lf = std::memchr(p + i, '\n', n - i);
                if (!lf) return n;
                i = size_t(static_cast<const char*>(lf) - p) + 1;
                discard_line_ = false;
                continue;
            }
            if (p[i] >= '1' && p[i] <= '9') {
                size_t j = i, len = 0;
                while (j < n && j - i < 10 && p[j] >= '0' && p[j] <= '9') len = len * 10 + size_t(p[j++] - '0');
                if (j == n && !eof && j - i < 10) return i;  // the count is not complete yet
                if (j < n && p[j] == ' ') {
                    if (len > max_) {
                        bad("an octet-counted message is longer than max_line");
                        skip_ = len;
                        i = j + 1;
                        continue;
                    }
                    if (n - (j + 1) < len) {
                        if (eof) {
                            bad("the connection closed inside an octet-counted message");
                            return n;
                        }
                        return i;
                    }
                    msg(std::string_view(p + j + 1, len));
                    i = j + 1 + len;
                    continue;
                }
                // Digits without a space: not a count, so an LF-framed message that starts with digits.
            }
            const void* lf = std::memchr(p + i, '\n', n - i);
            size_t end = lf ? size_t(static_cast<const char*>(lf) - p) : n;
            if (end - i > max_) {
                bad("a message is longer than max_line");
                if (lf) {
                    i = end + 1;
                } else {
                    discard_line_ = !eof;
                    return n;
                }
                continue;
            }
            if (!lf && !eof) return i;
            size_t stop = end;
            while (stop > i && (p[stop - 1] == '\r' || p[stop - 1] == '\0')) --stop;
            if (stop > i) msg(std::string_view(p + i, stop - i));
            i = lf ? end + 1 : n;
        }
        return i;
    }

private:
    size_t max_;
    size_t skip_ = 0;
    bool discard_line_ = false;
};

}  // namespace hbf::syslog
