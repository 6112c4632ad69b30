#include "body.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fmt/format.h>
#include <zlib.h>
#include <zstd.h>

#include "civil_time.h"
#include "json_util.h"

namespace hbf::httpout {

bool parse_format(std::string_view s, Format& out) {
    if (s == "ndjson") out = Format::ndjson;
    else if (s == "json_array") out = Format::json_array;
    else if (s == "elasticsearch_bulk") out = Format::elasticsearch_bulk;
    else if (s == "splunk_hec") out = Format::splunk_hec;
    else return false;
    return true;
}

bool parse_compression(std::string_view s, Compression& out) {
    if (s == "none") out = Compression::none;
    else if (s == "gzip") out = Compression::gzip;
    else if (s == "zstd") out = Compression::zstd;
    else return false;
    return true;
}

const char* content_type(Format f) {
    switch (f) {
        case Format::ndjson: return "application/x-ndjson";
        case Format::json_array: return "application/json";
        case Format::elasticsearch_bulk: return "application/x-ndjson";
        case Format::splunk_hec: return "application/json";
    }
    return "application/json";
}

const char* content_encoding(Compression c) {
    switch (c) {
        case Compression::gzip: return "gzip";
        case Compression::zstd: return "zstd";
        default: return nullptr;
    }
}

BodyBuilder::BodyBuilder(BodyOptions o) : o_(std::move(o)) {
    auto add = [&](const char* name, const std::string& v) {
        if (v.empty()) return;
        hec_static_ += ",\"";
        hec_static_ += name;
        hec_static_ += "\":";
        append_json_string(hec_static_, v);
    };
    add("sourcetype", o_.hec_sourcetype);
    add("index", o_.hec_index);
    add("source", o_.hec_source);
    add("host", o_.hec_host);
}

BodyBuilder::~BodyBuilder() = default;

void BodyBuilder::begin(std::string& out) {
    out.clear();
    first_ = true;
    if (o_.format == Format::json_array) out.push_back('[');
}

void BodyBuilder::add(std::string& out, std::string_view ev, size_t capacity, int64_t received_ns) {
    switch (o_.format) {
        case Format::ndjson:
            out.append(ev);
            out.push_back('\n');
            break;
        case Format::json_array:
            if (!first_) out.push_back(',');
            out.append(ev);
            break;
        case Format::elasticsearch_bulk:
            es_action_line(out, received_ns);
            out.append(ev);
            out.push_back('\n');
            break;
        case Format::splunk_hec:
            hec_envelope(out, ev, capacity, received_ns);
            out.push_back('\n');
            break;
    }
    first_ = false;
}

void BodyBuilder::end(std::string& out) {
    if (o_.format == Format::json_array) out.push_back(']');
}

size_t BodyBuilder::overhead() const {
    switch (o_.format) {
        case Format::ndjson:
        case Format::json_array: return 1;
        case Format::elasticsearch_bulk: return es_line_.empty() ? 32 + o_.es_index.size() : es_line_.size() + 1;
        case Format::splunk_hec: return 40 + hec_static_.size();
    }
    return 1;
}

// The action line is the same for every event received in the same second: expanded once.
void BodyBuilder::es_action_line(std::string& out, int64_t received_ns) {
    int64_t sec = received_ns / 1000000000;
    if (sec != index_second_) {
        index_second_ = sec;
        std::time_t t = std::time_t(sec);
        std::tm tm;
        gmtime_r(&t, &tm);
        char name[512];
        size_t n = std::strftime(name, sizeof name, o_.es_index.c_str(), &tm);
        es_line_.clear();
        es_line_ += "{\"";
        es_line_ += o_.es_action;
        es_line_ += "\":{\"_index\":";
        append_json_string(es_line_, std::string_view(name, n));
        es_line_ += "}}\n";
    }
    out.append(es_line_);
}

void BodyBuilder::hec_envelope(std::string& out, std::string_view ev, size_t capacity, int64_t received_ns) {
    double t = double(received_ns / 1000) / 1e6;
    if (!o_.hec_time_field.empty()) {
        simdjson::ondemand::document doc;
        simdjson::ondemand::value v;
        std::string_view raw;
        double parsed;
        if (parser_.iterate(ev.data(), ev.size(), capacity).get(doc) == simdjson::SUCCESS &&
            doc.find_field_unordered(o_.hec_time_field).get(v) == simdjson::SUCCESS && raw_value(v).get(raw) == simdjson::SUCCESS &&
            epoch_seconds(raw, parsed))
            t = parsed;
    }
    char num[64];
    auto r = fmt::format_to_n(num, sizeof num, "{:.6f}", t);
    out += "{\"time\":";
    out.append(num, r.out);
    out += hec_static_;
    out += ",\"event\":";
    out.append(ev);
    out.push_back('}');
}

namespace {
bool digits(std::string_view s, size_t at, size_t n, int& v) {
    if (at + n > s.size()) return false;
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    return true;
}

}  // namespace

bool parse_rfc3339(std::string_view s, double& out) {
    int Y, M, D, h, m, sec;
    if (!digits(s, 0, 4, Y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' || !digits(s, 8, 2, D) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, m) ||
        s[16] != ':' || !digits(s, 17, 2, sec))
        return false;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return false;
    size_t i = 19;
    double frac = 0;
    if (i < s.size() && s[i] == '.') {
        double scale = 0.1;
        size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
        if (i == start) return false;
    }
    int offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om)) return false;
        offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return false;
    }
    if (i != s.size()) return false;
    int64_t days = days_from_civil(Y, unsigned(M), unsigned(D));
    out = double(days * 86400 + h * 3600 + m * 60 + sec - offset) + frac;
    return true;
}

bool epoch_seconds(std::string_view v, double& out) {
    if (v.empty()) return false;
    if (v.front() == '"') {
        if (v.size() < 2 || v.back() != '"') return false;
        return parse_rfc3339(v.substr(1, v.size() - 2), out);
    }
    double d;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(d) || d < 0) return false;
    if (d > 1e15) d /= 1e6;       // microseconds
    else if (d > 1e11) d /= 1e3;  // milliseconds (1e11 s is the year 5138)
    out = d;
    return true;
}

Compressor::Compressor(Compression c, int level) : c_(c), level_(level) {
    if (c_ == Compression::gzip) {
        auto* zs = new z_stream{};
        // 16 + MAX_WBITS: a gzip header and trailer, not zlib's. Level 1 by default: zlib's 6 took
        // twice the CPU and kept the output under half the file pipeline's rate (bench/http_out).
        if (deflateInit2(zs, level_ ? level_ : 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            delete zs;
            throw std::runtime_error("cannot initialise zlib");
        }
        z_ = zs;
    } else if (c_ == Compression::zstd) {
        zstd_ = ZSTD_createCCtx();
        if (!zstd_) throw std::runtime_error("cannot initialise zstd");
        ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(zstd_), ZSTD_c_compressionLevel, level_ ? level_ : ZSTD_CLEVEL_DEFAULT);
    }
}

Compressor::~Compressor() {
    if (z_) {
        deflateEnd(static_cast<z_stream*>(z_));
        delete static_cast<z_stream*>(z_);
    }
    if (zstd_) ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(zstd_));
}

void Compressor::compress(std::string_view in, std::string& out) {
    out.clear();
    if (c_ == Compression::none) {
        out.assign(in);
        return;
    }
    if (c_ == Compression::zstd) {
        auto* cc = static_cast<ZSTD_CCtx*>(zstd_);
        out.resize(ZSTD_compressBound(in.size()));
        size_t n = ZSTD_compress2(cc, out.data(), out.size(), in.data(), in.size());
        if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
        out.resize(n);
        return;
    }
    auto* zs = static_cast<z_stream*>(z_);
    deflateReset(zs);
    out.resize(deflateBound(zs, uLong(in.size())) + 32);
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs->avail_in = uInt(in.size());
    zs->next_out = reinterpret_cast<Bytef*>(out.data());
    zs->avail_out = uInt(out.size());
    int rc = deflate(zs, Z_FINISH);
    if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
    out.resize(out.size() - zs->avail_out);
}

}  // namespace hbf::httpout
