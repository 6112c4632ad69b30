// A TLS server context from PEM files, checked now (readable, a key matching the certificate)
// rather than at the first client. Shared by the socket inputs (forward, tcp).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <string>

namespace hbf::net {

// Throws std::runtime_error naming the option (tls.cert, tls.key) and the file.
void load_server_tls(boost::asio::ssl::context& ctx, const std::string& cert, const std::string& key);

}  // namespace hbf::net
