#include "forward/scan.h"

#include <cstring>

namespace hbf::forward {
namespace {

inline uint64_t be(const char* p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v = v << 8 | uint8_t(p[i]);
    return v;
}

// What a type byte says of the object it starts: the bytes of its length field, and the payload's
// size or the children's count (a length field, when there is one, says it instead).
struct Header {
    unsigned lenb = 0;   // bytes of the length field after the type byte
    uint64_t payload = 0, children = 0;
    bool is_map = false, is_container = false;
};

// nullptr, or why `c` starts no msgpack object.
inline const char* header_of(uint8_t c, Header& h) {
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return nullptr;
    if (c <= 0x8f) {
        h.children = c & 0x0f, h.is_map = true, h.is_container = true;
        return nullptr;
    }
    if (c <= 0x9f) {
        h.children = c & 0x0f, h.is_container = true;
        return nullptr;
    }
    if (c <= 0xbf) {
        h.payload = c & 0x1f;
        return nullptr;
    }
    switch (c) {
        case 0xc1: return "byte 0xc1 is not msgpack";
        case 0xc4: case 0xd9: h.lenb = 1; break;
        case 0xc5: case 0xda: h.lenb = 2; break;
        case 0xc6: case 0xdb: h.lenb = 4; break;
        case 0xc7: h.lenb = 1; break;  // ext: length, then a type byte
        case 0xc8: h.lenb = 2; break;
        case 0xc9: h.lenb = 4; break;
        case 0xca: h.payload = 4; break;
        case 0xcb: h.payload = 8; break;
        case 0xcc: case 0xd0: h.payload = 1; break;
        case 0xcd: case 0xd1: h.payload = 2; break;
        case 0xce: case 0xd2: h.payload = 4; break;
        case 0xcf: case 0xd3: h.payload = 8; break;
        case 0xd4: h.payload = 2; break;   // fixext: type byte + data
        case 0xd5: h.payload = 3; break;
        case 0xd6: h.payload = 5; break;
        case 0xd7: h.payload = 9; break;
        case 0xd8: h.payload = 17; break;
        case 0xdc: h.lenb = 2, h.is_container = true; break;
        case 0xdd: h.lenb = 4, h.is_container = true; break;
        case 0xde: h.lenb = 2, h.is_container = true, h.is_map = true; break;
        case 0xdf: h.lenb = 4, h.is_container = true, h.is_map = true; break;
        default: return "unknown msgpack type byte";
    }
    return nullptr;
}

}  // namespace

Scan MsgpackScanner::scan(const char* p, size_t n) {
    for (;;) {
        while (!stack_.empty() && stack_.back() == 0) stack_.pop_back();
        if (stack_.empty()) return Scan::complete;
        if (pos_ >= n) break;
        const uint8_t c = uint8_t(p[pos_]);
        Header h;
        if (const char* why = header_of(c, h)) return fail(why);
        const unsigned hl = 1 + h.lenb;  // header bytes, the type byte included
        if (h.lenb) {
            if (n - pos_ < hl) break;
            uint64_t len = be(p + pos_ + 1, h.lenb);
            if (h.is_container) h.children = len;
            else h.payload = len + (c >= 0xc7 && c <= 0xc9 ? 1 : 0);
        }
        if (h.is_map) h.children *= 2;  // at most 2^33: no overflow in 64 bits
        const size_t left = max_size_ > pos_ + hl ? max_size_ - pos_ - hl : 0;
        if (h.payload > left) return fail("a string, binary or extension longer than the frame limit");
        if (h.children > left) return fail("an array or map with more elements than the frame limit allows");
        if (n - pos_ < hl + h.payload) break;
        pos_ += hl + h.payload;
        --stack_.back();
        if (h.is_container && h.children) {
            if (stack_.size() > max_depth_) return fail("nested deeper than 64 levels");
            stack_.push_back(h.children);
        }
    }
    if (n >= max_size_) return fail("frame larger than the frame limit");
    return Scan::incomplete;
}

size_t scan_whole(MsgpackScanner& s, const char* p, size_t n, const char** why) {
    s.reset();
    s.set_max_size(n + 1);  // a truncated object reads as truncated, not as too large
    switch (s.scan(p, n)) {
        case Scan::complete: return s.size();
        case Scan::incomplete: *why = "truncated msgpack"; return 0;
        default: *why = s.error(); return 0;
    }
}

}  // namespace hbf::forward
