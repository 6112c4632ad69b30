#include "metrics.h"

#include <fmt/format.h>

namespace hbf {

void Histogram::observe_ns(int64_t ns) {
    if (ns < 0) ns = 0;
    double s = double(ns) / 1e9;
    size_t i = 0;
    while (i < kN && s > kBounds[i]) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(uint64_t(ns), std::memory_order_relaxed);
}

MetricsRegistry& MetricsRegistry::global() {
    static auto* r = new MetricsRegistry();
    return *r;
}

namespace {
// The family called `name`, created the first time, with its help and type (set again on every
// call: the last registration's help text wins).
template <class Families>
auto& family(Families& families, const std::string& name, const std::string& help, const char* type) {
    auto& f = families[name];
    f.help = help;
    f.type = type;
    return f;
}

// The family's metric with these labels, made in `store` (whose elements never move) the first time.
template <class Slots, class Store>
auto& metric(Slots& slots, Store& store, const Labels& labels) {
    auto& slot = slots[labels];
    if (!slot) slot = &store.emplace_back();
    return *slot;
}
}  // namespace

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lk(m_);
    return metric(family(families_, name, help, "counter").counters, counters_, labels);
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels, double divisor) {
    std::lock_guard lk(m_);
    auto& f = family(families_, name, help, "gauge");
    f.gauge_divisor = divisor;
    return metric(f.gauges, gauges_, labels);
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lk(m_);
    return metric(family(families_, name, help, "histogram").histograms, histograms_, labels);
}

namespace {
std::string escape_label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') { out.push_back('\\'); out.push_back(c); }
        else if (c == '\n') out += "\\n";
        else out.push_back(c);
    }
    return out;
}

std::string label_text(const Labels& labels, const std::string& extra = {}) {
    if (labels.empty() && extra.empty()) return {};
    std::string s = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) s += ',';
        first = false;
        s += k + "=\"" + escape_label(v) + "\"";
    }
    if (!extra.empty()) {
        if (!first) s += ',';
        s += extra;
    }
    return s + "}";
}
}  // namespace

std::string MetricsRegistry::render() const {
    std::lock_guard lk(m_);
    std::string out;
    out.reserve(16384);
    for (const auto& [name, f] : families_) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
        for (const auto& [l, c] : f.counters) out += fmt::format("{}{} {}\n", name, label_text(l), c->get());
        for (const auto& [l, g] : f.gauges) {
            if (f.gauge_divisor == 1) out += fmt::format("{}{} {}\n", name, label_text(l), g->get());
            else out += fmt::format("{}{} {}\n", name, label_text(l), double(g->get()) / f.gauge_divisor);
        }
        for (const auto& [l, h] : f.histograms) {
            uint64_t cum = 0;
            for (size_t i = 0; i <= Histogram::kN; ++i) {
                cum += h->buckets[i].load(std::memory_order_relaxed);
                std::string le = i < Histogram::kN ? fmt::format("le=\"{}\"", Histogram::kBounds[i]) : "le=\"+Inf\"";
                out += fmt::format("{}_bucket{} {}\n", name, label_text(l, le), cum);
            }
            out += fmt::format("{}_sum{} {}\n", name, label_text(l), double(h->sum_ns.load()) / 1e9);
            out += fmt::format("{}_count{} {}\n", name, label_text(l), h->count.load());
        }
    }
    return out;
}

uint64_t MetricsRegistry::sum(const std::string& name, const std::string& key, const std::string& value) const {
    std::lock_guard lk(m_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    uint64_t total = 0;
    for (const auto& [labels, c] : it->second.counters)
        for (const auto& [k, v] : labels)
            if (k == key && v == value) total += c->get();
    return total;
}

StageMetrics::StageMetrics(const std::string& s, const std::string& t, const std::string& k)
    : events_in(MetricsRegistry::global().counter("hbf_events_in_total", "Events received by the stage.", {{"stage", s}, {"type", t}})),
      events_out(MetricsRegistry::global().counter("hbf_events_out_total", "Events sent on by the stage.", {{"stage", s}, {"type", t}})),
      bytes_in(MetricsRegistry::global().counter("hbf_bytes_in_total", "Bytes of event text received by the stage.", {{"stage", s}, {"type", t}})),
      bytes_out(MetricsRegistry::global().counter("hbf_bytes_out_total", "Bytes of event text sent on by the stage.", {{"stage", s}, {"type", t}})),
      errors(MetricsRegistry::global().counter("hbf_errors_total", "Errors met by the stage.", {{"stage", s}, {"type", t}})),
      latency(MetricsRegistry::global().histogram("hbf_batch_latency_seconds", "Time from a batch's receipt to this stage finishing with it.", {{"stage", s}, {"type", t}})),
      stage(s), type(t), kind(k) {}

Counter& StageMetrics::dropped(const std::string& reason) {
    return MetricsRegistry::global().counter("hbf_events_dropped_total", "Events dropped by the stage, by reason.",
                                             {{"stage", stage}, {"type", type}, {"reason", reason}});
}

}  // namespace hbf
