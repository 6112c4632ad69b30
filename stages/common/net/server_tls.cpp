#include "net/server_tls.h"

#include <cerrno>
#include <openssl/err.h>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace hbf::net {

void load_server_tls(boost::asio::ssl::context& ctx, const std::string& cert, const std::string& key) {
    namespace ssl = boost::asio::ssl;
    for (auto [what, path] : {std::pair{"cert", &cert}, std::pair{"key", &key}}) {
        FILE* f = std::fopen(path->c_str(), "rb");
        if (!f) throw std::runtime_error(fmt::format("tls.{}: cannot read {}: {}", what, *path, std::strerror(errno)));
        std::fclose(f);
    }
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                    ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    // The key first: loaded after the certificate, a mismatched key would be reported as unreadable.
    ctx.use_private_key_file(key, ssl::context::pem, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.key: {} is not a PEM private key: {}", key, ec.message()));
    ctx.use_certificate_chain_file(cert, ec);
    if (ec) throw std::runtime_error(fmt::format("tls.cert: {} is not a PEM certificate (chain): {}", cert, ec.message()));
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
        throw std::runtime_error(fmt::format("tls.key: {} does not match the certificate in {}", key, cert));
}

std::vector<std::string> server_tls_problems(const std::vector<std::pair<std::string, std::string>>& tls, std::string& cert,
                                             std::string& key) {
    std::vector<std::string> out;
    for (const auto& [k, v] : tls) {
        if (k == "cert") cert = v;
        else if (k == "key") key = v;
        else out.push_back("unknown key '" + k + "' in tls (use cert and key)");
    }
    if (cert.empty() || key.empty()) {
        out.push_back("tls needs both cert and key (PEM file paths)");
        return out;
    }
    try {
        boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_server);
        load_server_tls(ctx, cert, key);
    } catch (const std::exception& e) {
        out.push_back(e.what());
    }
    ERR_clear_error();
    return out;
}

}  // namespace hbf::net
