// Whether a short needle occurs in an event's text: memmem's answer, found faster.
//
// enrich asks this of every event for every field it adds ("\"collector\""); glibc's memmem took
// 9% of the file pipeline's CPU there (bench/README.md). With AVX2 the needle's first, middle
// and last bytes are compared at 32 positions at once, and the whole needle only where all match.
#pragma once

#include <cstring>
#include <string_view>
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace hbf::filters {

inline bool contains(std::string_view hay, std::string_view needle) {
    const size_t n = needle.size();
    if (n == 0) return true;
    if (hay.size() < n) return false;
#ifdef __AVX2__
    if (n >= 2) {
        // Two bytes of the needle, compared at 32 starts at once: its ends, or the bytes inside
        // them when the ends are alike (a quoted name's quotes match at every string).
        // From 5 bytes on, the middle byte too: with the two ends alone, memcmp of the candidates
        // took 3% of the bulk pipeline's CPU (a call per candidate, the needle's length unknown
        // at compile time); with three bytes the search for enrich's two names runs 14% faster.
        const size_t x = n >= 4 && needle.front() == needle.back() ? 1 : 0, y = n - 1 - x, z = n >= 5 ? n / 2 : x;
        const __m256i bx = _mm256_set1_epi8(needle[x]), by = _mm256_set1_epi8(needle[y]), bz = _mm256_set1_epi8(needle[z]);
        // Starts i..i+31: a match at i+31 ends at i+31+n-1, inside the haystack (z < n).
        auto block = [&](size_t i) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hay.data() + i + x));
            const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hay.data() + i + y));
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hay.data() + i + z));
            const __m256i ends = _mm256_and_si256(_mm256_cmpeq_epi8(a, bx), _mm256_cmpeq_epi8(b, by));
            uint32_t m = uint32_t(_mm256_movemask_epi8(_mm256_and_si256(ends, _mm256_cmpeq_epi8(c, bz))));
            for (; m != 0; m &= m - 1)
                if (std::memcmp(hay.data() + i + unsigned(__builtin_ctz(m)), needle.data(), n) == 0) return true;
            return false;
        };
        if (hay.size() >= n - 1 + 32) {
            const size_t last = hay.size() - (n - 1) - 32;  // the last 32 starts
            for (size_t i = 0; i < last; i += 32)
                if (block(i)) return true;
            // The starts left over, in one block that overlaps the one before: the scalar search
            // below called memcmp at every quote of that tail (3% of the bulk pipeline's CPU).
            return block(last);
        }
    }
#endif
    return hay.find(needle) != std::string_view::npos;
}

}  // namespace hbf::filters
