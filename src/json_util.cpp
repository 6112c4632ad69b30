#include "json_util.h"

#include <algorithm>
#include <cstring>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "string_util.h"

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

namespace {
constexpr size_t kWalkDepth = 128;  // < the DOM pass's 200: deeper texts go the slow way

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// [s, e) is a JSON number that every parser takes as it is: at most 18 digits, no exponent (so no
// overflow, no rounding to infinity or zero). Anything else is left to the slow path.
bool plain_number(const uint8_t* s, const uint8_t* e) {
    const uint8_t* p = s;
    if (p < e && *p == '-') ++p;
    if (p == e) return false;
    const uint8_t* const first = p;
    if (*p == '0') ++p;
    else if (*p >= '1' && *p <= '9') while (p < e && is_digit(*p)) ++p;
    else return false;
    size_t digits = size_t(p - first);
    if (p < e && *p == '.') {
        const uint8_t* const frac = ++p;
        while (p < e && is_digit(*p)) ++p;
        if (p == frac) return false;
        digits += size_t(p - frac);
    }
    return p == e && digits <= 18;
}

// Copies the string literal that opens at s (its quote) to d, checking it: every escape valid, the
// closing quote before `limit` (the next structural index). Stage 1 checked UTF-8 and control
// characters. \u escapes of surrogates go the slow way (the pairing rules). Returns where the copy
// ends, nullptr when the walk cannot take the string. With AVX2, 32 bytes at a time: it reads and
// writes up to 31 bytes past the closing quote (inside simdjson's padding, and the output's 32
// spare bytes).
[[gnu::always_inline]] inline char* copy_string(char* d, const uint8_t* s, const uint8_t* limit) {
    const uint8_t* p = s + 1;
    *d = '"';
    for (;;) {
        if (p >= limit) return nullptr;
#ifdef __AVX2__
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (p - s)), v);
        const uint32_t m = uint32_t(_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')), _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')))));
        if (m == 0) {
            p += 32;
            continue;
        }
        p += __builtin_ctz(m);
#else
        d[p - s] = char(*p);
        if (*p != '"' && *p != '\\') {
            ++p;
            continue;
        }
#endif
        if (*p == '"') return d + (p - s) + 1;
        const uint8_t* const esc = p;
        switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': p += 2; break;
            case 'u': {
                int cp = 0;
                for (int k = 2; k < 6; ++k) {
                    const int h = hex_value(p[k]);
                    if (h < 0) return nullptr;
                    cp = cp << 4 | h;
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) return nullptr;
                p += 6;
                break;
            }
            default: return nullptr;
        }
        if (p > limit) return nullptr;
        std::memcpy(d + (esc - s), esc, size_t(p - esc));  // the escape (the AVX2 store had it, unless it crossed the block)
    }
}

// Copies [s, e) to d with 32-byte stores (d has 32 bytes to spare; s may be read 31 bytes past e).
[[gnu::always_inline]] inline char* copy_token(char* d, const uint8_t* s, const uint8_t* e) {
    const size_t n = size_t(e - s);
#ifdef __AVX2__
    for (size_t k = 0; k < n; k += 32)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + k)));
#else
    std::memcpy(d, s, n);
#endif
    return d + n;
}

// true, false, null or a number, exactly [s, e).
bool plain_scalar(const uint8_t* s, const uint8_t* e) {
    switch (*s) {
        case 't': return e - s == 4 && std::memcmp(s, "true", 4) == 0;
        case 'f': return e - s == 5 && std::memcmp(s, "false", 5) == 0;
        case 'n': return e - s == 4 && std::memcmp(s, "null", 4) == 0;
        default: return plain_number(s, e);
    }
}

// The grammar over stage 1's structural indexes (n of them), copying each token to d as it is
// checked; returns the end of the copy, nullptr when the text is not one object the walk can take.
// Each index starts a token: an operator, a string (at its opening quote) or a scalar. By how
// stage 1 marks them, only whitespace can follow an operator or a string's closing quote before
// the next index (any other byte there would start a token, hence have an index of its own), and
// it is dropped; a scalar runs up to the next index less that whitespace, and must be exactly
// true, false, null or a number. One loop with the container stack in an array, not recursion:
// every store through d may alias what a member or a reference points at, not a local.
char* walk_indexes(const uint8_t* buf, size_t len, const uint32_t* idx, uint32_t n, char* d) {
    bool in_array[kWalkDepth];
    size_t depth = 0;
    uint32_t i = 0;
    const uint8_t* s = nullptr;  // the current token
    auto next = [&]() __attribute__((always_inline)) {
        if (i == n) return false;
        s = buf + idx[i++];
        return true;
    };
    auto limit = [&]() __attribute__((always_inline)) { return buf + (i < n ? idx[i] : len); };  // where the current token's run ends
    auto key = [&]() __attribute__((always_inline)) {  // a member's key and colon; then the next token, its value
        if (*s != '"' || !(d = copy_string(d, s, limit())) || !next() || *s != ':') return false;
        *d++ = ':';
        return next();
    };
    if (!next() || *s != '{') return nullptr;
    for (;;) {  // s starts a value
        if (*s == '{' || *s == '[') {
            if (depth == kWalkDepth) return nullptr;
            const bool array = *s == '[';
            in_array[depth++] = array;
            *d++ = char(*s);
            if (!next()) return nullptr;
            if (*s != (array ? ']' : '}')) {  // not empty: its first value
                if (!array && !key()) return nullptr;
                continue;
            }
        } else if (*s == '"') {
            if (!(d = copy_string(d, s, limit())) || !next()) return nullptr;
        } else {
            const uint8_t* e = limit();
            while (e > s + 1 && is_space(char(e[-1]))) --e;
            if (!plain_scalar(s, e)) return nullptr;
            d = copy_token(d, s, e);
            if (!next()) return nullptr;
        }
        for (;;) {  // s follows a value (or opened an empty container): a comma or a closing
            const bool array = in_array[depth - 1];
            if (*s == ',') {
                *d++ = ',';
                if (!next() || (!array && !key())) return nullptr;
                break;
            }
            if (*s != (array ? ']' : '}')) return nullptr;
            *d++ = char(*s);
            if (--depth == 0) return i == n ? d : nullptr;  // the root closed: nothing may follow
            if (!next()) return nullptr;
        }
    }
}
}  // namespace

bool ObjectChecker::walk_indexes(const uint8_t* buf, size_t len, std::string& out) {
    const size_t at = out.size();
    resize_uninitialized(out, at + len + 32);  // the copies' 32-byte stores may pass the end by 31
    if (char* end = hbf::walk_indexes(buf, len, dom_.implementation->structural_indexes.get(),
                                      dom_.implementation->n_structural_indexes, out.data() + at)) {
        out.resize(size_t(end - out.data()));
        return true;
    }
    out.resize(at);
    return false;
}

JsonCheck ObjectChecker::append_compact_if_valid(std::string& out, const char* p, size_t len, size_t capacity) {
    const auto* buf = reinterpret_cast<const uint8_t*>(p);
    if (capacity >= len + SIMDJSON_PADDING && dom_.implementation && (len <= dom_.capacity() || dom_.allocate(len, kDomDepth) == SUCCESS) &&
        dom_.implementation->stage1(buf, len, stage1_mode::regular) == SUCCESS && walk_indexes(buf, len, out)) {
        ++one_pass_;
        return {};
    }
    JsonCheck chk = check(p, len, capacity);
    if (chk.ok) append_compact(out, std::string_view(p, len));
    return chk;
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
    resize_uninitialized(out, at + json.size());  // written below, then cut to what was
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
