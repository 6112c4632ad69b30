#include "body.h"

#include <cstring>

#include "json_util.h"

namespace hbf::http {

using namespace simdjson;

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// The media type without parameters ("application/json; charset=utf-8" -> "application/json").
std::string_view media_type(std::string_view ct) {
    if (size_t semi = ct.find(';'); semi != std::string_view::npos) ct = ct.substr(0, semi);
    return trim(ct);
}

// Appends one object compacted, with `extra` members spliced before its closing brace, when it is
// a valid JSON object (validated and compacted in one pass). Returns the check's verdict: when not
// ok, nothing was appended.
JsonCheck append_event(ObjectChecker& checker, const char* p, size_t n, size_t capacity, std::string_view extra, Batch& out) {
    out.reserve_more(n + extra.size() + 2);
    out.begin_event();
    JsonCheck chk = checker.append_compact_if_valid(out.buf, p, n, capacity);
    if (!chk.ok) {
        out.cancel_event();
        return chk;
    }
    if (!extra.empty() && out.buf.back() == '}') {
        out.buf.pop_back();
        if (out.buf.back() == '{') extra.remove_prefix(1);  // an empty object takes no comma
        out.buf.append(extra);
        out.buf.push_back('}');
    }
    out.finish_event();
    return chk;
}

// Where the first top-level value of [p, p+len) ends (one past its last byte), skipping strings;
// len when it does not end.
size_t value_end(const char* p, size_t len) {
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; ++i) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return len;
}

// checker.check()'s verdict `chk` on [p, p+len), with a precise offset for trailing content:
// simdjson reports a root object followed by anything as an error of the whole document, at byte 0.
JsonCheck pinpoint(ObjectChecker& checker, JsonCheck chk, const char* p, size_t len, size_t capacity) {
    if (chk.ok || chk.offset != 0) return chk;
    size_t first = 0;
    while (first < len && is_space(p[first])) ++first;
    if (first == len || p[first] != '{') return chk;
    size_t end = value_end(p, len);
    if (end == len) return {false, len, "the JSON object is not closed"};
    JsonCheck head = checker.check(p, end, capacity);
    if (!head.ok) return head;
    size_t next = end;
    while (next < len && is_space(p[next])) ++next;
    if (next == len) return chk;
    return {false, next, "trailing content after the JSON object"};
}

struct Rollback {
    Batch& b;
    size_t bytes, events;
    void operator()() const {
        b.buf.resize(bytes);
        b.events.resize(events);
    }
};

BodyResult fail(const Rollback& rb, size_t offset, const char* message) {
    rb();
    BodyResult r;
    r.ok = false;
    r.offset = offset;
    r.message = message;
    return r;
}

BodyResult append_array(BodyParsers& ps, const char* p, size_t len, size_t capacity, std::string_view extra, Batch& out,
                        const Rollback& rb) {
    BodyResult r;
    ondemand::document doc;
    if (auto e = ps.outer.iterate(p, len, capacity).get(doc)) return fail(rb, 0, error_message(e));
    auto where = [&](size_t dflt) {
        const char* loc = nullptr;
        if (doc.current_location().get(loc) == SUCCESS && loc >= p && loc <= p + len) return size_t(loc - p);
        return dflt;
    };
    ondemand::array arr;
    if (auto e = doc.get_array().get(arr)) return fail(rb, where(0), error_message(e));
    for (auto el : arr) {
        ondemand::value v;
        if (auto e = el.get(v)) return fail(rb, where(len), error_message(e));
        ondemand::json_type t;
        if (auto e = v.type().get(t)) return fail(rb, where(len), error_message(e));
        if (t != ondemand::json_type::object) {
            std::string_view tok = v.raw_json_token();
            return fail(rb, tok.data() >= p ? size_t(tok.data() - p) : where(len), "array element is not a JSON object");
        }
        ondemand::object o;
        std::string_view raw;
        if (auto e = v.get_object().get(o)) return fail(rb, where(len), error_message(e));
        if (auto e = o.raw_json().get(raw)) return fail(rb, where(len), error_message(e));
        const size_t off = size_t(raw.data() - p);
        JsonCheck chk = append_event(ps.inner, raw.data(), raw.size(), capacity - off, extra, out);
        if (!chk.ok) return fail(rb, off + chk.offset, chk.message);
        ++r.events;
    }
    // Anything after the closing bracket is an error; at the very end the location is out of bounds.
    const char* loc = nullptr;
    if (doc.current_location().get(loc) == SUCCESS && loc >= p && loc < p + len)
        return fail(rb, size_t(loc - p), "trailing content after the JSON array");
    return r;
}

BodyResult append_ndjson(BodyParsers& ps, const char* p, size_t len, size_t capacity, std::string_view extra, Batch& out,
                         const Rollback& rb) {
    BodyResult r;
    size_t start = 0;
    while (start < len) {
        const void* nl = std::memchr(p + start, '\n', len - start);
        size_t end = nl ? size_t(static_cast<const char*>(nl) - p) : len;
        size_t a = start, b = end;
        while (a < b && is_space(p[a])) ++a;
        while (b > a && is_space(p[b - 1])) --b;
        if (b > a) {
            JsonCheck chk = append_event(ps.inner, p + a, b - a, capacity - a, extra, out);
            if (!chk.ok) {
                chk = pinpoint(ps.inner, chk, p + a, b - a, capacity - a);
                return fail(rb, a + chk.offset, chk.message);
            }
            ++r.events;
        }
        start = end + 1;
    }
    if (r.events == 0) return fail(rb, 0, "empty body");
    return r;
}

}  // namespace

BodyFormat format_of(std::string_view content_type) {
    // A table of string_views, not a list of literals: that list measured each with strlen per request.
    static constexpr std::string_view kNdjson[] = {"application/x-ndjson", "application/ndjson", "application/jsonl",
                                                   "application/x-jsonlines", "application/jsonlines"};
    std::string_view mt = media_type(content_type);
    for (std::string_view nd : kNdjson)
        if (iequals(mt, nd)) return BodyFormat::ndjson;
    return BodyFormat::json;
}

Encoding encoding_of(std::string_view ce) {
    ce = trim(ce);
    if (ce.empty() || iequals(ce, "identity")) return Encoding::identity;
    if (iequals(ce, "gzip") || iequals(ce, "x-gzip") || iequals(ce, "deflate")) return Encoding::gzip;
    return Encoding::unsupported;
}

BodyResult append_events(BodyParsers& ps, const char* p, size_t len, size_t capacity, BodyFormat fmt, std::string_view extra,
                         Batch& out) {
    Rollback rb{out, out.buf.size(), out.events.size()};
    size_t first = 0;
    while (first < len && is_space(p[first])) ++first;
    if (first == len) return fail(rb, 0, "empty body");
    if (fmt == BodyFormat::ndjson) return append_ndjson(ps, p, len, capacity, extra, out, rb);
    if (p[first] == '[') return append_array(ps, p, len, capacity, extra, out, rb);
    // The whole body, whitespace around the object included: compaction drops it, and the verdict
    // (its offsets) is then the body's.
    JsonCheck chk = append_event(ps.inner, p, len, capacity, extra, out);
    if (!chk.ok) {
        chk = pinpoint(ps.inner, chk, p, len, capacity);
        return fail(rb, chk.offset, chk.message);
    }
    BodyResult r;
    r.events = 1;
    return r;
}

Inflater::Inflater() {
    if (inflateInit2(&zs_, 15 + 32) != Z_OK) throw std::runtime_error("zlib: inflateInit2 failed");  // gzip or zlib header
}

Inflater::~Inflater() { inflateEnd(&zs_); }

int Inflater::inflate(std::string_view in, size_t limit, std::string& out) {
    out.clear();
    inflateReset(&zs_);
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = uInt(in.size());
    size_t used = 0;
    for (;;) {
        if (out.size() - used < 4096) {
            if (out.size() >= limit + 1) return 1;
            size_t want = std::min(limit + 1, std::max<size_t>(out.size() * 2, in.size() * 4 + 4096));
            out.resize(want);
        }
        zs_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
        zs_.avail_out = uInt(out.size() - used);
        int rc = ::inflate(&zs_, Z_NO_FLUSH);
        used = out.size() - zs_.avail_out;
        if (used > limit) return 1;
        if (rc == Z_STREAM_END) {
            if (zs_.avail_in == 0) break;
            inflateReset(&zs_);  // concatenated gzip members
            continue;
        }
        if (rc == Z_BUF_ERROR && zs_.avail_in == 0) { out.resize(used); return 2; }  // truncated
        if (rc != Z_OK && rc != Z_BUF_ERROR) { out.resize(used); return 2; }
    }
    out.resize(used);
    out.reserve(used + simdjson::SIMDJSON_PADDING);
    return 0;
}

std::string base64(std::string_view s) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i + 1 == s.size()) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16;
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == s.size()) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

}  // namespace hbf::http
