// `hbforward top`: a live terminal view of a running instance, read from its /pipeline.
//
// Plain ANSI escapes (works over ssh and in tmux), one row per stage: events/s in and out,
// errors, drops, and the input queue's fill as a bar (for a disk-buffered output, the buffer's
// bytes against its max_size, with a line below: events, bytes, oldest age). Refreshes every
// second; q quits.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <CLI/CLI.hpp>
#include <csignal>
#include <fmt/format.h>
#include <map>
#include <tuple>
#include <poll.h>
#include <simdjson.h>
#include <termios.h>
#include <unistd.h>

#include "api/api_server.h"
#include "commands.h"

namespace hbf {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string exchange(beast::tcp_stream& stream, const std::string& host, const std::string& path) {
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, host);
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    if (res.result_int() != 200) throw std::runtime_error(fmt::format("HTTP {} from {}", res.result_int(), path));
    return res.body();
}

// Why the API could not be read, in one line a person can act on.
struct Unreachable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string explain(const std::string& address, const beast::error_code& ec) {
    namespace err = asio::error;
    if (ec == err::connection_refused)
        return fmt::format("nothing listens on {} (connection refused); is hbforward running there with [service] api_address = \"{}\"?",
                           address, address);
    if (ec == beast::error::timeout) return fmt::format("no answer from {} within 2s", address);
    if (ec == err::host_not_found || ec == err::host_not_found_try_again) return fmt::format("unknown host in {}", address);
    if (ec == err::eof || ec == err::connection_reset)
        return fmt::format("{} closed the connection without an answer: is it hbforward's API?", address);
    return fmt::format("cannot reach {}: {}", address, ec.message());
}

// GET http://host:port/path; throws Unreachable (one line) on any failure.
std::string http_get(const std::string& host, unsigned short port, const std::string& path) {
    const std::string address = fmt::format("{}:{}", host, port);
    asio::io_context io;
    beast::tcp_stream stream(io);
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) throw Unreachable(explain(address, ec));
    stream.expires_after(std::chrono::seconds(2));
    stream.connect(endpoints, ec);
    if (ec) throw Unreachable(explain(address, ec));
    try {
        return exchange(stream, host, path);
    } catch (const boost::system::system_error& e) {
        throw Unreachable(explain(address, e.code()));
    }
}

struct Row {
    std::string name, kind, type, status;
    uint64_t in = 0, out = 0, errors = 0, dropped = 0;
    int64_t q = 0, qcap = 0;
    // A disk-buffered output's buffer, as /pipeline reports it.
    bool disk = false;
    uint64_t buf_events = 0, buf_bytes = 0, buf_max = 0;
    double buf_oldest_s = 0;
    std::string buf_error;
};

struct Snapshot {
    std::string version;
    uint64_t generation = 0;
    double uptime = 0, cpu = 0;
    int64_t rss = 0;
    std::vector<Row> rows;
};

Snapshot parse_pipeline(const std::string& body);

Snapshot parse(const std::string& body) {
    try {
        return parse_pipeline(body);
    } catch (const simdjson::simdjson_error& e) {
        throw std::runtime_error(std::string("the answer from /pipeline is not hbforward's pipeline JSON: ") + e.what());
    }
}

Snapshot parse_pipeline(const std::string& body) {
    simdjson::dom::parser p;
    simdjson::dom::element doc = p.parse(body);
    Snapshot s;
    s.version = std::string(std::string_view(doc["version"]));
    s.generation = uint64_t(doc["generation"]);
    s.uptime = double(doc["uptime_seconds"]);
    s.cpu = double(doc["cpu_seconds"]);
    s.rss = int64_t(doc["rss_bytes"]);
    for (simdjson::dom::element st : doc["stages"]) {
        Row r;
        r.name = std::string(std::string_view(st["name"]));
        r.kind = std::string(std::string_view(st["kind"]));
        r.type = std::string(std::string_view(st["type"]));
        r.status = std::string(std::string_view(st["status"]));
        r.in = uint64_t(st["events_in"]);
        r.out = uint64_t(st["events_out"]);
        r.errors = uint64_t(st["errors"]);
        r.dropped = uint64_t(st["dropped"]);
        r.q = int64_t(st["queue_events"]);
        r.qcap = int64_t(st["queue_capacity"]);
        simdjson::dom::element b;
        if (st["buffer"].get(b) == simdjson::SUCCESS) {
            r.disk = true;
            r.buf_events = uint64_t(b["events"]);
            r.buf_bytes = uint64_t(b["bytes"]);
            r.buf_max = uint64_t(b["max_bytes"]);
            double age = 0;
            if (b["oldest_age_seconds"].get(age) == simdjson::SUCCESS) r.buf_oldest_s = age;
            std::string_view err;
            if (b["error"].get(err) == simdjson::SUCCESS) r.buf_error = std::string(err);
        }
        s.rows.push_back(r);
    }
    return s;
}

std::string human(double v) {
    if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
    if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
    return fmt::format("{:.0f}", v);
}

std::string human_bytes(uint64_t b) {
    if (b >= (1ull << 30)) return fmt::format("{:.1f} GiB", double(b) / double(1ull << 30));
    if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", double(b) / double(1ull << 20));
    if (b >= (1ull << 10)) return fmt::format("{:.1f} KiB", double(b) / double(1ull << 10));
    return fmt::format("{} B", b);
}

std::string human_age(double s) {
    if (s >= 3600) return fmt::format("{}h{:02}m", int(s) / 3600, int(s) / 60 % 60);
    if (s >= 60) return fmt::format("{}m{:02}s", int(s) / 60, int(s) % 60);
    return fmt::format("{:.0f}s", s);
}

std::string fill_bar(double fill) {
    fill = std::min(1.0, std::max(0.0, fill));
    int n = int(fill * 16 + 0.5);
    return fmt::format("[{}{}] {:3.0f}%", std::string(size_t(n), '#'), std::string(size_t(16 - n), ' '), fill * 100);
}

termios g_saved;
bool g_raw = false;
void restore_terminal() {
    if (g_raw) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
    g_raw = false;
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);  // cursor back, leave the alternate screen
    std::fflush(stdout);
}

// Keys are read one at a time, unechoed, when stdin is a terminal.
void enter_raw_mode() {
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0) {
        termios raw = g_saved;
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        g_raw = true;
    }
    std::signal(SIGINT, [](int) { restore_terminal(); _exit(0); });
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);
}

// Waits a second for a key; true when it is q.
bool quit_pressed() {
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < until) {
        int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count());
        if (::poll(&pfd, 1, std::max(ms, 0)) > 0) {
            char c = 0;
            if (::read(STDIN_FILENO, &c, 1) <= 0) break;  // EOF: keep refreshing
            if (c == 'q' || c == 'Q') return true;
        }
    }
    return false;
}

// One stage's row; rates from the counters of `before` (null: none), dt seconds earlier.
std::string stage_row(const Row& r, const Row* before, double dt) {
    double rin = 0, rout = 0;
    if (before && dt > 0) {
        rin = double(r.in - std::min(r.in, before->in)) / dt;
        rout = double(r.out - std::min(r.out, before->out)) / dt;
    }
    std::string bar;
    if (r.disk && r.buf_max > 0) bar = fill_bar(double(r.buf_bytes) / double(r.buf_max));  // the disk buffer is its queue
    else if (r.qcap > 0) bar = fill_bar(double(r.q) / double(r.qcap));
    std::string name = r.name + (r.status == "running" ? "" : " (" + r.status + ")");
    std::string row = fmt::format("{:<16} {:<7} {:<10} {:>11} {:>11} {:>8} {:>9}  {}\r\n", name, r.kind, r.type,
                                  r.kind == "input" ? "-" : human(rin), human(rout), r.errors, r.dropped, bar);
    if (r.disk)
        row += fmt::format("  disk buffer: {} events, {} / {}, oldest {}{}\r\n", r.buf_events, human_bytes(r.buf_bytes),
                           human_bytes(r.buf_max), human_age(r.buf_oldest_s), r.buf_error.empty() ? "" : ", error: " + r.buf_error);
    return row;
}

// The screen for snapshot `s`; `prev` (null: none) was taken dt seconds before.
std::string render(const Snapshot& s, const Snapshot* prev, double dt, const std::string& address) {
    double cpu_pct = prev && dt > 0 ? 100.0 * (s.cpu - prev->cpu) / dt : 0;
    int up = int(s.uptime);
    std::string screen =
        fmt::format("\x1b[1mhbforward {}\x1b[0m  {}  generation {}  uptime {:02}:{:02}:{:02}  CPU {:.0f}%  RSS {:.1f} MB\r\n\r\n", s.version,
                    address, s.generation, up / 3600, up / 60 % 60, up % 60, cpu_pct, double(s.rss) / 1048576);
    screen += fmt::format("\x1b[7m{:<16} {:<7} {:<10} {:>11} {:>11} {:>8} {:>9}  {:<24}\x1b[0m\r\n", "STAGE", "KIND", "TYPE", "IN/s",
                          "OUT/s", "ERRORS", "DROPPED", "QUEUE");
    std::map<std::string, const Row*> before;
    if (prev)
        for (auto& r : prev->rows) before[r.name] = &r;
    for (auto& r : s.rows) {
        auto it = before.find(r.name);
        screen += stage_row(r, it == before.end() ? nullptr : it->second, dt);
    }
    return screen;
}

int run_top(const std::string& address, int iterations) {
    std::string host;
    unsigned short port = 0;
    try {
        std::tie(host, port) = split_host_port(address);
        parse(http_get(host, port, "/pipeline"));  // before taking over the screen: say why not in one line
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hbforward top: %s\n", e.what());
        return 1;
    }
    enter_raw_mode();
    Snapshot prev;
    bool have_prev = false;
    auto prev_t = std::chrono::steady_clock::now();
    for (int i = 0; iterations == 0 || i < iterations; ++i) {
        std::string screen = "\x1b[H\x1b[2J";
        auto now = std::chrono::steady_clock::now();
        try {
            Snapshot s = parse(http_get(host, port, "/pipeline"));
            screen += render(s, have_prev ? &prev : nullptr, std::chrono::duration<double>(now - prev_t).count(), address);
            prev = std::move(s);
            have_prev = true;
            prev_t = now;
        } catch (const std::exception& e) {
            screen += fmt::format("hbforward top: {}; retrying\r\n", e.what());
            have_prev = false;
        }
        screen += "\r\nq: quit\r\n";
        std::fputs(screen.c_str(), stdout);
        std::fflush(stdout);
        if (quit_pressed()) break;
    }
    restore_terminal();
    return 0;
}

CommandRegistrar top_command{Command{
    "top", "Live view of a running hbforward (reads its /pipeline; needs [service] api_address). q quits.",
    [](CLI::App& app) -> std::function<int()> {
        auto address = std::make_shared<std::string>("127.0.0.1:2020");
        auto iterations = std::make_shared<int>(0);
        app.add_option("-a,--address", *address, "host:port of the instance's API server.")->capture_default_str();
        app.add_option("-n,--iterations", *iterations, "Refresh this many times, then exit (0 = until q).");
        return [address, iterations] { return run_top(*address, *iterations); };
    }}};

}  // namespace
}  // namespace hbf
