// The API server ([service] api_address): /health, /metrics, /pipeline, POST /reload.
//
// Boost.Beast on one I/O thread of its own; every answer is computed from relaxed counters and
// the runtime's stage list, so a scrape never stalls the pipeline.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace hbf {

class Runtime;

struct ReloadResult {
    bool ok = false;
    std::string message;  // the summary, or every error (FILE:LINE:COL lines)
};

class ApiServer {
public:
    // `address` is host:port; `reload` applies the config file again (POST /reload).
    ApiServer(std::string address, std::function<Runtime*()> runtime, std::function<ReloadResult()> reload);
    ~ApiServer();
    // Binds and starts serving; throws std::runtime_error when the address cannot be used.
    void start();
    void stop();
    // The port actually bound (useful with port 0).
    unsigned short port() const;

    // Exposed for tests and `top`: the bodies the endpoints answer with.
    static std::string metrics_text(Runtime& rt);
    static std::string pipeline_json(Runtime& rt);
    // 200 or 503 and the JSON body.
    static std::pair<int, std::string> health(Runtime& rt);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Splits "host:port" ("[::1]:2020" for IPv6); throws std::invalid_argument.
std::pair<std::string, unsigned short> split_host_port(const std::string& address);

}  // namespace hbf
