// The http input's TLS context: loaded once at listen(), shared by every I/O thread.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <string>

namespace hbf::http {

// The certificate chain and key, checked against each other now rather than at the first client.
// Throws std::runtime_error naming the option (tls.cert, tls.key) and the file.
boost::asio::ssl::context load_tls(const std::string& cert, const std::string& key);

}  // namespace hbf::http
