// input "forward": the Fluent Forward protocol v1 server (Fluent Bit's and Fluentd's
// out_forward, fluent-logger clients, Docker's fluentd log driver). See decoder.h for the
// frames it reads and server.h for connections, acks and backpressure.
#include <charconv>
#include <unistd.h>

#include "registry.h"
#include "server.h"

namespace hbf::stages {
namespace {

void parse_address(const StageConfig& c, forward::ServerOptions& o) {
    std::string a = c.str("address");
    size_t colon = a.rfind(':');
    if (colon == std::string::npos || colon + 1 == a.size()) c.fail("address", "address must be host:port, e.g. \"0.0.0.0:24224\"");
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    auto [p, ec] = std::from_chars(a.data() + colon + 1, a.data() + a.size(), port);
    if (ec != std::errc() || p != a.data() + a.size() || port > 65535) c.fail("address", "address has a bad port: " + a);
    o.host = host.empty() ? "0.0.0.0" : host;
    o.port = uint16_t(port);
}

std::string host_name() {
    char buf[256] = "";
    if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "hbforward";
    return buf;
}

forward::ServerOptions parse_options(const StageConfig& c) {
    forward::ServerOptions o;
    parse_address(c, o);
    o.unix_path = c.str("unix");
    o.max_frame = c.size("max_frame");
    if (o.max_frame < 1024 || o.max_frame > (256u << 20)) c.fail("max_frame", "max_frame must be between 1KiB and 256MiB");
    int64_t mc = c.integer("max_connections");
    if (mc < 1) c.fail("max_connections", "max_connections must be at least 1");
    o.max_connections = size_t(mc);
    o.decoder.tag_field = c.str("tag_field");
    o.decoder.time_field = c.str("time_field");
    o.decoder.metadata_field = c.str("metadata_field");
    o.decoder.max_frame = o.max_frame;
    std::string bin = c.str("binary");
    if (bin == "base64") o.decoder.style.bin_base64 = true;
    else if (bin != "string") c.fail("binary", "binary must be \"string\" or \"base64\"");
    o.shared_key = c.str("shared_key");
    o.self_hostname = c.has("self_hostname") ? c.str("self_hostname") : host_name();
    if (c.has("users")) {
        if (o.shared_key.empty()) c.fail("users", "users need shared_key: they are checked in the shared_key handshake");
        for (auto& [user, pass] : c.string_map("users")) o.users.emplace_back(user, pass);
    }
    if (c.has("tls")) {
        for (auto& [k, v] : c.string_map("tls")) {
            if (k == "cert") o.tls_cert = v;
            else if (k == "key") o.tls_key = v;
            else c.fail("tls", "unknown key '" + k + "' in tls (use cert and key)");
        }
        if (o.tls_cert.empty() || o.tls_key.empty()) c.fail("tls", "tls needs both cert and key (PEM file paths)");
    }
    return o;
}

class ForwardInput final : public Input {
public:
    explicit ForwardInput(const StageConfig& c) : server_(parse_options(c)) {}

    void start(StageContext& ctx) override { server_.listen(ctx); }
    void run(StageContext&, Emitter& out) override { server_.run(out); }
    void stop() override { server_.stop(); }

private:
    forward::Server server_;
};

const std::vector<OptionSpec> kForwardSchema = {
    {"address", OptType::string, "0.0.0.0:24224", "host:port to listen on (Fluent's port is 24224)."},
    {"unix", OptType::string, "", "Listen on this unix socket path instead of address."},
    {"tag_field", OptType::string, "", "Field that receives the Forward tag; empty = off."},
    {"time_field", OptType::string, "", "Field that receives the event time as RFC 3339 with nanoseconds; empty = off."},
    {"metadata_field", OptType::string, "", "Field that receives Fluent Bit's per-entry metadata map; empty = dropped."},
    {"binary", OptType::string, "string", "msgpack bin values: \"string\" (as Fluentd reads them) or \"base64\"."},
    {"max_frame", OptType::size, "64MiB", "Largest frame, and largest decompressed CompressedPackedForward payload; larger closes the connection."},
    {"max_connections", OptType::integer, "4096", "Open connections allowed; more are closed at once."},
    {"shared_key", OptType::string, "", "Require the protocol's HELO/PING/PONG handshake with this key; empty = off."},
    {"self_hostname", OptType::string, "", "Host name sent in PONG; default this host's name."},
    {"users", OptType::table, "", "{ name = \"password\", ... }: also require a user in the handshake (needs shared_key)."},
    {"tls", OptType::table, "", "{ cert = \"server.pem\", key = \"server.key\" }: serve TLS with these PEM files."},
};
HBF_REGISTER_INPUT("forward", ForwardInput, kForwardSchema,
                   "Fluent Forward protocol server: Fluent Bit, Fluentd and fluent-logger clients, with chunk acks after delivery.");

}  // namespace
}  // namespace hbf::stages
