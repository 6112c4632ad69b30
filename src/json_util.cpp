#include "json_util.h"

#include <algorithm>
#include <cstring>
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace hbf {

using namespace simdjson;

namespace {
error_code walk(ondemand::value v, int depth) {
    if (depth > 256) return DEPTH_ERROR;
    ondemand::json_type t;
    if (auto e = v.type().get(t)) return e;
    switch (t) {
        case ondemand::json_type::object: {
            ondemand::object o;
            if (auto e = v.get_object().get(o)) return e;
            for (auto field : o) {
                std::string_view k;
                if (auto e = field.unescaped_key().get(k)) return e;
                if (auto e = walk(field.value(), depth + 1)) return e;
            }
            return SUCCESS;
        }
        case ondemand::json_type::array: {
            ondemand::array a;
            if (auto e = v.get_array().get(a)) return e;
            for (auto el : a) {
                ondemand::value ev;
                if (auto e = el.get(ev)) return e;
                if (auto e = walk(ev, depth + 1)) return e;
            }
            return SUCCESS;
        }
        case ondemand::json_type::string: {
            std::string_view s;
            return v.get_string().get(s);
        }
        case ondemand::json_type::number: {
            ondemand::number n;
            return v.get_number().get(n);
        }
        case ondemand::json_type::boolean: {
            bool b;
            return v.get_bool().get(b);
        }
        case ondemand::json_type::null: {
            bool isnull;
            if (auto e = v.is_null().get(isnull)) return e;
            return isnull ? SUCCESS : INCORRECT_TYPE;
        }
    }
    return TAPE_ERROR;
}

size_t offset_of(ondemand::document& doc, const char* base, size_t len) {
    const char* loc = nullptr;
    if (doc.current_location().get(loc) == SUCCESS && loc >= base) return size_t(loc - base);
    return len;
}
}  // namespace

JsonCheck check_object(ondemand::parser& parser, const char* p, size_t len, size_t capacity) {
    JsonCheck r;
    ondemand::document doc;
    if (auto e = parser.iterate(p, len, capacity).get(doc)) {
        return {false, 0, error_message(e)};
    }
    ondemand::object obj;
    if (auto e = doc.get_object().get(obj)) {
        size_t i = 0;
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) ++i;
        return {false, i, e == INCORRECT_TYPE ? "not a JSON object" : error_message(e)};
    }
    for (auto field : obj) {
        std::string_view k;
        error_code e = field.unescaped_key().get(k);
        if (!e) e = walk(field.value(), 1);
        if (e) return {false, offset_of(doc, p, len), error_message(e)};
    }
    // At the end of the document current_location() reports OUT_OF_BOUNDS; anything else is trailing.
    const char* loc = nullptr;
    if (doc.current_location().get(loc) == SUCCESS && loc >= p && loc < p + len)
        return {false, size_t(loc - p), "trailing content after the JSON object"};
    return r;
}

namespace {
constexpr size_t kDomDepth = 200;  // < the walk's 256
}

ObjectChecker::ObjectChecker() {
    // Growth keeps this depth. Should this fail, the parser has no depth and rejects everything:
    // every text is walked, slower but with the same verdicts.
    if (dom_.allocate(4096, kDomDepth) != SUCCESS) return;
}

JsonCheck ObjectChecker::check(const char* p, size_t len, size_t capacity) {
    dom::element el;
    if (capacity >= len + SIMDJSON_PADDING && dom_.parse(reinterpret_cast<const uint8_t*>(p), len, false).get(el) == SUCCESS &&
        el.type() == dom::element_type::OBJECT)
        return {};
    return check_object(ondemand_, p, len, capacity);
}

simdjson_result<std::string_view> raw_value(ondemand::value& v) {
    ondemand::json_type t;
    if (auto e = v.type().get(t)) return e;
    if (t == ondemand::json_type::object) {
        ondemand::object o;
        if (auto e = v.get_object().get(o)) return e;
        return o.raw_json();
    }
    if (t == ondemand::json_type::array) {
        ondemand::array a;
        if (auto e = v.get_array().get(a)) return e;
        return a.raw_json();
    }
    std::string_view tok = v.raw_json_token();
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\n' || tok.back() == '\r' || tok.back() == '\t')) tok.remove_suffix(1);
    return tok;
}

namespace {
bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Byte at a time over [p, end), from and back into the string state: inside a string, after a
// backslash.
char* compact_bytes(const char* p, const char* end, char* d, bool& in_str, bool& escaped) {
    for (; p < end; ++p) {
        const char c = *p;
        if (in_str) {
            *d++ = c;
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            *d++ = c;
            in_str = true;
        } else if (!is_space(c)) {
            *d++ = c;
        }
    }
    return d;
}
}  // namespace

#ifdef __AVX2__
namespace {
// Bit i: an odd number of bits set at or below bit i.
uint32_t prefix_xor(uint32_t x) {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    return x;
}

// The quotes of a block with a backslash (or an escape pending from the block before) that open or
// close a string: its quote and backslash bits, a few per block, in order through the string state,
// which goes on into the next block.
uint32_t string_toggles(uint32_t quotes, uint32_t backslashes, bool& in_str, bool& escaped) {
    uint32_t special = quotes | backslashes, toggles = 0;
    if (escaped) {  // byte 0 is escaped: whatever it is, it is string content
        special &= ~1u;
        escaped = false;
    }
    while (special) {
        const int i = __builtin_ctz(special);
        special &= special - 1;
        if (quotes >> i & 1) {
            in_str = !in_str;
            toggles |= 1u << i;
        } else if (in_str) {  // a backslash in a string escapes the byte after it (outside one it is just a byte)
            if (i == 31) escaped = true;
            else special &= ~(2u << i);
        }
    }
    return toggles;
}
}  // namespace

// For each 8-bit mask of bytes to keep, the shuffle that moves them to the front, in order.
struct PackTable {
    uint8_t index[256][8];
};
constexpr PackTable make_pack_table() {
    PackTable t{};
    for (unsigned m = 0; m < 256; ++m) {
        unsigned k = 0;
        for (unsigned b = 0; b < 8; ++b)
            if (m >> b & 1) t.index[m][k++] = uint8_t(b);
        for (; k < 8; ++k) t.index[m][k] = 0x80;
    }
    return t;
}
alignas(64) constexpr PackTable kPack = make_pack_table();
#endif

// 32 bytes at a time with AVX2. A prefix XOR of the bits of the quotes that open or close a string
// says which bytes are inside one; whitespace outside is dropped: a block without any (all of a
// compact event's) is stored whole, one with some is packed 8 bytes at a time. In a block without
// a backslash every quote opens or closes a string; in one with a backslash, the quotes and
// backslashes go through the string state one by one (a handful per block). Before, such a block
// went byte by byte up to its last backslash: HealthBot's "_instance_id": "[\"core-isis\"]" put
// one in every event, 4-7% of the file pipeline's CPU (bench/README.md).
void append_compact(std::string& out, std::string_view json) {
    const size_t at = out.size();
    out.resize(at + json.size());
    char* d = out.data() + at;
    const char* p = json.data();
    const char* const end = p + json.size();
    bool in_str = false, escaped = false;
#ifdef __AVX2__
    const __m256i quote = _mm256_set1_epi8('"'), backslash = _mm256_set1_epi8('\\');
    const __m256i space = _mm256_set1_epi8(' '), nl = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r'), tab = _mm256_set1_epi8('\t');
    while (end - p >= 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        const uint32_t quotes = uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, quote)));
        const uint32_t bs = uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, backslash)));
        const bool was_in = in_str;
        uint32_t toggles = quotes;
        if (bs != 0 || escaped) toggles = string_toggles(quotes, bs, in_str, escaped);
        else if (__builtin_popcount(quotes) & 1) in_str = !in_str;
        uint32_t inside = prefix_xor(toggles);  // bit i: inside a string at byte i (for bytes that are not quotes)
        if (was_in) inside = ~inside;
        const __m256i ws = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, space), _mm256_cmpeq_epi8(v, nl)),
                                           _mm256_or_si256(_mm256_cmpeq_epi8(v, cr), _mm256_cmpeq_epi8(v, tab)));
        const uint32_t drop = uint32_t(_mm256_movemask_epi8(ws)) & ~inside;
        if (drop == 0) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);  // d + 32 <= the end: d never passes p
            d += 32;
        } else {  // 8 bytes at a time through a shuffle that packs the kept ones; 8-byte stores stay below p's offset + 32
            const uint32_t keep = ~drop;
            for (int k = 0; k < 32; k += 8) {
                const unsigned m = (keep >> k) & 0xFF;
                const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + k));
                const __m128i order = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kPack.index[m]));
                _mm_storel_epi64(reinterpret_cast<__m128i*>(d), _mm_shuffle_epi8(bytes, order));
                d += __builtin_popcount(m);
            }
        }
        p += 32;
    }
#endif
    d = compact_bytes(p, end, d, in_str, escaped);
    out.resize(size_t(d - out.data()));
}

void append_json_string(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 15]);
                } else {
                    out.push_back(char(c));
                }
        }
    }
    out.push_back('"');
}

}  // namespace hbf
