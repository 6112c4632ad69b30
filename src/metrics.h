// Counters that stay on in benchmarks: relaxed atomics, summed on scrape.
//
// Every stage gets a StageMetrics; stages add their own families (the http input's requests
// by status, the kafka output's deliveries) through the registry. Pointers returned by the
// registry stay valid for the process's lifetime, so the hot path keeps them and never looks up.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace hbf {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) { v.fetch_add(n, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct Gauge {
    std::atomic<int64_t> v{0};
    void set(int64_t n) { v.store(n, std::memory_order_relaxed); }
    void add(int64_t n) { v.fetch_add(n, std::memory_order_relaxed); }
    int64_t get() const { return v.load(std::memory_order_relaxed); }
};

// Fixed buckets in seconds; observe() is two relaxed adds.
struct Histogram {
    static constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static constexpr size_t kN = sizeof(kBounds) / sizeof(kBounds[0]);
    std::atomic<uint64_t> buckets[kN + 1]{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
    void observe_ns(int64_t ns);
};

class MetricsRegistry {
public:
    static MetricsRegistry& global();

    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
    // `divisor` divides the stored integer when rendered: a gauge kept in µs shows seconds with 1e6.
    Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {}, double divisor = 1);
    Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {});

    // Prometheus text exposition format 0.0.4.
    std::string render() const;
    // Sum of a counter family's series whose label `key` equals `value` (for /pipeline).
    uint64_t sum(const std::string& name, const std::string& key, const std::string& value) const;

private:
    struct Family {
        std::string help, type;
        double gauge_divisor = 1;
        std::map<Labels, Counter*> counters;
        std::map<Labels, Gauge*> gauges;
        std::map<Labels, Histogram*> histograms;
    };
    mutable std::mutex m_;
    std::map<std::string, Family> families_;
    std::deque<Counter> counters_;
    std::deque<Gauge> gauges_;
    std::deque<Histogram> histograms_;
};

// The figures every stage has, labelled {stage, type}.
struct StageMetrics {
    StageMetrics(const std::string& stage, const std::string& type, const std::string& kind);
    Counter& events_in;
    Counter& events_out;
    Counter& bytes_in;
    Counter& bytes_out;
    Counter& errors;
    Histogram& latency;  // from the batch's receive time to this stage finishing with it
    // A counter of events dropped for `reason`; keep the reference, it is stable.
    Counter& dropped(const std::string& reason);

    const std::string stage, type, kind;
};

}  // namespace hbf
