#include "json_util.h"

#include <cstring>

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

void append_compact(std::string& out, std::string_view json) {
    size_t at = out.size();
    out.resize(at + json.size());
    char* d = out.data() + at;
    const char* p = json.data();
    const char* end = p + json.size();
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            *d++ = c;
            // Copy the string through its closing quote; escapes are two bytes.
            while (p < end) {
                const char* q = static_cast<const char*>(std::memchr(p, '"', size_t(end - p)));
                if (!q) q = end;
                // Count backslashes before the quote: an odd number escapes it.
                const char* b = q;
                while (b > p && b[-1] == '\\') --b;
                bool escaped = ((q - b) & 1) != 0;
                size_t n = size_t(q - p) + (q < end ? 1 : 0);
                std::memcpy(d, p, n);
                d += n;
                p += n;
                if (!escaped) break;
            }
        } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            *d++ = c;
        }
    }
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
