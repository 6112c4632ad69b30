#include "net/listen_address.h"

#include <fmt/format.h>

#include "host_port.h"

namespace hbf::net {

void read_listen_address(const StageConfig& c, const std::string& address, const char* example, std::string& host, uint16_t& port) {
    HostPort hp;
    switch (parse_host_port(address, hp)) {
        case HostPortError::no_port: return c.problem("address", fmt::format("address must be host:port, e.g. \"{}\"", example));
        case HostPortError::bad_port: return c.problem("address", "address has a bad port: " + address);
        case HostPortError::none: break;
    }
    host = hp.host.empty() ? "0.0.0.0" : hp.host;
    port = hp.port;
}

}  // namespace hbf::net
