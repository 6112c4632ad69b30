#include "to_json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <msgpuck.h>
#include <simdjson.h>

#include "forward/event_time.h"

namespace hbf::forward {
namespace {

struct EscapeTable {
    bool esc[256] = {};
    constexpr EscapeTable() {
        for (int i = 0; i < 0x20; ++i) esc[i] = true;
        esc[uint8_t('"')] = esc[uint8_t('\\')] = true;
    }
};
constexpr EscapeTable kEscape;

void escape_valid(std::string& out, const char* s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t c = uint8_t(s[i]);
        if (!kEscape.esc[c]) continue;
        out.append(s + run, i - run);
        run = i + 1;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default: {
                static const char* hex = "0123456789abcdef";
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out.append(u, 6);
            }
        }
    }
    out.append(s + run, n - run);
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one.
size_t utf8_len(const uint8_t* s, size_t n) {
    const uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; ++i) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void escape_repairing(std::string& out, const char* s, size_t n) {
    const auto* u = reinterpret_cast<const uint8_t*>(s);
    size_t i = 0, run = 0;
    while (i < n) {
        size_t l = utf8_len(u + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        escape_valid(out, s + run, i - run);
        out += "\xef\xbf\xbd";  // U+FFFD
        ++i;
        run = i;
    }
    escape_valid(out, s + run, n - run);
}

void write_double(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, size_t(r.ptr - buf));
}

void write_float(std::string& out, float f) {
    if (!std::isfinite(f)) {
        out += "null";
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, f);  // shortest text that reads back as this float
    out.append(buf, size_t(r.ptr - buf));
}

// An extension: [type, data]. Type 0 with 8 bytes is an EventTime.
void write_ext(const char*& p, std::string& out) {
    const uint8_t c = uint8_t(*p++);
    uint32_t len;
    switch (c) {
        case 0xd4: len = 1; break;
        case 0xd5: len = 2; break;
        case 0xd6: len = 4; break;
        case 0xd7: len = 8; break;
        case 0xd8: len = 16; break;
        case 0xc7: len = mp_load_u8(&p); break;
        case 0xc8: len = mp_load_u16(&p); break;
        default: len = mp_load_u32(&p); break;
    }
    const int8_t type = int8_t(*p++);
    const char* data = p;
    p += len;
    if (type == 0 && len == 8) {
        const char* q = data;
        EventTime t{int64_t(mp_load_u32(&q)), 0};
        t.nsec = mp_load_u32(&q);
        out += '"';
        append_rfc3339(out, t);
        out += '"';
        return;
    }
    out += '"';
    write_base64(out, data, len);
    out += '"';
}

}  // namespace

void write_json_key(const char*& p, std::string& out, const JsonStyle& style, bool in_key) {
    switch (mp_typeof(*p)) {
        case MP_STR: case MP_BIN: {
            uint32_t n;
            const char* s = mp_decode_strbin(&p, &n);
            write_json_string(out, s, n);
            return;
        }
        default: {
            // Rare: a key that is a number, bool, nil, array or map; its JSON text is the key. A
            // map or an array as a key inside such a key (in_key) is written as "[map]" / "[array]":
            // escaping each level's text again doubles it (40 nested map keys would need 2^40 bytes).
            const auto type = mp_typeof(*p);
            if (in_key && (type == MP_MAP || type == MP_ARRAY)) {
                mp_next(&p);
                out += type == MP_MAP ? "\"[map]\"" : "\"[array]\"";
                return;
            }
            std::string text;
            write_json(p, text, style, true);
            if (text.size() >= 2 && text.front() == '"') out += text;
            else write_json_string(out, text.data(), text.size());
        }
    }
}

void write_base64(std::string& out, const char* s, size_t n) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
        out.append(q, 4);
    }
    if (i + 1 == n) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16;
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], '=', '='};
        out.append(q, 4);
    } else if (i + 2 == n) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
        out.append(q, 4);
    }
}

void write_json_string(std::string& out, const char* s, size_t n) {
    out += '"';
    if (simdjson::validate_utf8(s, n)) escape_valid(out, s, n);
    else escape_repairing(out, s, n);
    out += '"';
}

bool msgpack_str_equals(const char* p, std::string_view s) {
    const auto t = mp_typeof(*p);
    if (t != MP_STR && t != MP_BIN) return false;
    uint32_t n;
    const char* d = mp_decode_strbin(&p, &n);
    return n == s.size() && std::memcmp(d, s.data(), n) == 0;
}

void write_json(const char*& p, std::string& out, const JsonStyle& style, bool in_key) {
    char num[24];
    switch (mp_typeof(*p)) {
        case MP_NIL: mp_decode_nil(&p); out += "null"; return;
        case MP_BOOL: out += mp_decode_bool(&p) ? "true" : "false"; return;
        case MP_UINT: {
            auto r = std::to_chars(num, num + sizeof num, mp_decode_uint(&p));
            out.append(num, size_t(r.ptr - num));
            return;
        }
        case MP_INT: {
            auto r = std::to_chars(num, num + sizeof num, mp_decode_int(&p));
            out.append(num, size_t(r.ptr - num));
            return;
        }
        case MP_FLOAT: write_float(out, mp_decode_float(&p)); return;
        case MP_DOUBLE: write_double(out, mp_decode_double(&p)); return;
        case MP_STR: {
            uint32_t n;
            const char* s = mp_decode_str(&p, &n);
            write_json_string(out, s, n);
            return;
        }
        case MP_BIN: {
            uint32_t n;
            const char* s = mp_decode_bin(&p, &n);
            if (style.bin_base64) {
                out += '"';
                write_base64(out, s, n);
                out += '"';
            } else {
                write_json_string(out, s, n);
            }
            return;
        }
        case MP_ARRAY: {
            uint32_t n = mp_decode_array(&p);
            out += '[';
            for (uint32_t i = 0; i < n; ++i) {
                if (i) out += ',';
                write_json(p, out, style, in_key);
            }
            out += ']';
            return;
        }
        case MP_MAP: {
            uint32_t n = mp_decode_map(&p);
            out += '{';
            for (uint32_t i = 0; i < n; ++i) {
                if (i) out += ',';
                write_json_key(p, out, style, in_key);
                out += ':';
                write_json(p, out, style, in_key);
            }
            out += '}';
            return;
        }
        case MP_EXT: write_ext(p, out); return;
    }
}

}  // namespace hbf::forward
