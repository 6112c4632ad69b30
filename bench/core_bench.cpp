// Micro-benchmarks of the core's hot path: the json and enrich filters on HealthBot
// notifications, and a queue hop between two threads. Run: build/bench/core_bench
#include <benchmark/benchmark.h>
#include <fstream>
#include <thread>

#include "config.h"
#include "queue.h"
#include "registry.h"
#include "samples.h"

using namespace hbf;

namespace {

std::vector<std::string> corpus() { return bench::healthbot_samples(); }

BatchPtr make_batch(size_t n) {
    static auto c = corpus();
    BatchPtr b = Batch::make();
    for (size_t i = 0; i < n; ++i) b->append(c[i % c.size()]);
    return b;
}

struct FilterRig {
    std::unique_ptr<PipelineConfig> cfg;
    std::vector<BuiltStage> built;
    Filter* filter = nullptr;
    std::unique_ptr<StageContext> ctx;
    std::unique_ptr<BatchQueue> q;
    std::unique_ptr<Emitter> em;

    FilterRig(const std::string& type, const std::string& body) {
        cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"" + type + "\"\ninputs = [\"i\"]\n" + body +
                                   "\n[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                               "bench.toml");
        built = build_stages(*cfg);
        if (!cfg->ok()) throw std::runtime_error(cfg->report());
        for (auto& b : built)
            if (b.filter) filter = b.filter.get();
        ctx = std::make_unique<StageContext>("f", type, "filter");
        q = std::make_unique<BatchQueue>(1 << 30, int64_t(1) << 40);
        ctx->targets.resize(1);
        ctx->targets[0].push_back(q.get());
        em = std::make_unique<Emitter>(*ctx);
        filter->start(*ctx);
    }

    void run(benchmark::State& state) {
        BatchPtr src = make_batch(1024);
        BatchPtr out[8];
        size_t bytes = 0;
        for (auto _ : state) {
            state.PauseTiming();
            BatchPtr b = src->clone();
            state.ResumeTiming();
            filter->process(std::move(b), *em);
            size_t n = q->pop(out, 8, std::chrono::microseconds(0));
            for (size_t i = 0; i < n; ++i) out[i].reset();
            bytes += src->bytes();
        }
        state.SetItemsProcessed(int64_t(state.iterations()) * 1024);
        state.SetBytesProcessed(int64_t(bytes));
    }
};

void BM_json(benchmark::State& state) { FilterRig("json", "").run(state); }
void BM_enrich_static(benchmark::State& state) { FilterRig("enrich", "fields = { collector = \"edge-01\", site = \"ams\" }").run(state); }
void BM_enrich_time_host(benchmark::State& state) {
    FilterRig("enrich", "received_at_field = \"received_at\"\nhostname_field = \"host\"").run(state);
}

// One batch of 1024 events from a producer thread to this one.
void BM_queue_hop(benchmark::State& state) {
    BatchQueue q(1 << 20, int64_t(1) << 32);
    std::atomic<bool> stop{false}, abort{false};
    BatchPtr proto = make_batch(1024);
    std::thread producer([&] {
        while (!stop) {
            BatchPtr b = Batch::make();
            b->events = proto->events;  // shape only: the hop is what is measured
            if (q.events() < 64 * 1024) q.push(b, abort);
            else std::this_thread::yield();
        }
    });
    BatchPtr out[32];
    int64_t events = 0;
    for (auto _ : state) {
        size_t n = q.pop(out, 1, std::chrono::milliseconds(100));
        for (size_t i = 0; i < n; ++i) {
            events += int64_t(out[i]->size());
            out[i].reset();
        }
    }
    stop = true;
    while (q.pop(out, 32, std::chrono::milliseconds(1)) > 0) {}
    producer.join();
    state.SetItemsProcessed(events);
}

}  // namespace

BENCHMARK(BM_json)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_enrich_static)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_enrich_time_host)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_queue_hop)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
