// A server stage's `address` option (the http, forward, tcp and syslog inputs).
#pragma once

#include <cstdint>
#include <string>

#include "options.h"

namespace hbf::net {

// "0.0.0.0:8080", "[::1]:8080", ":8080" (no host: every interface, 0.0.0.0) into host and port;
// what is wrong is reported on `c` under "address", with `example` ("0.0.0.0:8080") as the fix.
void read_listen_address(const StageConfig& c, const std::string& address, const char* example, std::string& host, uint16_t& port);

}  // namespace hbf::net
