// The http input's replies: status codes and their reasons, the counters' code set, and the JSON
// error bodies. Every reply carries Content-Type, Content-Length and, when the connection ends
// with it, "Connection: close".
#pragma once

#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>

namespace hbf::http {

// The codes hbf_http_requests_total counts, one counter each.
inline constexpr int kCodes[] = {200, 400, 401, 404, 405, 408, 411, 413, 415, 431, 500, 503, 504};
inline constexpr size_t kNCodes = std::size(kCodes);

// The counter index of `code`; an unknown code counts as 500.
size_t code_index(int code);
std::string_view reason(int code);

// Appends the whole reply (status line, headers, body) to `out`. `headers` are extra lines,
// each ending in CRLF.
void append_reply(std::string& out, int code, std::string_view body, bool close, std::string_view headers = {});

// {"error":"<why>"} with `why` escaped.
std::string error_body(std::string_view why);

// The body of a request refused from its header (404, 405, 401, 411, 415, 503).
std::string refusal_body(int code);

// Constant-time comparison for credentials.
bool same_secret(std::string_view a, std::string_view b);

}  // namespace hbf::http
