#include "request_parser.h"

#include <algorithm>
#include <simdjson.h>

#include "body.h"

namespace hbf::http {

namespace {
std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }
}  // namespace

void RequestInfo::reset() {
    method = bhttp::verb::unknown;
    path.clear();
    authorization.clear();
    content_type.clear();
    content_encoding.clear();
    expect_continue = false;
    for (auto& v : header_values) v.clear();
    std::fill(header_seen.begin(), header_seen.end(), 0);
}

void RequestParser::on_request_impl(bhttp::verb m, string_view, string_view target, int, error_code&) {
    info_.method = m;
    std::string_view t = sv(target);
    if (size_t q = t.find('?'); q != std::string_view::npos) t = t.substr(0, q);
    info_.path.assign(t);
}

void RequestParser::on_field_impl(bhttp::field f, string_view name, string_view value, error_code&) {
    switch (f) {
        case bhttp::field::authorization: info_.authorization.assign(sv(value)); break;
        case bhttp::field::content_type: info_.content_type.assign(sv(value)); break;
        case bhttp::field::content_encoding: info_.content_encoding.assign(sv(value)); break;
        case bhttp::field::expect: info_.expect_continue = iequals(sv(value), "100-continue"); break;
        default: break;
    }
    for (size_t i = 0; i < headers_.size(); ++i)
        if (iequals(sv(name), headers_[i])) {
            info_.header_values[i].assign(sv(value));
            info_.header_seen[i] = 1;
        }
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& len, error_code&) {
    body_.clear();
    if (len && !discard) body_.reserve(*len + simdjson::SIMDJSON_PADDING);
}

std::size_t RequestParser::on_body_impl(string_view s, error_code&) {
    if (!discard) body_.append(s.data(), s.size());
    return s.size();
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, string_view s, error_code&) {
    if (!discard) body_.append(s.data(), s.size());
    return s.size();
}

}  // namespace hbf::http
