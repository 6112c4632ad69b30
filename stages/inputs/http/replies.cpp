#include "replies.h"

#include <fmt/format.h>

#include "json_util.h"

namespace hbf::http {

size_t code_index(int code) {
    for (size_t i = 0; i < kNCodes; ++i)
        if (kCodes[i] == code) return i;
    return code_index(500);
}

const char* reason(int code) {
    switch (code) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return "Internal Server Error";
    }
}

void append_reply(std::string& out, int code, std::string_view body, bool close, std::string_view headers) {
    fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}{}\r\n{}", code,
                   reason(code), body.size(), headers, close ? "Connection: close\r\n" : "", body);
}

std::string error_body(std::string_view why) {
    std::string body = R"({"error":)";
    append_json_string(body, why);
    body += '}';
    return body;
}

std::string refusal_body(int code) {
    switch (code) {
        case 404: return R"({"error":"unknown path"})";
        case 405: return R"({"error":"method not allowed; use POST"})";
        case 401: return R"({"error":"missing or bad credentials"})";
        case 411: return R"({"error":"Content-Length or chunked Transfer-Encoding required"})";
        case 415: return R"({"error":"unsupported Content-Encoding; use gzip or identity"})";
        case 503: return R"({"error":"shutting down"})";
        default: return R"({"error":"refused"})";
    }
}

bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char d = 0;
    for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
    return d == 0;
}

}  // namespace hbf::http
