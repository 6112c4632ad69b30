#include "field_path.h"

#include <stdexcept>

namespace hbf::filters {
namespace {

bool bare_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '@' ||
           c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | (cp >> 6)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | (cp >> 12)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (cp >> 18)));
        out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    }
}

bool read_hex4(std::string_view t, size_t p, uint32_t& v) {
    if (p + 4 > t.size()) return false;
    v = 0;
    for (size_t i = 0; i < 4; ++i) {
        int h = hexval(t[p + i]);
        if (h < 0) return false;
        v = v << 4 | uint32_t(h);
    }
    return true;
}

// The \\u escape at t[pos] (a surrogate pair takes two) appended to `out` as UTF-8; returns the
// bytes it took, 0 with `err` set when it is not four hex digits or a lone surrogate.
size_t unicode_escape(std::string_view t, size_t pos, std::string& out, PathError& err) {
    uint32_t cp;
    if (!read_hex4(t, pos + 2, cp)) {
        err = {pos + 1, "\\u needs four hex digits"};
        return 0;
    }
    size_t used = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo;
        if (pos + 7 < t.size() && t[pos + 6] == '\\' && t[pos + 7] == 'u' && read_hex4(t, pos + 8, lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        } else {
            err = {pos + 1, "unpaired UTF-16 surrogate in \\u escape"};
            return 0;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        err = {pos + 1, "unpaired UTF-16 surrogate in \\u escape"};
        return 0;
    }
    append_utf8(out, cp);
    return used;
}

}  // namespace

bool parse_json_string(std::string_view t, size_t& pos, std::string& out, PathError& err) {
    size_t start = pos;
    if (pos >= t.size() || t[pos] != '"') {
        err = {pos + 1, "expected '\"'"};
        return false;
    }
    ++pos;
    out.clear();
    while (pos < t.size()) {
        char c = t[pos];
        if (c == '"') {
            ++pos;
            return true;
        }
        if (static_cast<unsigned char>(c) < 0x20) {
            err = {pos + 1, "control character in a string (write it as an escape such as \\n)"};
            return false;
        }
        if (c != '\\') {
            out.push_back(c);
            ++pos;
            continue;
        }
        if (pos + 1 >= t.size()) break;
        char e = t[pos + 1];
        switch (e) {
            case '"': out.push_back('"'); break;
            case '\\': out.push_back('\\'); break;
            case '/': out.push_back('/'); break;
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                size_t used = unicode_escape(t, pos, out, err);
                if (used == 0) return false;
                pos += used;
                continue;
            }
            default:
                err = {pos + 1, std::string("unknown escape '\\") + e + "'"};
                return false;
        }
        pos += 2;
    }
    err = {start + 1, "unterminated string"};
    return false;
}

bool parse_path(std::string_view t, size_t& pos, bool need_dot, FieldPath& out, PathError& err) {
    size_t start = pos;
    out.segments.clear();
    bool first = true;
    while (true) {
        if (pos < t.size() && t[pos] == '[') {
            if (first) {
                err = {pos + 1, "a field path starts with '.' and a name"};
                return false;
            }
            size_t p = pos + 1;
            long v = 0;
            size_t digits = 0;
            while (p < t.size() && t[p] >= '0' && t[p] <= '9' && digits < 9) v = v * 10 + (t[p++] - '0'), ++digits;
            if (digits == 0 || p >= t.size() || t[p] != ']') {
                err = {pos + 1, "expected an array index such as [0]"};
                return false;
            }
            out.segments.push_back({"", v});
            pos = p + 1;
            continue;
        }
        bool dot = pos < t.size() && t[pos] == '.';
        if (!dot && !(first && !need_dot)) break;
        if (dot) ++pos;
        if (pos < t.size() && t[pos] == '"') {
            PathSegment s;
            if (!parse_json_string(t, pos, s.name, err)) return false;
            out.segments.push_back(std::move(s));
        } else {
            size_t b = pos;
            while (pos < t.size() && bare_char(t[pos])) ++pos;
            if (pos == b) {
                err = {pos + 1, first && dot && pos >= t.size() ? "expected a field name after '.'"
                                                                 : "expected a field name (quote names holding dots or spaces: .\"a.b\")"};
                return false;
            }
            out.segments.push_back({std::string(t.substr(b, pos - b)), -1});
        }
        first = false;
    }
    if (out.segments.empty()) {
        err = {start + 1, "expected a field path such as .severity"};
        return false;
    }
    out.text = std::string(t.substr(start, pos - start));
    return true;
}

FieldPath parse_path_option(std::string_view text) {
    FieldPath p;
    PathError err;
    size_t pos = 0;
    if (!parse_path(text, pos, false, p, err))
        throw std::invalid_argument("column " + std::to_string(err.column) + ": " + err.message);
    if (pos != text.size())
        throw std::invalid_argument("column " + std::to_string(pos + 1) + ": unexpected '" + std::string(1, text[pos]) +
                                    "' in field path (quote names holding other characters: \"a b\")");
    return p;
}

}  // namespace hbf::filters
