#include "json_text.h"

namespace hbf::filters {
namespace {

constexpr int kMaxDepth = 256;

// Reads from p, writes to d; the output is never longer than the input, so d needs no bound.
class Compactor {
public:
    Compactor(const char* p, const char* end, char* d) : p_(p), end_(end), d_(d) {}

    bool document() {
        skip_ws();
        if (!value(0)) return false;
        skip_ws();
        return p_ == end_;
    }
    char* written() const { return d_; }

private:
    void skip_ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }
    bool peek(char c) const { return p_ < end_ && *p_ == c; }
    static bool digit(char c) { return c >= '0' && c <= '9'; }
    static bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

    bool value(int depth) {
        if (p_ == end_) return false;
        switch (*p_) {
            case '{': return object(depth + 1);
            case '[': return array(depth + 1);
            case '"': return string();
            case 't': return literal("true", 4);
            case 'f': return literal("false", 5);
            case 'n': return literal("null", 4);
            default: return number();
        }
    }

    bool literal(const char* word, size_t n) {
        if (size_t(end_ - p_) < n) return false;
        for (size_t i = 0; i < n; ++i)
            if (p_[i] != word[i]) return false;
        for (size_t i = 0; i < n; ++i) *d_++ = *p_++;
        return true;
    }

    bool object(int depth) {
        if (depth > kMaxDepth) return false;
        *d_++ = *p_++;  // {
        skip_ws();
        if (peek('}')) {
            *d_++ = *p_++;
            return true;
        }
        for (;;) {
            if (!peek('"') || !string()) return false;
            skip_ws();
            if (!peek(':')) return false;
            *d_++ = *p_++;
            skip_ws();
            if (!value(depth)) return false;
            skip_ws();
            if (p_ == end_) return false;
            char c = *p_++;
            *d_++ = c;
            if (c == '}') return true;
            if (c != ',') return false;
            skip_ws();
        }
    }

    bool array(int depth) {
        if (depth > kMaxDepth) return false;
        *d_++ = *p_++;  // [
        skip_ws();
        if (peek(']')) {
            *d_++ = *p_++;
            return true;
        }
        for (;;) {
            if (!value(depth)) return false;
            skip_ws();
            if (p_ == end_) return false;
            char c = *p_++;
            *d_++ = c;
            if (c == ']') return true;
            if (c != ',') return false;
            skip_ws();
        }
    }

    // A \uXXXX escape at p (after the backslash and 'u' were checked): its code unit, or -1.
    long code_unit(const char* p) const {
        if (end_ - p < 4) return -1;
        long u = 0;
        for (int i = 0; i < 4; ++i) {
            char c = p[i];
            if (!hex(c)) return -1;
            u = u * 16 + (digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        return u;
    }

    bool string() {
        *d_++ = *p_++;  // opening quote
        while (p_ < end_) {
            unsigned char c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                *d_++ = *p_++;
                return true;
            }
            if (c < 0x20) return false;
            if (c != '\\') {
                *d_++ = *p_++;
                continue;
            }
            if (end_ - p_ < 2) return false;
            char e = p_[1];
            if (e == 'u') {
                long u = code_unit(p_ + 2);
                if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) return false;  // bad hex or a lone low surrogate
                size_t n = 6;
                if (u >= 0xD800 && u <= 0xDBFF) {  // a high surrogate needs its low half next
                    if (end_ - p_ < 12 || p_[6] != '\\' || p_[7] != 'u') return false;
                    long lo = code_unit(p_ + 8);
                    if (lo < 0xDC00 || lo > 0xDFFF) return false;
                    n = 12;
                }
                for (size_t i = 0; i < n; ++i) *d_++ = *p_++;
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') return false;
            *d_++ = *p_++;
            *d_++ = *p_++;
        }
        return false;  // unterminated
    }

    bool number() {
        const char* s = p_;
        if (peek('-')) ++p_;
        if (p_ == end_ || !digit(*p_)) return false;
        if (*p_ == '0') ++p_;
        else
            while (p_ < end_ && digit(*p_)) ++p_;
        if (peek('.')) {
            ++p_;
            if (p_ == end_ || !digit(*p_)) return false;
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || !digit(*p_)) return false;
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        while (s < p_) *d_++ = *s++;
        return true;
    }

    const char* p_;
    const char* end_;
    char* d_;
};

}  // namespace

bool append_json_value_compact(std::string& out, std::string_view s) {
    size_t at = out.size();
    out.resize(at + s.size());
    Compactor c(s.data(), s.data() + s.size(), out.data() + at);
    if (!c.document()) {
        out.resize(at);
        return false;
    }
    out.resize(size_t(c.written() - out.data()));
    return true;
}

}  // namespace hbf::filters
