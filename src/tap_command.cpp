// `hbforward tap STAGE`: prints the events a running instance's stage emits, one JSON object a
// line, live (like `vector tap`), read through the API server's /tap endpoints every 100 ms.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <simdjson.h>
#include <thread>

#include "api/api_server.h"
#include "commands.h"
#include "json_util.h"

namespace hbf {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Reply {
    int code = 0;
    std::string body;
};

Reply request(const std::string& host, unsigned short port, http::verb verb, const std::string& path, const std::string& body = "") {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(tcp::endpoint(asio::ip::make_address(host), port));
    http::request<http::string_body> req{verb, path, 11};
    req.set(http::field::host, host);
    if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return {int(res.result_int()), res.body()};
}

std::string error_of(const std::string& body) {
    simdjson::dom::parser p;
    auto doc = p.parse(body);
    std::string_view e;
    if (!doc.error() && !doc["error"].get(e)) return std::string(e);
    return body;
}

volatile std::sig_atomic_t g_stop = 0;

int run_tap(const std::string& stage, const std::string& address, int64_t limit, const std::string& where) {
    std::string host;
    unsigned short port = 0;
    try {
        std::tie(host, port) = split_host_port(address);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tap: %s\n", e.what());
        return 1;
    }
    std::string body = "{\"stage\":";
    append_json_string(body, stage);
    if (!where.empty()) {
        body += ",\"where\":";
        append_json_string(body, where);
    }
    body += "}";
    Reply r;
    try {
        r = request(host, port, http::verb::post, "/tap", body);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tap: cannot reach hbforward's API at %s: %s (is [service] api_address set?)\n", address.c_str(), e.what());
        return 1;
    }
    if (r.code != 200) {
        std::fprintf(stderr, "tap: %s\n", error_of(r.body).c_str());
        return 1;
    }
    uint64_t id = 0;
    {
        simdjson::dom::parser p;
        if (p.parse(r.body)["id"].get(id)) {
            std::fprintf(stderr, "tap: unexpected answer from %s: %s\n", address.c_str(), r.body.c_str());
            return 1;
        }
    }
    std::string path = "/tap/" + std::to_string(id);
    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    int64_t printed = 0;
    uint64_t skipped = 0;
    auto next_note = std::chrono::steady_clock::now();
    int rc = 0;
    while (!g_stop && (limit <= 0 || printed < limit)) {
        try {
            r = request(host, port, http::verb::get, path);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "tap: the instance at %s went away: %s\n", address.c_str(), e.what());
            return 1;
        }
        if (r.code != 200) {
            std::fprintf(stderr, "tap: %s\n", error_of(r.body).c_str());
            return 1;
        }
        size_t nl = r.body.find('\n');
        if (nl != std::string::npos) {
            simdjson::dom::parser p;
            auto head = p.parse(r.body.data(), nl);
            uint64_t k = 0;
            if (!head.error() && !head["skipped"].get(k)) skipped += k;
        }
        size_t pos = nl == std::string::npos ? r.body.size() : nl + 1;
        while (pos < r.body.size() && (limit <= 0 || printed < limit)) {
            size_t end = r.body.find('\n', pos);
            if (end == std::string::npos) end = r.body.size();
            if (std::fwrite(r.body.data() + pos, 1, end - pos, stdout) != end - pos || std::fputc('\n', stdout) == EOF) {
                g_stop = 1;  // the reader went away (a closed pipe)
                break;
            }
            ++printed;
            pos = end + 1;
        }
        std::fflush(stdout);
        auto now = std::chrono::steady_clock::now();
        if (skipped && now >= next_note) {
            std::fprintf(stderr, "tap: %llu events skipped (sampling under load)\n", static_cast<unsigned long long>(skipped));
            skipped = 0;
            next_note = now + std::chrono::seconds(1);
        }
        if (limit > 0 && printed >= limit) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    try {
        request(host, port, http::verb::delete_, path);
    } catch (...) {
    }
    return rc;
}

const CommandRegistrar tap_command{Command{
    "tap", "Print the events a running stage emits (STAGE or STAGE.PORT; an output: what it receives), one JSON a line, live.",
    [](CLI::App& app) -> std::function<int()> {
        auto stage = std::make_shared<std::string>();
        auto address = std::make_shared<std::string>("127.0.0.1:2020");
        auto limit = std::make_shared<int64_t>(0);
        auto where = std::make_shared<std::string>();
        app.add_option("stage", *stage, "The stage to tap: a name, or name.port (route.major).")->required();
        app.add_option("-a,--address", *address, "host:port of the instance's API server.")->capture_default_str();
        app.add_option("--limit", *limit, "Exit after this many events (0 = until interrupted).");
        app.add_option("--where", *where, "Only events matching this condition, e.g. '.severity == \"major\"'.");
        return [=] { return run_tap(*stage, *address, *limit, *where); };
    }}};

}  // namespace
}  // namespace hbf
