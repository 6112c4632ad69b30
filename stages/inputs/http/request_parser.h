// The http input's request parser: Beast's basic_parser with callbacks that keep only what the
// input needs (method, path, a few headers, the body) in buffers reused from request to request,
// so a request costs no allocation once a connection is warm.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace hbf::http {

namespace bhttp = boost::beast::http;

// What one request's header said, as the parser callbacks saw it. Strings keep their capacity.
struct RequestInfo {
    bhttp::verb method = bhttp::verb::unknown;
    std::string path, authorization, content_type, content_encoding;
    bool expect_continue = false;
    std::vector<std::string> header_values;  // of ServerOptions::headers, by position
    std::vector<char> header_seen;

    void reset();
};

class RequestParser;

// Told once the header is complete, before any of the body: it may refuse the request (setting
// RequestParser::discard) or stop the parse (setting `ec`).
class HeaderHandler {
public:
    virtual void on_header(RequestParser& p, boost::beast::error_code& ec) = 0;

protected:
    ~HeaderHandler() = default;
};

class RequestParser final : public bhttp::basic_parser<true> {
public:
    // `headers`: the lowercase names of the headers to keep, as ServerOptions::headers.
    RequestParser(HeaderHandler& h, RequestInfo& info, std::string& body, const std::vector<std::string>& headers)
        : handler_(h), info_(info), body_(body), headers_(headers) {}
    bool discard = false;  // the request is refused already: its body is read and dropped

private:
    using string_view = boost::beast::string_view;
    using error_code = boost::beast::error_code;

    void on_request_impl(bhttp::verb m, string_view, string_view target, int, error_code&) override;
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(bhttp::field f, string_view name, string_view value, error_code&) override;
    void on_header_impl(error_code& ec) override { handler_.on_header(*this, ec); }
    void on_body_init_impl(const boost::optional<std::uint64_t>& len, error_code&) override;
    std::size_t on_body_impl(string_view s, error_code&) override;
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view s, error_code&) override;
    void on_finish_impl(error_code&) override {}

    HeaderHandler& handler_;
    RequestInfo& info_;
    std::string& body_;
    const std::vector<std::string>& headers_;
};

}  // namespace hbf::http
