#include "tap.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <simdjson.h>
#include <variant>

#include "batch.h"
#include "json_util.h"
#include "runtime.h"

namespace hbf {

TapFilterCompiler& tap_filter_compiler() {
    static TapFilterCompiler c;
    return c;
}

void TapPoint::offer(const Batch& b, size_t port) {
    std::lock_guard lk(m_);
    const size_t n = b.size();
    for (auto& [s, p] : subs_) {
        if (p >= 0 && size_t(p) != port) continue;
        std::lock_guard sl(s->m);
        size_t room = TapSubscriber::kMaxEvents - s->events;
        if (room == 0) {
            s->skipped += n;
            continue;
        }
        const size_t stride = (n + room - 1) / room;  // >= 1: spreads the sample over the batch
        size_t examined = 0;
        for (size_t i = 0; i < n && s->events < TapSubscriber::kMaxEvents; i += stride) {
            ++examined;
            if (s->where && !s->where->match(b, i)) continue;
            std::string_view ev = b.event(i);
            if (s->buf.size() + ev.size() + 1 > TapSubscriber::kMaxBytes) break;
            s->buf.append(ev);
            s->buf.push_back('\n');
            ++s->events;
        }
        s->skipped += n - examined;
    }
}

void TapPoint::add(std::shared_ptr<TapSubscriber> s, int port) {
    std::lock_guard lk(m_);
    subs_.emplace_back(std::move(s), port);
    count_.store(int(subs_.size()), std::memory_order_relaxed);
}

void TapPoint::remove(const TapSubscriber* s) {
    std::lock_guard lk(m_);
    std::erase_if(subs_, [s](const auto& e) { return e.first.get() == s; });
    count_.store(int(subs_.size()), std::memory_order_relaxed);
}

namespace {

constexpr auto kIdle = std::chrono::seconds(10);

struct Subscription {
    std::shared_ptr<TapSubscriber> sub;
    std::vector<std::weak_ptr<TapPoint>> points;
    std::string stage;
    std::chrono::steady_clock::time_point last_poll;
};

// Only the API server's thread calls tap_http; the mutex keeps it correct if that changes.
std::mutex g_m;
std::map<uint64_t, Subscription> g_subs;
uint64_t g_next_id = 1;

void unsubscribe(Subscription& s) {
    for (auto& w : s.points)
        if (auto p = w.lock()) p->remove(s.sub.get());
}

void expire_idle() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = g_subs.begin(); it != g_subs.end();) {
        if (now - it->second.last_poll > kIdle) {
            unsubscribe(it->second);
            it = g_subs.erase(it);
        } else {
            ++it;
        }
    }
}

TapReply error(int code, const std::string& msg) {
    std::string body = "{\"error\":";
    append_json_string(body, msg);
    return {code, body + "}"};
}

// Index of `p` among up's ports, counted from 1; -1 for none (the stage itself), -2 unknown.
int port_index(const StageSnapshot& up, const std::string& p) {
    if (p.empty()) return -1;
    auto f = std::find(up.ports.begin(), up.ports.end(), p);
    return f == up.ports.end() ? -2 : 1 + int(f - up.ports.begin());
}

using RunningStages = std::map<std::string, const StageSnapshot*>;

// An output emits nothing: its tap is what it receives, from each stage it reads.
void tap_output_inputs(const StageSnapshot& n, const RunningStages& by_name, Subscription& sub) {
    for (const auto& in : n.inputs) {
        auto dot = in.find('.');
        std::string up_name = in.substr(0, dot), up_port = dot == std::string::npos ? "" : in.substr(dot + 1);
        auto up = by_name.find(up_name);
        if (up == by_name.end()) continue;
        int pi = port_index(*up->second, up_port);
        up->second->tap->add(sub.sub, pi < 0 ? 0 : pi);
        sub.points.push_back(up->second->tap);
    }
}

// Adds sub to the tap points of `stage` ("name" or "name.port"); an error reply when there is
// no such running stage or port.
std::optional<TapReply> attach(Runtime& rt, const std::string& stage, Subscription& sub) {
    std::string name = stage, port;
    if (auto dot = stage.find('.'); dot != std::string::npos) name = stage.substr(0, dot), port = stage.substr(dot + 1);
    PipelineSnapshot snap = rt.snapshot();
    RunningStages by_name;
    std::string names;
    for (const auto& n : snap.stages) {
        if (n.retiring) continue;
        by_name[n.name] = &n;
        names += (names.empty() ? "" : ", ") + n.name;
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) return error(404, fmt::format("unknown stage '{}'; running stages: {}", name, names));
    const StageSnapshot& n = *it->second;
    if (n.kind == StageKind::output) {
        if (!port.empty()) return error(404, fmt::format("output '{}' has no ports", name));
        tap_output_inputs(n, by_name, sub);
        return std::nullopt;
    }
    int pi = port_index(n, port);
    if (pi == -2) {
        std::string ports;
        for (const auto& p : n.ports) ports += (ports.empty() ? "" : ", ") + p;
        return error(404, fmt::format("'{}' names no port of {}{}", stage, name, ports.empty() ? " (it has none)" : "; its ports: " + ports));
    }
    n.tap->add(sub.sub, pi);
    sub.points.push_back(n.tap);
    return std::nullopt;
}

// A new subscriber, with its --where condition compiled; an error reply when it does not compile.
std::variant<std::shared_ptr<TapSubscriber>, TapReply> make_subscriber(const std::string& where) {
    auto s = std::make_shared<TapSubscriber>();
    if (where.empty()) return s;
    if (!tap_filter_compiler()) return error(400, "--where is not available in this build");
    try {
        s->where = tap_filter_compiler()(where);
    } catch (const std::exception& e) {
        return error(400, fmt::format("invalid --where condition: {}", e.what()));
    }
    return s;
}

TapReply subscribe(Runtime& rt, std::string_view body) {
    std::string stage, where;
    try {
        simdjson::dom::parser p;
        simdjson::dom::element doc = p.parse(body.data(), body.size());
        stage = std::string(std::string_view(doc["stage"]));
        if (auto w = doc["where"]; !w.error()) where = std::string(std::string_view(w.value()));
    } catch (const simdjson::simdjson_error&) {
        return error(400, "the body must be {\"stage\": \"NAME\", \"where\": \"CONDITION\"}");
    }
    auto made = make_subscriber(where);
    if (auto* e = std::get_if<TapReply>(&made)) return *e;
    Subscription sub{std::get<std::shared_ptr<TapSubscriber>>(made), {}, stage, std::chrono::steady_clock::now()};
    if (auto e = attach(rt, stage, sub)) return *e;
    std::lock_guard lk(g_m);
    uint64_t id = g_next_id++;
    g_subs.emplace(id, std::move(sub));
    return {200, fmt::format("{{\"id\":{}}}", id)};
}

}  // namespace

std::optional<TapReply> tap_http(Runtime& rt, std::string_view method, std::string_view target, std::string_view body) {
    if (target != "/tap" && target.substr(0, 5) != "/tap/") return std::nullopt;
    {
        std::lock_guard lk(g_m);
        expire_idle();
    }
    if (target == "/tap") {
        if (method != "POST") return error(405, "use POST /tap to start a tap, GET /tap/ID to read it");
        return subscribe(rt, body);
    }
    uint64_t id = 0;
    try {
        id = std::stoull(std::string(target.substr(5)));
    } catch (...) {
        return error(404, "no such tap");
    }
    std::lock_guard lk(g_m);
    auto it = g_subs.find(id);
    if (it == g_subs.end()) return error(404, "no such tap (it expires 10 s after its last read)");
    Subscription& s = it->second;
    if (method == "DELETE") {
        unsubscribe(s);
        g_subs.erase(it);
        return TapReply{200, "{\"deleted\":true}"};
    }
    if (method != "GET") return error(405, "use GET or DELETE");
    s.last_poll = std::chrono::steady_clock::now();
    TapReply r;
    r.content_type = "application/x-ndjson";
    std::string events;
    uint64_t skipped = 0;
    {
        std::lock_guard sl(s.sub->m);
        events.swap(s.sub->buf);
        s.sub->events = 0;
        skipped = std::exchange(s.sub->skipped, 0);
    }
    bool gone = std::all_of(s.points.begin(), s.points.end(), [](const auto& w) { return w.expired(); });
    r.body = fmt::format("{{\"skipped\":{},\"gone\":{}}}\n", skipped, gone ? "true" : "false") + events;
    if (gone && events.empty()) {
        g_subs.erase(it);
        return error(410, fmt::format("stage '{}' was stopped or replaced by a reload", s.stage));
    }
    return r;
}

}  // namespace hbf
