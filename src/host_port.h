// "host:port" as options and the command line write it: "0.0.0.0:8080", "[::1]:8080",
// "localhost:8080". One parser for the socket stages' addresses and the API server's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hbf {

struct HostPort {
    std::string host;  // without an IPv6 literal's brackets; "" when the address starts with ':'
    uint16_t port = 0;
};

enum class HostPortError { none, no_port, bad_port };

// Splits at the last ':'. no_port: there is no ':' or nothing follows it; bad_port: what follows
// is not a number from 0 to 65535.
HostPortError parse_host_port(std::string_view address, HostPort& out);

}  // namespace hbf
