// Events per second of each filter of stages/filters/{select,route,fields,lookup,dedupe,throttle}
// on batches of 1024 events built from the samples in tests/data/healthbot.jsonl.
//
// Each iteration clones the prepared batch (filters that drop events compact it in place) and
// drains what the filter emitted; BM_baseline_clone measures that overhead alone. The
// allocs/event counter counts calls to operator new during the timed loop: 0 in steady state
// means no per-event allocation.
#include <atomic>
#include <benchmark/benchmark.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "config.h"
#include "queue.h"
#include "registry.h"
#include "samples.h"

// Counting replacements of the global operator new/delete. GCC flags malloc/free inside them as
// mismatched once it inlines them into callers; they are the matching pair here.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<uint64_t> g_allocs{0};
}
void* operator new(size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace hbf;

namespace {

std::vector<std::string> corpus() { return bench::healthbot_samples(); }

// Where an event's device-id value starts, whatever the spacing around the colon (npos if none).
size_t device_id_at(const std::string& e) {
    size_t p = e.find("\"device-id\"");
    if (p == std::string::npos) return p;
    p = e.find('"', p + 11);
    return p == std::string::npos ? p : p + 1;
}

// 1024 events: the corpus repeated; with `unique`, each copy's device-id gets a suffix.
BatchPtr make_batch(bool unique, size_t round = 0) {
    auto ex = corpus();
    BatchPtr b = Batch::make();
    for (size_t i = 0; i < 1024; ++i) {
        std::string e = ex[i % ex.size()];
        if (unique) {
            size_t p = device_id_at(e);
            if (p != std::string::npos) e.insert(p, "u" + std::to_string(round * 1024 + i) + "-");
        }
        b->append(e);
    }
    return b;
}

std::string devices_csv() {
    std::string path = "/tmp/hbf-bench-devices.csv";
    std::ofstream f(path);
    f << "device-id,site,region,role\n";
    for (const auto& e : corpus()) {
        size_t p = device_id_at(e);
        if (p == std::string::npos) continue;
        f << e.substr(p, e.find('"', p) - p) << ",\"AMS1, hall 2\",eu-west,pe\n";
    }
    for (int i = 0; i < 5000; ++i) f << "other-" << i << ",FRA" << i % 7 << ",eu-central,core\n";
    return path;
}

struct Rig {
    std::unique_ptr<PipelineConfig> cfg;
    std::vector<BuiltStage> built;
    Filter* filter = nullptr;
    std::unique_ptr<StageContext> ctx;
    std::vector<std::unique_ptr<BatchQueue>> queues;
    std::unique_ptr<Emitter> emitter;
    BatchPtr drained[64];

    Rig(const std::string& type, const std::string& body, bool self_port = true) {
        std::string text = "[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"" + type + "\"\ninputs = [\"i\"]\n" + body +
                           "\n[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n";
        cfg = load_config_text(text, "bench.toml");
        if (cfg->ok()) built = build_stages(*cfg);
        if (!cfg->ok()) {
            std::fprintf(stderr, "%s\n", cfg->report().c_str());
            std::exit(1);
        }
        const StageDecl* decl = nullptr;
        for (auto& b : built)
            if (b.filter) filter = b.filter.get(), decl = b.decl;
        ctx = std::make_unique<StageContext>("f", type, "filter");
        ctx->targets.resize(1 + decl->ports.size());
        for (size_t p = self_port ? 0 : 1; p < ctx->targets.size(); ++p) {
            queues.push_back(std::make_unique<BatchQueue>(1 << 30, int64_t(1) << 40));
            ctx->targets[p].push_back(queues.back().get());
        }
        emitter = std::make_unique<Emitter>(*ctx);
        filter->start(*ctx);
    }
    ~Rig() { filter->stop(); }

    void drain() {
        for (auto& q : queues)
            while (size_t n = q->pop(drained, 64, std::chrono::microseconds(0)))
                for (size_t i = 0; i < n; ++i) drained[i].reset();
    }
};

void run(benchmark::State& st, Rig& rig, const BatchPtr& tmpl, bool vary = false) {
    // Warm up: pools, parsers' buffers and tables reach their steady size.
    for (int i = 0; i < 50; ++i) rig.filter->process(tmpl->clone(), *rig.emitter), rig.drain();
    uint64_t a0 = g_allocs.load();
    size_t rounds = 0;
    for (auto _ : st) {
        BatchPtr b = tmpl->clone();
        if (vary) b->received_ns += int64_t(++rounds) * 1000;
        rig.filter->process(std::move(b), *rig.emitter);
        rig.drain();
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(tmpl->size()));
    st.counters["allocs/event"] = double(g_allocs.load() - a0) / double(st.iterations() * tmpl->size());
}

void BM_baseline_clone(benchmark::State& st) {
    BatchPtr t = make_batch(false);
    uint64_t a0 = g_allocs.load();
    for (auto _ : st) {
        BatchPtr b = t->clone();
        benchmark::DoNotOptimize(b->buf.data());
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * 1024);
    st.counters["allocs/event"] = double(g_allocs.load() - a0) / double(st.iterations() * 1024);
}

void BM_select(benchmark::State& st) {
    Rig r("select", R"(where = '.severity in ["major", "critical"]')");
    run(st, r, make_batch(false));
}
void BM_select_regex_and(benchmark::State& st) {
    Rig r("select", R"(where = '.severity != "normal" && (.keys."interface-name" =~ "^(xe|ge|et)-" || exists(.keys.fpc))')");
    run(st, r, make_batch(false));
}
void BM_route(benchmark::State& st) {
    Rig r("route", "[filters.f.routes]\nmajor = '.severity in [\"major\",\"critical\"]'\ninfo = '.severity == \"normal\"'\n"
                   "edge = '.group =~ \"edge\"'",
          false);
    run(st, r, make_batch(false));
}
void BM_fields(benchmark::State& st) {
    Rig r("fields", "rename = { \"device-id\" = \"device\", \"keys._playbook_name\" = \"playbook\" }\n"
                    "parse_json = [\"keys._instance_id\"]\nset = { \"labels.env\" = \"prod\" }\nremove = [\"message\"]");
    run(st, r, make_batch(false));
}
void BM_fields_flatten(benchmark::State& st) {
    Rig r("fields", "flatten = \"keys\"");
    run(st, r, make_batch(false));
}
void BM_lookup(benchmark::State& st) {
    Rig r("lookup", "file = \"" + devices_csv() + "\"\nkey = \"device-id\"\ncolumns = [\"site\", \"region\", \"role\"]");
    run(st, r, make_batch(false));
}
void BM_dedupe_repeats(benchmark::State& st) {
    Rig r("dedupe", "window = \"5m\"\nrepeat_count_field = \"repeat_count\"");
    run(st, r, make_batch(false));
}
void BM_dedupe_unique(benchmark::State& st) {
    // Every event a new alarm: 1024 distinct per batch, 8 batches cycling through a 4096-entry table (inserts and evictions).
    Rig r("dedupe", "window = \"5m\"\nmax_entries = 4096");
    std::vector<BatchPtr> ts;
    for (size_t i = 0; i < 8; ++i) ts.push_back(make_batch(true, i));
    for (int i = 0; i < 50; ++i) r.filter->process(ts[size_t(i) % 8]->clone(), *r.emitter), r.drain();
    uint64_t a0 = g_allocs.load();
    size_t k = 0;
    for (auto _ : st) {
        r.filter->process(ts[k++ % 8]->clone(), *r.emitter);
        r.drain();
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * 1024);
    st.counters["allocs/event"] = double(g_allocs.load() - a0) / double(st.iterations() * 1024);
}
void BM_throttle(benchmark::State& st) {
    Rig r("throttle", "rate = 100\nper = \"1s\"\nkey = \"{device-id}\"\non_excess = \"sample\"\nsample = 10");
    run(st, r, make_batch(false), true);
}

}  // namespace

BENCHMARK(BM_baseline_clone);
BENCHMARK(BM_select);
BENCHMARK(BM_select_regex_and);
BENCHMARK(BM_route);
BENCHMARK(BM_fields);
BENCHMARK(BM_fields_flatten);
BENCHMARK(BM_lookup);
BENCHMARK(BM_dedupe_repeats);
BENCHMARK(BM_dedupe_unique);
BENCHMARK(BM_throttle);
BENCHMARK_MAIN();
