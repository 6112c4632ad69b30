#include "decoder.h"

#include <cmath>
#include <cstring>
#include <msgpuck.h>

namespace hbf::forward {
namespace {

std::string key_of(const std::string& field) {
    if (field.empty()) return {};
    std::string k;
    write_json_string(k, field.data(), field.size());
    k += ':';
    return k;
}

bool is_strbin(const char* p) {
    auto t = mp_typeof(*p);
    return t == MP_STR || t == MP_BIN;
}

// An integer, a float or an EventTime extension.
bool read_plain_time(const char*& p, EventTime& t) {
    switch (mp_typeof(*p)) {
        case MP_UINT: {
            uint64_t v = mp_decode_uint(&p);
            t = {v > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v), 0};
            return true;
        }
        case MP_INT: t = {mp_decode_int(&p), 0}; return true;
        case MP_FLOAT: case MP_DOUBLE: {
            double d = mp_typeof(*p) == MP_FLOAT ? mp_decode_float(&p) : mp_decode_double(&p);
            if (!std::isfinite(d) || std::fabs(d) > 9e15) return false;
            double s = std::floor(d);
            t = {int64_t(s), uint32_t(std::min(999999999.0, std::round((d - s) * 1e9)))};
            return true;
        }
        case MP_EXT: {
            const uint8_t c = uint8_t(*p);
            // fixext 8 (0xd7) or ext 8 with length 8 (0xc7 0x08), type 0.
            const char* q = p + 1;
            if (c == 0xc7 && uint8_t(*q) == 8) ++q;
            else if (c != 0xd7) return false;
            if (*q != 0) return false;
            ++q;
            t.sec = int64_t(mp_load_u32(&q));
            t.nsec = mp_load_u32(&q);
            if (t.nsec > 999999999) return false;
            p = q;
            return true;
        }
        default: return false;
    }
}

}  // namespace

ForwardDecoder::ForwardDecoder(DecoderOptions opts)
    : o_(std::move(opts)), tag_key_(key_of(o_.tag_field)), time_key_(key_of(o_.time_field)), meta_key_(key_of(o_.metadata_field)),
      inner_(o_.max_frame) {}

bool ForwardDecoder::fail(const char* why) {
    f_.kind = Frame::Kind::error;
    f_.error = why;
    return false;
}

bool ForwardDecoder::read_option(const char* p) {
    if (mp_typeof(*p) == MP_NIL) return true;
    if (mp_typeof(*p) != MP_MAP) return fail("the option element is not a map");
    uint32_t n = mp_decode_map(&p);
    for (uint32_t i = 0; i < n; ++i) {
        if (msgpack_str_equals(p, "chunk")) {
            mp_next(&p);
            if (!is_strbin(p)) return fail("option chunk is not a string");
            uint32_t len;
            const char* s = mp_decode_strbin(&p, &len);
            f_.chunk.assign(s, len);
            f_.has_chunk = true;
        } else if (msgpack_str_equals(p, "compressed")) {
            mp_next(&p);
            if (msgpack_str_equals(p, "gzip")) gzip_ = true;
            else if (!msgpack_str_equals(p, "text")) return fail("option compressed is neither \"gzip\" nor \"text\"");
            mp_next(&p);
        } else {
            mp_next(&p);  // size, fluent_signal and others: not needed
            mp_next(&p);
        }
    }
    return true;
}

const Frame& ForwardDecoder::decode(const char* p, [[maybe_unused]] size_t n, Batch& out) {
    f_.kind = Frame::Kind::events;
    f_.events = 0;
    f_.has_chunk = false;
    f_.chunk.clear();
    f_.error = "";
    f_.tag = {};
    gzip_ = false;
    if (mp_typeof(*p) == MP_NIL) {
        f_.kind = Frame::Kind::heartbeat;
        return f_;
    }
    const size_t buf0 = out.buf.size(), events0 = out.events.size();
    auto rollback = [&] {
        out.buf.resize(buf0);
        out.events.resize(events0);
    };
    if (mp_typeof(*p) != MP_ARRAY) {
        fail("a frame must be an array [tag, ...] (or nil, a heartbeat)");
        return f_;
    }
    const uint32_t len = mp_decode_array(&p);
    if (len < 2 || len > 4 || !is_strbin(p)) {
        fail("a frame must be [tag, time, record, option?], [tag, entries, option?] or [tag, packed entries, option?]");
        return f_;
    }
    uint32_t tag_len;
    const char* tag = mp_decode_strbin(&p, &tag_len);
    f_.tag = {tag, tag_len};
    if (!tag_key_.empty()) {
        tag_json_.assign(tag_key_);
        write_json_string(tag_json_, tag, tag_len);
    }
    const char* second = p;
    const auto kind = mp_typeof(*second);
    const bool message = kind != MP_ARRAY && !is_strbin(second);
    if ((message && len < 3) || (!message && len > 3)) {
        fail(message ? "a Message mode frame needs [tag, time, record]" : "a Forward frame has [tag, entries, option] at most");
        return f_;
    }
    // The option comes last but says how to read what precedes it (compressed).
    const char* q = second;
    for (uint32_t i = 1; i < len; ++i) {
        if (i == (message ? 3u : 2u) && !read_option(q)) return f_;
        mp_next(&q);
    }
    if (!entries(second, message, out)) {
        rollback();
        f_.events = 0;
        return f_;
    }
    f_.events = out.events.size() - events0;
    return f_;
}

// What follows the tag: Message mode's [time, record] (laid out in place), Forward mode's array
// of entries, or the msgpack stream of (Compressed)PackedForward.
bool ForwardDecoder::entries(const char* p, bool message, Batch& out) {
    if (message) return entry(p, out);
    if (mp_typeof(*p) == MP_ARRAY) {
        if (gzip_) return fail("option compressed applies to packed entries only");
        uint32_t count = mp_decode_array(&p);
        for (uint32_t i = 0; i < count; ++i) {
            if (mp_typeof(*p) != MP_ARRAY || mp_decode_array(&p) != 2) return fail("a Forward entry must be [time, record]");
            if (!entry(p, out)) return false;
        }
        return true;
    }
    uint32_t n_packed;
    const char* packed = mp_decode_strbin(&p, &n_packed);
    if (gzip_) {
        int rc = inflater_.inflate(std::string_view(packed, n_packed), o_.max_frame, inflated_);
        if (rc == 1) return fail("decompressed entries larger than max_frame");
        if (rc != 0) return fail("corrupt gzip data in CompressedPackedForward");
        packed = inflated_.data();
        n_packed = uint32_t(inflated_.size());
    }
    return entries_packed(packed, n_packed, out);
}

bool ForwardDecoder::entries_packed(const char* p, size_t n, Batch& out) {
    size_t off = 0;
    while (off < n) {
        const char* why = "";
        size_t sz = scan_whole(inner_, p + off, n - off, &why);
        if (sz == 0) return fail("PackedForward entries are not valid msgpack");
        const char* e = p + off;
        if (mp_typeof(*e) != MP_ARRAY || mp_decode_array(&e) != 2) return fail("a PackedForward entry must be [time, record]");
        if (!entry(e, out)) return false;
        off += sz;
    }
    return true;
}

// At p: time (or [time, metadata]) then record. Advances p past both.
bool ForwardDecoder::entry(const char*& p, Batch& out) {
    EventTime t;
    const char* meta = nullptr;
    if (mp_typeof(*p) == MP_ARRAY) {  // Fluent Bit: [[time, {metadata}], record]
        const char* q = p;
        if (mp_decode_array(&q) != 2) return fail("an entry's [time, metadata] must have two elements");
        if (!read_plain_time(q, t)) return fail("an entry's time is not an integer, a float or an EventTime");
        if (mp_typeof(*q) != MP_MAP && mp_typeof(*q) != MP_NIL) return fail("an entry's metadata is not a map");
        meta = q;
        mp_next(&q);
        p = q;
    } else if (!read_plain_time(p, t)) {
        return fail("an entry's time is not an integer, a float or an EventTime");
    }
    if (mp_typeof(*p) != MP_MAP) return fail("a record is not a map");
    return event(t, meta, p, out);
}

bool ForwardDecoder::event(const EventTime& t, const char* meta, const char*& p, Batch& out) {
    out.begin_event();
    std::string& o = out.buf;
    o += '{';
    bool first = true;
    if (!tag_key_.empty()) {
        o += tag_json_;
        first = false;
    }
    if (!time_key_.empty()) {
        if (!first) o += ',';
        o += time_key_;
        o += '"';
        append_rfc3339(o, t);
        o += '"';
        first = false;
    }
    if (!meta_key_.empty() && meta && mp_typeof(*meta) == MP_MAP) {
        if (!first) o += ',';
        o += meta_key_;
        write_json(meta, o, o_.style);
        first = false;
    }
    uint32_t n = mp_decode_map(&p);
    for (uint32_t i = 0; i < n; ++i) {
        if ((!o_.tag_field.empty() && msgpack_str_equals(p, o_.tag_field)) ||
            (!o_.time_field.empty() && msgpack_str_equals(p, o_.time_field)) ||
            (!o_.metadata_field.empty() && msgpack_str_equals(p, o_.metadata_field))) {
            mp_next(&p);
            mp_next(&p);
            continue;
        }
        if (!first) o += ',';
        first = false;
        write_json_key(p, o, o_.style);
        o += ':';
        write_json(p, o, o_.style);
    }
    o += '}';
    out.finish_event();
    return true;
}

}  // namespace hbf::forward
