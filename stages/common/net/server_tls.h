// A TLS server context from PEM files, checked now (readable, a key matching the certificate)
// rather than at the first client. Shared by the socket inputs (forward, tcp, syslog, http).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <string>
#include <utility>
#include <vector>

namespace hbf::net {

// Throws std::runtime_error naming the option (tls.cert, tls.key) and the file.
void load_server_tls(boost::asio::ssl::context& ctx, const std::string& cert, const std::string& key);

// A server stage's `tls = { cert = "...", key = "..." }` table, read into cert and key and
// checked as load_server_tls will load it at start (so validate finds a missing, unreadable or
// mismatched file): what is wrong, one message each, none when it will load.
std::vector<std::string> server_tls_problems(const std::vector<std::pair<std::string, std::string>>& tls, std::string& cert,
                                             std::string& key);

}  // namespace hbf::net
