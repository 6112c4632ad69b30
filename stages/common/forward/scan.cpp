#include "forward/scan.h"

#include <cstring>

namespace hbf::forward {
namespace {

inline uint64_t be(const char* p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v = v << 8 | uint8_t(p[i]);
    return v;
}

}  // namespace

Scan MsgpackScanner::scan(const char* p, size_t n) {
    for (;;) {
        while (!stack_.empty() && stack_.back() == 0) stack_.pop_back();
        if (stack_.empty()) return Scan::complete;
        if (pos_ >= n) break;
        const uint8_t c = uint8_t(p[pos_]);
        unsigned hl = 1;     // header bytes, the type byte included
        unsigned lenb = 0;   // bytes of the length field after the type byte
        uint64_t payload = 0, children = 0;
        bool is_map = false, is_container = false;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c <= 0x8f) {
            children = c & 0x0f, is_map = true, is_container = true;
        } else if (c <= 0x9f) {
            children = c & 0x0f, is_container = true;
        } else if (c <= 0xbf) {
            payload = c & 0x1f;
        } else {
            switch (c) {
                case 0xc1: return fail("byte 0xc1 is not msgpack");
                case 0xc4: case 0xd9: lenb = 1; break;
                case 0xc5: case 0xda: lenb = 2; break;
                case 0xc6: case 0xdb: lenb = 4; break;
                case 0xc7: lenb = 1, hl = 1; break;  // ext: length, then a type byte
                case 0xc8: lenb = 2, hl = 1; break;
                case 0xc9: lenb = 4, hl = 1; break;
                case 0xca: payload = 4; break;
                case 0xcb: payload = 8; break;
                case 0xcc: case 0xd0: payload = 1; break;
                case 0xcd: case 0xd1: payload = 2; break;
                case 0xce: case 0xd2: payload = 4; break;
                case 0xcf: case 0xd3: payload = 8; break;
                case 0xd4: payload = 2; break;   // fixext: type byte + data
                case 0xd5: payload = 3; break;
                case 0xd6: payload = 5; break;
                case 0xd7: payload = 9; break;
                case 0xd8: payload = 17; break;
                case 0xdc: lenb = 2, is_container = true; break;
                case 0xdd: lenb = 4, is_container = true; break;
                case 0xde: lenb = 2, is_container = true, is_map = true; break;
                case 0xdf: lenb = 4, is_container = true, is_map = true; break;
                default: return fail("unknown msgpack type byte");
            }
        }
        if (lenb) {
            if (n - pos_ < 1 + lenb) break;
            uint64_t len = be(p + pos_ + 1, lenb);
            hl = 1 + lenb;
            if (is_container) children = len;
            else payload = len + (c >= 0xc7 && c <= 0xc9 ? 1 : 0);
        }
        if (is_map) children *= 2;  // at most 2^33: no overflow in 64 bits
        const size_t left = max_size_ > pos_ + hl ? max_size_ - pos_ - hl : 0;
        if (payload > left) return fail("a string, binary or extension longer than the frame limit");
        if (children > left) return fail("an array or map with more elements than the frame limit allows");
        if (n - pos_ < hl + payload) break;
        pos_ += hl + payload;
        --stack_.back();
        if (is_container && children) {
            if (stack_.size() > max_depth_) return fail("nested deeper than 64 levels");
            stack_.push_back(children);
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
