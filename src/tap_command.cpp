// `hbforward tap STAGE`: prints the events a running instance's stage emits, one JSON object a
// line, live (like `vector tap`), read through the API server's /tap endpoints every 100 ms.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <optional>
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

// POST /tap: the id of a new tap on `stage`, or nullopt (the reason printed).
std::optional<uint64_t> open_tap(const std::string& host, unsigned short port, const std::string& address, const std::string& stage,
                                 const std::string& where) {
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
        return std::nullopt;
    }
    if (r.code != 200) {
        std::fprintf(stderr, "tap: %s\n", error_of(r.body).c_str());
        return std::nullopt;
    }
    uint64_t id = 0;
    simdjson::dom::parser p;
    if (p.parse(r.body)["id"].get(id)) {
        std::fprintf(stderr, "tap: unexpected answer from %s: %s\n", address.c_str(), r.body.c_str());
        return std::nullopt;
    }
    return id;
}

// Prints what GET /tap/ID answers (a header line, then one event a line) up to a limit, and
// notes on stderr, at most once a second, how many events the sampling skipped.
class TapPrinter {
public:
    explicit TapPrinter(int64_t limit) : limit_(limit) {}

    bool done() const { return limit_ > 0 && printed_ >= limit_; }

    void print(const std::string& body) {
        size_t nl = body.find('\n');
        if (nl != std::string::npos) {
            simdjson::dom::parser p;
            auto head = p.parse(body.data(), nl);
            uint64_t k = 0;
            if (!head.error() && !head["skipped"].get(k)) skipped_ += k;
        }
        size_t pos = nl == std::string::npos ? body.size() : nl + 1;
        while (pos < body.size() && !done()) {
            size_t end = body.find('\n', pos);
            if (end == std::string::npos) end = body.size();
            if (std::fwrite(body.data() + pos, 1, end - pos, stdout) != end - pos || std::fputc('\n', stdout) == EOF) {
                g_stop = 1;  // the reader went away (a closed pipe)
                break;
            }
            ++printed_;
            pos = end + 1;
        }
        std::fflush(stdout);
        note_skipped();
    }

private:
    void note_skipped() {
        auto now = std::chrono::steady_clock::now();
        if (skipped_ && now >= next_note_) {
            std::fprintf(stderr, "tap: %llu events skipped (sampling under load)\n", static_cast<unsigned long long>(skipped_));
            skipped_ = 0;
            next_note_ = now + std::chrono::seconds(1);
        }
    }

    int64_t limit_;
    int64_t printed_ = 0;
    uint64_t skipped_ = 0;
    std::chrono::steady_clock::time_point next_note_ = std::chrono::steady_clock::now();
};

int run_tap(const std::string& stage, const std::string& address, int64_t limit, const std::string& where) {
    std::string host;
    unsigned short port = 0;
    try {
        std::tie(host, port) = split_host_port(address);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tap: %s\n", e.what());
        return 1;
    }
    auto id = open_tap(host, port, address, stage, where);
    if (!id) return 1;
    std::string path = "/tap/" + std::to_string(*id);
    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    TapPrinter printer(limit);
    while (!g_stop && !printer.done()) {
        Reply r;
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
        printer.print(r.body);
        if (printer.done()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    try {
        request(host, port, http::verb::delete_, path);
    } catch (...) {
    }
    return 0;
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
