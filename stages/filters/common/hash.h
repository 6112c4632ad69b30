// The hashes the filters key their state on (dedupe's alarms, throttle's buckets, object values
// hashed by FieldReader). Fast and well mixed for short texts; not meant to resist chosen collisions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "field_reader.h"

namespace hbf::filters {

// Mixes a 64-bit value (splitmix64's finaliser).
inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// A 64-bit hash of a short text (names, ids): 8 bytes per multiply, then mix64. Quicker than
// std::hash on the 5-40 byte values of alarm identities.
inline uint64_t hash_text(std::string_view s) {
    const char* p = s.data();
    const size_t len = s.size();
    auto load64 = [](const char* q) { uint64_t w; std::memcpy(&w, q, 8); return w; };
    auto load32 = [](const char* q) { uint32_t w; std::memcpy(&w, q, 4); return uint64_t(w); };
    uint64_t h = 0x243f6a8885a308d3ULL ^ (uint64_t(len) * 0x9e3779b97f4a7c15ULL);
    // The tail is read with whole loads (overlapping what came before; the length is in the seed),
    // never assembled byte by byte on the stack, which a following 8-byte load would stall on.
    uint64_t tail;
    if (len >= 8) {
        for (size_t n = len; n > 8; p += 8, n -= 8) h = std::rotl((h ^ load64(p)) * 0xff51afd7ed558ccdULL, 29);
        tail = load64(s.data() + len - 8);
    } else if (len >= 4) {
        tail = (load32(p) << 32) | load32(p + len - 4);
    } else if (len > 0) {
        tail = (uint64_t(uint8_t(p[0])) << 16) | (uint64_t(uint8_t(p[len >> 1])) << 8) | uint8_t(p[len - 1]);
    } else {
        tail = 0;
    }
    return mix64(std::rotl((h ^ tail) * 0xc4ceb9fe1a85ec53ULL, 29));
}

// A field's value as one hash: a string by its unescaped text (so "a\u0062" and "ab" are one
// value), an object hashed during the read (FieldReader::hash_objects) by that order-independent
// hash, anything else by its JSON text. The kinds are salted apart: the string "1" is not the number 1.
inline uint64_t value_hash(const FieldValue& v) {
    switch (v.kind) {
        case FieldValue::Kind::missing: return 0x6d697373;
        case FieldValue::Kind::string: return hash_text(v.str) ^ 0x737472696e67ULL;
        case FieldValue::Kind::object:
            if (v.raw.empty()) return v.hash;
            [[fallthrough]];
        default: return hash_text(v.raw) ^ 0x6a736f6e00ULL;
    }
}

}  // namespace hbf::filters
