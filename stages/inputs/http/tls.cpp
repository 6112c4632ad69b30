#include "tls.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace hbf::http {

namespace asio = boost::asio;

namespace {
void readable(const char* what, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error(fmt::format("tls.{}: cannot read {}: {}", what, path, std::strerror(errno)));
    std::fclose(f);
}
}  // namespace

asio::ssl::context load_tls(const std::string& cert, const std::string& key) {
    readable("cert", cert);
    readable("key", key);
    asio::ssl::context tls(asio::ssl::context::tls_server);
    tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                    asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    boost::system::error_code ec;
    // The key first: loaded after the certificate, a mismatched key would be reported as unreadable.
    tls.use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.key: {} is not a PEM private key: {}", key, ec.message()));
    tls.use_certificate_chain_file(cert, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.cert: {} is not a PEM certificate (chain): {}", cert, ec.message()));
    if (SSL_CTX_check_private_key(tls.native_handle()) != 1)
        throw std::runtime_error(fmt::format("tls.key: {} does not match the certificate in {}", key, cert));
    return tls;
}

}  // namespace hbf::http
