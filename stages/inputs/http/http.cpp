// input "http": the HealthBot (Paragon Insights) webhook. HealthBot POSTs one JSON document per
// notification; this stage validates each body completely, queues its events, and answers 200
// only for events that were queued (or, with ack = "delivered", that every output settled).
#include <cstring>
#include <memory>

#include "body.h"
#include "net/listen_address.h"
#include "net/server_tls.h"
#include "registry.h"
#include "server.h"

namespace hbf::stages {
namespace {

void parse_auth(const StageConfig& c, const StringMap& auth, http::ServerOptions& o) {
    std::string type, user, pass, token;
    bool has_user = false, has_pass = false;
    for (auto& [k, v] : auth) {
        if (k == "type") type = v;
        else if (k == "username") user = v, has_user = true;
        else if (k == "password") pass = v, has_pass = true;
        else if (k == "token") token = v;
        else c.problem("auth", "unknown key '" + k + "' in auth (use type, username, password, token)");
    }
    if (type == "" || type == "none") return;
    if (type == "basic") {
        if (!has_user || !has_pass) c.problem("auth", "auth type \"basic\" needs username and password");
        if (user.find(':') != std::string::npos) c.problem("auth", "a basic auth username cannot contain ':'");
        o.auth_header = "Basic " + http::base64(user + ":" + pass);
        o.auth_challenge = "Basic realm=\"hbforward\", charset=\"UTF-8\"";
    } else if (type == "bearer") {
        if (token.empty()) c.problem("auth", "auth type \"bearer\" needs a non-empty token");
        o.auth_header = "Bearer " + token;
        o.auth_challenge = "Bearer realm=\"hbforward\"";
    } else {
        c.problem("auth", "auth type must be \"none\", \"basic\" or \"bearer\"");
    }
}

void parse_tls(const StageConfig& c, const StringMap& tls, http::ServerOptions& o) {
    for (const auto& why : net::server_tls_problems(tls, o.tls_cert, o.tls_key)) c.problem("tls", why);
}

struct HttpInputOptions {
    std::string address = "0.0.0.0:8080";
    StringList paths = {"/"};
    StringMap tls, auth;
    Size max_body = Size(1 << 20);
    Size header_limit = Size(16 << 10);
    std::string ack = "accepted";
    Duration ack_timeout = std::chrono::seconds(10);
    Duration read_timeout = std::chrono::seconds(10);
    Duration idle_timeout = std::chrono::seconds(60);
    int64_t max_connections = 4096;
    int64_t threads = 1;
    int64_t retry_after = 1;
    std::string path_field;
    StringList headers;
    std::string remote_addr_field;
    std::vector<Resource> resources(const StagePlace&) const { return {{Resource::Kind::listen, address}}; }
};

using O = HttpInputOptions;
const OptionSchema<O> kHttpSchema{
    {"address", &O::address, "host:port to listen on ([::1]:8080 for IPv6)."},
    {"paths", &O::paths, "Paths that take POSTs (the query string is ignored); any other path answers 404."},
    {"tls", &O::tls,
     "{ cert = \"server.pem\", key = \"server.key\" }: serve HTTPS (TLS 1.2 and 1.3) with these PEM files, read and checked "
     "by validate; cert may hold the chain, server certificate first. Default plain HTTP.", shown{"none"}},
    {"auth", &O::auth,
     "{ type = \"basic\", username, password } or { type = \"bearer\", token }; wrong or missing credentials answer 401.",
     shown{"none"}},
    {"max_body", &O::max_body, "Largest body, on the wire and once decompressed; larger answers 413.", between{16, double(1ull << 31)}},
    {"header_limit", &O::header_limit, "Largest request header; larger answers 431.", between{1024, 1 << 20}},
    {"ack", &O::ack, "accepted: reply once the events are queued; delivered: reply once every output settled them.",
     one_of{"accepted", "delivered"}},
    {"ack_timeout", &O::ack_timeout, "With ack = \"delivered\", answer 504 when delivery takes longer.", at_least{1e-9}},
    {"read_timeout", &O::read_timeout, "A request must arrive completely within this time from its first byte, else 408 and close.",
     at_least{1e-9}},
    {"idle_timeout", &O::idle_timeout, "A keep-alive connection without a request for this long is closed.", at_least{1e-9}},
    {"max_connections", &O::max_connections, "Open connections allowed; more are answered 503 and closed.", at_least{1}},
    {"threads", &O::threads, "I/O threads (event loops); connections are spread over them.", between{1, 64}},
    {"retry_after", &O::retry_after, "Seconds in the Retry-After header of a 503.", at_least{0}},
    {"path_field", &O::path_field, "Field that receives the request path; empty = off."},
    {"headers", &O::headers, "Request headers copied into each event, as fields named after the header in lower case."},
    {"remote_addr_field", &O::remote_addr_field, "Field that receives the client's IP address; empty = off."},
};

http::ServerOptions server_options(const HttpInputOptions& in, const StageConfig& c) {
    http::ServerOptions o;
    net::read_listen_address(c, in.address, "0.0.0.0:8080", o.host, o.port);
    o.paths = in.paths;
    if (o.paths.empty()) c.problem("paths", "paths must name at least one path, e.g. [\"/healthbot\"]");
    for (const auto& p : o.paths)
        if (p.empty() || p.front() != '/') c.problem("paths", "each path must start with '/': \"" + p + "\"");
    if (c.has("auth")) parse_auth(c, in.auth, o);
    if (c.has("tls")) parse_tls(c, in.tls, o);
    o.max_body = in.max_body;
    o.header_limit = uint32_t(in.header_limit);
    o.ack_delivered = in.ack == "delivered";
    o.ack_timeout = in.ack_timeout;
    o.read_timeout = in.read_timeout;
    o.idle_timeout = in.idle_timeout;
    o.max_connections = size_t(in.max_connections);
    o.threads = int(in.threads);
    o.retry_after = int(in.retry_after);
    o.path_field = in.path_field;
    o.remote_addr_field = in.remote_addr_field;
    o.headers = in.headers;
    for (const auto& h : o.headers)
        if (h.empty()) c.problem("headers", "header names must not be empty");
    c.stop_if_problems();
    return o;
}

class HttpInput final : public net::ServerInput {
public:
    HttpInput(const HttpInputOptions& o, const StageConfig& c) : ServerInput(http::make_server(server_options(o, c))) {}
};

HBF_REGISTER_INPUT("http", HttpInput, kHttpSchema,
                   "HealthBot webhook: JSON, JSON arrays or NDJSON by HTTP POST, validated before they are queued.");

}  // namespace
}  // namespace hbf::stages
