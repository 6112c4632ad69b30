#include "host_port.h"

#include <charconv>

namespace hbf {

HostPortError parse_host_port(std::string_view a, HostPort& out) {
    size_t colon = a.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == a.size()) return HostPortError::no_port;
    unsigned port = 0;
    auto [p, ec] = std::from_chars(a.data() + colon + 1, a.data() + a.size(), port);
    if (ec != std::errc() || p != a.data() + a.size() || port > 65535) return HostPortError::bad_port;
    std::string_view host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    out.host = std::string(host);
    out.port = uint16_t(port);
    return HostPortError::none;
}

}  // namespace hbf
