// input "forward": the Fluent Forward protocol v1 server (Fluent Bit's and Fluentd's
// out_forward, fluent-logger clients, Docker's fluentd log driver). See decoder.h for the
// frames it reads and server.h for connections, acks and backpressure.
#include <unistd.h>

#include "net/listen_address.h"
#include "net/server_tls.h"
#include "registry.h"
#include "server.h"

namespace hbf::stages {
namespace {

struct ForwardInOptions {
    std::string address = "0.0.0.0:24224";
    std::string unix_path, tag_field, time_field, metadata_field;
    std::string binary = "string";
    Size max_frame{64u << 20};
    int64_t max_connections = 4096;
    std::string shared_key;
    std::optional<std::string> self_hostname;
    StringMap users, tls;
    // The unix socket's path instead of the address when set (a new instance would unlink the old one's).
    std::vector<Resource> resources(const StagePlace&) const {
        if (!unix_path.empty()) return {{Resource::Kind::file, unix_path}};
        return {{Resource::Kind::listen, address}};
    }
};

using FO = ForwardInOptions;
const OptionSchema<FO> kForwardSchema{
    {"address", &FO::address, "host:port to listen on (Fluent's port is 24224)."},
    {"unix", &FO::unix_path, "Listen on this unix socket path instead of address."},
    {"tag_field", &FO::tag_field, "Field that receives the Forward tag; empty = off."},
    {"time_field", &FO::time_field, "Field that receives the event time as RFC 3339 with nanoseconds; empty = off."},
    {"metadata_field", &FO::metadata_field, "Field that receives Fluent Bit's per-entry metadata map; empty = dropped."},
    {"binary", &FO::binary, "msgpack bin values: \"string\" (as Fluentd reads them) or \"base64\".", one_of{"string", "base64"}},
    {"max_frame", &FO::max_frame,
     "Largest frame, and largest decompressed CompressedPackedForward payload; larger closes the connection.",
     between{1024, double(256u << 20)}},
    {"max_connections", &FO::max_connections, "Open connections allowed; more are closed at once.", at_least{1}},
    {"shared_key", &FO::shared_key, "Require the protocol's HELO/PING/PONG handshake with this key; empty = off."},
    {"self_hostname", &FO::self_hostname, "Host name sent in PONG; default this host's name.", shown{""}},
    {"users", &FO::users, "{ name = \"password\", ... }: also require a user in the handshake (needs shared_key)."},
    {"tls", &FO::tls, "{ cert = \"server.pem\", key = \"server.key\" }: serve TLS with these PEM files."},
};

std::string host_name() {
    char buf[256] = "";
    if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "hbforward";
    return buf;
}

forward::ServerOptions parse_options(const ForwardInOptions& in, const StageConfig& c) {
    forward::ServerOptions o;
    net::read_listen_address(c, in.address, "0.0.0.0:24224", o.host, o.port);
    o.unix_path = in.unix_path;
    o.max_frame = in.max_frame;
    o.max_connections = size_t(in.max_connections);
    o.decoder.tag_field = in.tag_field;
    o.decoder.time_field = in.time_field;
    o.decoder.metadata_field = in.metadata_field;
    o.decoder.max_frame = o.max_frame;
    o.decoder.style.bin_base64 = in.binary == "base64";
    o.shared_key = in.shared_key;
    o.self_hostname = in.self_hostname ? *in.self_hostname : host_name();
    if (c.has("users")) {
        if (o.shared_key.empty()) c.problem("users", "users need shared_key: they are checked in the shared_key handshake");
        for (auto& [user, pass] : in.users) o.users.emplace_back(user, pass);
    }
    if (c.has("tls"))
        for (const auto& why : net::server_tls_problems(in.tls, o.tls_cert, o.tls_key)) c.problem("tls", why);
    return o;
}

class ForwardInput final : public net::ServerInput {
public:
    ForwardInput(const ForwardInOptions& in, const StageConfig& c) : ServerInput(forward::make_server(parse_options(in, c))) {}
};

HBF_REGISTER_INPUT("forward", ForwardInput, kForwardSchema,
                   "Fluent Forward protocol server: Fluent Bit, Fluentd and fluent-logger clients, with chunk acks after delivery.");

}  // namespace
}  // namespace hbf::stages
