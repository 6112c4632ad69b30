// input "http": the HealthBot (Paragon Insights) webhook. HealthBot POSTs one JSON document per
// notification; this stage validates each body completely, queues its events, and answers 200
// only for events that were queued (or, with ack = "delivered", that every output settled).
#include <charconv>

#include "body.h"
#include "registry.h"
#include "server.h"

namespace hbf::stages {
namespace {

// "0.0.0.0:8080", "[::1]:8080", "localhost:8080".
void parse_address(const StageConfig& c, http::ServerOptions& o) {
    std::string a = c.str("address");
    size_t colon = a.rfind(':');
    if (colon == std::string::npos || colon + 1 == a.size()) c.fail("address", "address must be host:port, e.g. \"0.0.0.0:8080\"");
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    auto [p, ec] = std::from_chars(a.data() + colon + 1, a.data() + a.size(), port);
    if (ec != std::errc() || p != a.data() + a.size() || port > 65535) c.fail("address", "address has a bad port: " + a);
    o.host = host.empty() ? "0.0.0.0" : host;
    o.port = uint16_t(port);
}

void parse_auth(const StageConfig& c, http::ServerOptions& o) {
    if (!c.has("auth")) return;
    std::string type, user, pass, token;
    bool has_user = false, has_pass = false;
    for (auto& [k, v] : c.string_map("auth")) {
        if (k == "type") type = v;
        else if (k == "username") user = v, has_user = true;
        else if (k == "password") pass = v, has_pass = true;
        else if (k == "token") token = v;
        else c.fail("auth", "unknown key '" + k + "' in auth (use type, username, password, token)");
    }
    if (type == "" || type == "none") return;
    if (type == "basic") {
        if (!has_user || !has_pass) c.fail("auth", "auth type \"basic\" needs username and password");
        if (user.find(':') != std::string::npos) c.fail("auth", "a basic auth username cannot contain ':'");
        o.auth_header = "Basic " + http::base64(user + ":" + pass);
        o.auth_challenge = "Basic realm=\"hbforward\", charset=\"UTF-8\"";
    } else if (type == "bearer") {
        if (token.empty()) c.fail("auth", "auth type \"bearer\" needs a non-empty token");
        o.auth_header = "Bearer " + token;
        o.auth_challenge = "Bearer realm=\"hbforward\"";
    } else {
        c.fail("auth", "auth type must be \"none\", \"basic\" or \"bearer\"");
    }
}

void parse_tls(const StageConfig& c, http::ServerOptions& o) {
    if (!c.has("tls")) return;
    for (auto& [k, v] : c.string_map("tls")) {
        if (k == "cert") o.tls_cert = v;
        else if (k == "key") o.tls_key = v;
        else c.fail("tls", "unknown key '" + k + "' in tls (use cert and key)");
    }
    if (o.tls_cert.empty() || o.tls_key.empty()) c.fail("tls", "tls needs both cert and key (PEM file paths)");
}

http::ServerOptions parse_options(const StageConfig& c) {
    http::ServerOptions o;
    parse_address(c, o);
    if (c.has("paths")) o.paths = c.strings("paths");
    if (o.paths.empty()) c.fail("paths", "paths must name at least one path, e.g. [\"/healthbot\"]");
    for (const auto& p : o.paths)
        if (p.empty() || p.front() != '/') c.fail("paths", "each path must start with '/': \"" + p + "\"");
    parse_auth(c, o);
    parse_tls(c, o);
    o.max_body = c.size("max_body");
    if (o.max_body < 16 || o.max_body > (1ull << 31)) c.fail("max_body", "max_body must be between 16 bytes and 2GiB");
    uint64_t hl = c.size("header_limit");
    if (hl < 1024 || hl > (1u << 20)) c.fail("header_limit", "header_limit must be between 1KiB and 1MiB");
    o.header_limit = uint32_t(hl);
    std::string ack = c.str("ack");
    if (ack == "delivered") o.ack_delivered = true;
    else if (ack != "accepted") c.fail("ack", "ack must be \"accepted\" or \"delivered\"");
    o.ack_timeout = c.duration("ack_timeout");
    o.read_timeout = c.duration("read_timeout");
    o.idle_timeout = c.duration("idle_timeout");
    for (auto k : {"ack_timeout", "read_timeout", "idle_timeout"})
        if (c.duration(k).count() <= 0) c.fail(k, std::string(k) + " must be positive");
    int64_t mc = c.integer("max_connections");
    if (mc < 1) c.fail("max_connections", "max_connections must be at least 1");
    o.max_connections = size_t(mc);
    int64_t th = c.integer("threads");
    if (th < 1 || th > 64) c.fail("threads", "threads must be between 1 and 64");
    o.threads = int(th);
    int64_t ra = c.integer("retry_after");
    if (ra < 0) c.fail("retry_after", "retry_after must not be negative");
    o.retry_after = int(ra);
    o.path_field = c.str("path_field");
    o.remote_addr_field = c.str("remote_addr_field");
    o.headers = c.strings("headers");
    for (const auto& h : o.headers)
        if (h.empty()) c.fail("headers", "header names must not be empty");
    return o;
}

class HttpInput final : public Input {
public:
    explicit HttpInput(const StageConfig& c) : server_(parse_options(c)) {}

    void start(StageContext& ctx) override { server_.listen(ctx); }
    void run(StageContext&, Emitter& out) override { server_.run(out); }
    void stop() override { server_.stop(); }

private:
    http::Server server_;
};

const std::vector<OptionSpec> kHttpSchema = {
    {"address", OptType::string, "0.0.0.0:8080", "host:port to listen on."},
    {"paths", OptType::string_list, "[\"/\"]", "Paths that take POSTs; any other path answers 404."},
    {"tls", OptType::table, "", "{ cert = \"server.pem\", key = \"server.key\" }: serve HTTPS with these PEM files; default plain HTTP."},
    {"auth", OptType::table, "", "{ type = \"basic\", username, password } or { type = \"bearer\", token }; default none."},
    {"max_body", OptType::size, "1MiB", "Largest body, compressed and decompressed; larger answers 413."},
    {"header_limit", OptType::size, "16KiB", "Largest request header; larger answers 431."},
    {"ack", OptType::string, "accepted", "\"accepted\": reply once queued; \"delivered\": reply once every output settled the events."},
    {"ack_timeout", OptType::duration, "10s", "With ack = \"delivered\": answer 504 when delivery takes longer."},
    {"read_timeout", OptType::duration, "10s", "A request must arrive completely within this time from its first byte (else 408)."},
    {"idle_timeout", OptType::duration, "60s", "A keep-alive connection without a request for this long is closed."},
    {"max_connections", OptType::integer, "4096", "Open connections allowed; more are answered 503 and closed."},
    {"threads", OptType::integer, "1", "I/O threads (event loops); connections are spread over them."},
    {"retry_after", OptType::integer, "1", "Seconds in the Retry-After header of a 503."},
    {"path_field", OptType::string, "", "Field that receives the request path; empty = off."},
    {"headers", OptType::string_list, "[]", "Request headers copied into each event, as fields named after the header in lower case."},
    {"remote_addr_field", OptType::string, "", "Field that receives the client's IP address; empty = off."},
};
HBF_REGISTER_INPUT("http", HttpInput, kHttpSchema,
                   "HealthBot webhook: JSON, JSON arrays or NDJSON by HTTP POST, validated before they are queued.");

}  // namespace
}  // namespace hbf::stages
