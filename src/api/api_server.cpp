#include "api/api_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <dirent.h>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "host_port.h"
#include "json_util.h"
#include "runtime.h"
#include "tap.h"
#include "thread_name.h"
#include "version.h"

namespace hbf {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::pair<std::string, unsigned short> split_host_port(const std::string& address) {
    HostPort hp;
    switch (parse_host_port(address, hp)) {
        case HostPortError::no_port: throw std::invalid_argument("address '" + address + "' must be host:port");
        case HostPortError::bad_port: throw std::invalid_argument("address '" + address + "' has an invalid port");
        case HostPortError::none: break;
    }
    return {hp.host.empty() ? "0.0.0.0" : hp.host, hp.port};
}

namespace {

struct ProcStats {
    double cpu_seconds = 0;
    int64_t rss_bytes = 0;
    int64_t open_fds = 0;
};

ProcStats proc_stats() {
    ProcStats s;
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    auto rp = line.rfind(')');
    if (rp != std::string::npos) {
        std::istringstream is(line.substr(rp + 2));
        std::string tok;
        long utime = 0, stime = 0;
        for (int field = 3; is >> tok; ++field) {
            if (field == 14) utime = std::stol(tok);
            if (field == 15) { stime = std::stol(tok); break; }
        }
        s.cpu_seconds = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
    }
    std::ifstream status("/proc/self/status");
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) s.rss_bytes = std::stoll(line.substr(6)) * 1024;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d)) ++s.open_fds;
        closedir(d);
        s.open_fds -= 2;  // . and ..
    }
    return s;
}

}  // namespace

std::string ApiServer::metrics_text(Runtime& rt) {
    std::string out = MetricsRegistry::global().render();
    auto ps = proc_stats();
    double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - rt.started_at()).count();
    const PipelineSnapshot snap = rt.snapshot();
    // One series per stage name, always: after a reload that replaced a stage, its old version
    // drains beside the new one; the series shows the new one, its queue counts both.
    struct Row {
        const StageSnapshot* live = nullptr;
        int64_t events = 0, bytes = 0;
    };
    std::map<std::string, Row> rows;
    std::vector<std::string> order;
    std::string qe, qc, qb, qbc, up;
    for (const auto& st : snap.stages) {
        auto [it, fresh] = rows.try_emplace(st.name);
        if (fresh) order.push_back(st.name);
        Row& r = it->second;
        if (!r.live || (r.live->retiring && !st.retiring)) r.live = &st;
        r.events += st.queue_events;
        r.bytes += st.queue_bytes;
    }
    for (const auto& name : order) {
        const Row& r = rows[name];
        const StageSnapshot& st = *r.live;
        std::string l = fmt::format("{{stage=\"{}\",type=\"{}\"}}", st.name, st.type);
        up += fmt::format("hbf_stage_up{} {}\n", l, st.status == "running" ? 1 : 0);
        if (!st.has_queue) continue;
        qe += fmt::format("hbf_queue_events{} {}\n", l, r.events);
        qc += fmt::format("hbf_queue_capacity_events{} {}\n", l, st.queue_capacity_events);
        qb += fmt::format("hbf_queue_bytes{} {}\n", l, r.bytes);
        qbc += fmt::format("hbf_queue_capacity_bytes{} {}\n", l, st.queue_capacity_bytes);
    }
    out += "# HELP hbf_queue_events Events waiting in the stage's input queue.\n# TYPE hbf_queue_events gauge\n" + qe;
    out += "# HELP hbf_queue_capacity_events Capacity of the stage's input queue, in events.\n# TYPE hbf_queue_capacity_events gauge\n" + qc;
    out += "# HELP hbf_queue_bytes Bytes of event text waiting in the stage's input queue.\n# TYPE hbf_queue_bytes gauge\n" + qb;
    out += "# HELP hbf_queue_capacity_bytes Capacity of the stage's input queue, in bytes.\n# TYPE hbf_queue_capacity_bytes gauge\n" + qbc;
    out += "# HELP hbf_stage_up 1 while the stage runs without a reported failure.\n# TYPE hbf_stage_up gauge\n" + up;
    out += fmt::format("# HELP hbf_config_generation Which config generation is running (1 at start, +1 per reload).\n"
                       "# TYPE hbf_config_generation gauge\nhbf_config_generation {}\n", snap.generation);
    out += fmt::format("# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\n"
                       "process_cpu_seconds_total {}\n", ps.cpu_seconds);
    out += fmt::format("# HELP process_resident_memory_bytes Resident memory size.\n# TYPE process_resident_memory_bytes gauge\n"
                       "process_resident_memory_bytes {}\n", ps.rss_bytes);
    out += fmt::format("# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}\n", ps.open_fds);
    out += fmt::format("# HELP hbf_uptime_seconds Seconds since the pipeline started.\n# TYPE hbf_uptime_seconds gauge\n"
                       "hbf_uptime_seconds {:.3f}\n", uptime);
    out += fmt::format("# HELP hbf_build_info Build information.\n# TYPE hbf_build_info gauge\nhbf_build_info{{version=\"{}\"}} 1\n",
                       HBF_VERSION);
    return out;
}

namespace {
void append_stage_json(std::string& out, const StageSnapshot& st) {
    std::string inputs;
    for (const auto& r : st.inputs) {
        if (!inputs.empty()) inputs += ',';
        append_json_string(inputs, r);
    }
    std::string name, type;
    append_json_string(name, st.name);
    append_json_string(type, st.type);
    out += fmt::format("{{\"name\":{},\"kind\":\"{}\",\"type\":{},\"inputs\":[{}],\"status\":\"{}\",", name, to_string(st.kind), type,
                       inputs, st.status);
    if (!st.reason.empty()) {
        out += "\"reason\":";
        append_json_string(out, st.reason);
        out += ',';
    }
    out += fmt::format("\"events_in\":{},\"events_out\":{},\"bytes_in\":{},\"bytes_out\":{},\"dropped\":{},\"errors\":{},", st.events_in,
                       st.events_out, st.bytes_in, st.bytes_out, MetricsRegistry::global().sum("hbf_events_dropped_total", "stage", st.name),
                       st.errors);
    out += fmt::format("\"queue_events\":{},\"queue_capacity\":{},\"queue_bytes\":{},\"queue_capacity_bytes\":{}", st.queue_events,
                       st.queue_capacity_events, st.queue_bytes, st.queue_capacity_bytes);
    if (!st.queue_json.empty()) out += "," + st.queue_json;  // a disk buffer
    out += "}";
}
}  // namespace

std::string ApiServer::pipeline_json(Runtime& rt) {
    auto ps = proc_stats();
    double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - rt.started_at()).count();
    const PipelineSnapshot snap = rt.snapshot();
    std::string out = fmt::format("{{\"version\":\"{}\",\"generation\":{},\"uptime_seconds\":{:.3f},\"cpu_seconds\":{},\"rss_bytes\":{},"
                                  "\"stopping\":{},\"stages\":[",
                                  HBF_VERSION, snap.generation, uptime, ps.cpu_seconds, ps.rss_bytes, snap.stopping ? "true" : "false");
    bool first = true;
    for (const auto& st : snap.stages) {
        if (!first) out += ',';
        append_stage_json(out, st);
        first = false;
    }
    return out + "]}";
}

std::pair<int, std::string> ApiServer::health(Runtime& rt) {
    if (rt.stopping()) return {503, "{\"status\":\"stopping\"}"};
    const PipelineSnapshot snap = rt.snapshot();
    std::string stages;
    bool failing = false;
    for (const auto& st : snap.stages) {
        if (st.retiring) continue;
        std::string reason = st.failure;
        if (!reason.empty()) failing = true;
        else reason = st.degraded;
        if (reason.empty()) continue;
        if (!stages.empty()) stages += ',';
        std::string name;
        append_json_string(name, st.name);
        stages += "{\"stage\":" + name + ",\"reason\":";
        append_json_string(stages, reason);
        stages += "}";
    }
    if (!stages.empty())
        return {503, fmt::format("{{\"status\":\"{}\",\"stages\":[{}]}}", failing ? "failing" : "degraded", stages)};
    return {200, fmt::format("{{\"status\":\"ok\",\"generation\":{}}}", snap.generation)};
}

struct ApiServer::Impl {
    std::string address;
    std::function<Runtime*()> runtime;
    std::function<ReloadResult()> reload;
    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    std::thread thread;

    void accept() {
        acceptor.async_accept([this](beast::error_code ec, tcp::socket s) {
            if (ec) return;
            std::make_shared<Session>(this, std::move(s))->read();
            accept();
        });
    }

    struct Session : std::enable_shared_from_this<Session> {
        Impl* impl;
        beast::tcp_stream stream;
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::response<http::string_body> res;

        Session(Impl* i, tcp::socket s) : impl(i), stream(std::move(s)) {}

        void read() {
            req = {};
            stream.expires_after(std::chrono::seconds(30));
            http::async_read(stream, buf, req, [self = shared_from_this()](beast::error_code ec, size_t) {
                if (ec) return;
                self->handle();
            });
        }

        void reply(int code, std::string body, const char* type = "application/json") {
            res = {};
            res.result(static_cast<http::status>(code));
            res.version(req.version());
            res.set(http::field::server, "hbforward");
            res.set(http::field::content_type, type);
            res.keep_alive(req.keep_alive());
            res.body() = std::move(body);
            res.prepare_payload();
            http::async_write(stream, res, [self = shared_from_this()](beast::error_code ec, size_t) {
                if (ec || !self->res.keep_alive()) {
                    beast::error_code ignored;
                    self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
                    return;
                }
                self->read();
            });
        }

        void handle() {
            std::string target(req.target());
            if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
            Runtime* rt = impl->runtime();
            bool get = req.method() == http::verb::get || req.method() == http::verb::head;
            if (target == "/reload") {
                if (req.method() != http::verb::post) return reply(405, "{\"error\":\"use POST\"}");
                ReloadResult r = impl->reload();
                std::string body = r.ok ? "{\"reloaded\":true,\"summary\":" : "{\"reloaded\":false,\"error\":";
                append_json_string(body, r.message);
                return reply(r.ok ? 200 : 400, body + "}");
            }
            if (!rt) return reply(503, "{\"status\":\"starting\"}");
            if (auto t = tap_http(*rt, req.method_string(), target, req.body())) return reply(t->code, std::move(t->body), t->content_type);
            if (target == "/health" && get) {
                auto [code, body] = health(*rt);
                return reply(code, body);
            }
            if (target == "/metrics" && get) return reply(200, metrics_text(*rt), "text/plain; version=0.0.4; charset=utf-8");
            if (target == "/pipeline" && get) return reply(200, pipeline_json(*rt));
            if (target == "/health" || target == "/metrics" || target == "/pipeline") return reply(405, "{\"error\":\"use GET\"}");
            return reply(404, "{\"error\":\"unknown path; try /health, /metrics, /pipeline or POST /reload\"}");
        }
    };
};

ApiServer::ApiServer(std::string address, std::function<Runtime*()> runtime, std::function<ReloadResult()> reload)
    : impl_(std::make_unique<Impl>()) {
    impl_->address = std::move(address);
    impl_->runtime = std::move(runtime);
    impl_->reload = std::move(reload);
}

ApiServer::~ApiServer() { stop(); }

void ApiServer::start() {
    auto [host, port] = split_host_port(impl_->address);
    beast::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("api_address '" + impl_->address + "': '" + host + "' is not an IP address");
    tcp::endpoint ep(addr, port);
    impl_->acceptor.open(ep.protocol(), ec);
    if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) impl_->acceptor.bind(ep, ec);
    if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("api_address " + impl_->address + ": " + ec.message());
    impl_->accept();
    impl_->thread = std::thread([this] {
        name_this_thread("api");
        impl_->io.run();
    });
}

void ApiServer::stop() {
    if (!impl_ || !impl_->thread.joinable()) return;
    impl_->io.stop();
    impl_->thread.join();
}

unsigned short ApiServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace hbf
