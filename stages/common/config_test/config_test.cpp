// `hbforward test -c FILE`: runs the [[tests]] of a config (the shape `vector test` uses) through
// the config's own filters, built fresh for every test and wired as the runtime wires them. No
// input or output starts: events are inserted at a stage, and what a stage (or one of its named
// ports) emits, or what an output would receive, is captured and checked.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <map>

#include "../../filters/common/condition.h"
#include "commands.h"
#include "config.h"
#include "queue.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::Condition;
using filters::ConditionError;
using filters::FieldReader;

constexpr int64_t kUnbounded = int64_t(1) << 40;

// The conditions of [[tests.outputs]] parse as a filter's would; errors point into the string.
const ConfigCheckRegistrar check_conditions{[](PipelineConfig& cfg) {
    for (const auto& t : cfg.tests)
        for (const auto& o : t.outputs)
            for (const auto& [text, where] : o.conditions) {
                FieldReader reader;
                try {
                    Condition c(text, reader);
                } catch (const ConditionError& e) {
                    Location l = where;
                    l.column += uint32_t(e.column);
                    cfg.diags.push_back({l, fmt::format("test '{}': invalid condition: {}\n  {}\n  {}^", t.name, e.what(), text,
                                                        std::string(e.column - 1, ' '))});
                }
            }
}};

// One test's pipeline: every stage's context and emitter, a queue in front of each filter and
// output, the filters themselves.
class TestGraph {
public:
    explicit TestGraph(const PipelineConfig& cfg) {
        for (const auto& d : cfg.stages) {
            auto n = std::make_unique<Node>();
            n->decl = &d;
            n->ctx = std::make_unique<StageContext>(d.name, d.type, to_string(d.kind));
            n->ctx->targets.resize(1 + d.ports.size());
            n->emitter = std::make_unique<Emitter>(*n->ctx);
            if (d.kind != StageKind::input) n->queue = std::make_unique<BatchQueue>(kUnbounded, kUnbounded);
            if (d.kind == StageKind::filter) {
                n->filter = d.info->make_filter(*d.cfg);
                n->filter->start(*n->ctx);
            }
            index_[d.name] = nodes_.size();
            nodes_.push_back(std::move(n));
        }
        for (auto& n : nodes_)
            for (const auto& r : n->decl->inputs) node(r.stage).ctx->targets[port_of(node(r.stage), r.port)].push_back(n->queue.get());
        order_filters();
    }

    // A queue that receives what `stage` emits on `port` ("" = everything), or what an output receives.
    BatchQueue* capture(const std::string& stage, const std::string& port) {
        Node& n = node(stage);
        if (n.decl->kind == StageKind::output) return n.queue.get();
        captures_.push_back(std::make_unique<BatchQueue>(kUnbounded, kUnbounded));
        n.ctx->targets[port_of(n, port)].push_back(captures_.back().get());
        return captures_.back().get();
    }

    void insert(const std::string& stage, std::string_view text) {
        BatchPtr b = Batch::make();
        b->append(text);
        Node& n = node(stage);
        if (n.decl->kind == StageKind::input) n.emitter->emit(std::move(b));
        else n.queue->push(b, never_);
    }

    // Runs every filter over what reached it, upstream first; returns an error text or "".
    std::string run() {
        for (Node* n : order_) {
            BatchPtr in[32];
            for (size_t got; (got = n->queue->pop(in, 32, std::chrono::microseconds(0))) > 0;) {
                for (size_t i = 0; i < got; ++i) {
                    try {
                        n->filter->process(std::move(in[i]), *n->emitter);
                    } catch (const std::exception& e) {
                        return fmt::format("filter '{}' failed: {}", n->decl->name, e.what());
                    }
                }
            }
            n->filter->stop();
        }
        return "";
    }

private:
    struct Node {
        const StageDecl* decl = nullptr;
        std::unique_ptr<StageContext> ctx;
        std::unique_ptr<Emitter> emitter;
        std::unique_ptr<BatchQueue> queue;
        std::unique_ptr<Filter> filter;
    };
    Node& node(const std::string& name) { return *nodes_.at(index_.at(name)); }
    static size_t port_of(const Node& n, const std::string& port) {
        if (port.empty()) return 0;
        return 1 + size_t(std::find(n.decl->ports.begin(), n.decl->ports.end(), port) - n.decl->ports.begin());
    }
    // Filters in an order where every filter comes after the filters it reads from (the config
    // has no cycles: the loader refuses them).
    void order_filters() {
        std::map<std::string, int> state;
        std::function<void(Node&)> visit = [&](Node& n) {
            if (state[n.decl->name]++) return;
            for (const auto& r : n.decl->inputs) visit(node(r.stage));
            if (n.filter) order_.push_back(&n);
        };
        for (auto& n : nodes_) visit(*n);
    }

    std::vector<std::unique_ptr<Node>> nodes_;
    std::map<std::string, size_t> index_;
    std::vector<Node*> order_;
    std::vector<std::unique_ptr<BatchQueue>> captures_;
    std::atomic<bool> never_{false};
};

std::vector<std::string> drain(BatchQueue& q) {
    std::vector<std::string> out;
    BatchPtr in[32];
    for (size_t got; (got = q.pop(in, 32, std::chrono::microseconds(0))) > 0;)
        for (size_t i = 0; i < got; ++i)
            for (size_t e = 0; e < in[i]->size(); ++e) out.emplace_back(in[i]->event(e));
    return out;
}

std::string shorten(std::string_view ev) {
    return ev.size() > 300 ? std::string(ev.substr(0, 300)) + "..." : std::string(ev);
}

// What differed, one line each; empty when the test passed.
std::vector<std::string> run_test(const PipelineConfig& cfg, const ConfigTest& t) {
    std::vector<std::string> diffs;
    TestGraph g(cfg);
    std::vector<BatchQueue*> caps;
    for (const auto& o : t.outputs) caps.push_back(g.capture(o.stage, o.port));
    for (const auto& in : t.inputs) g.insert(in.insert_at, in.value);
    if (std::string err = g.run(); !err.empty()) return {err};
    simdjson::ondemand::parser parser;
    for (size_t k = 0; k < t.outputs.size(); ++k) {
        const auto& o = t.outputs[k];
        std::vector<std::string> events = drain(*caps[k]);
        if (o.count && int64_t(events.size()) != *o.count) {
            std::string d = fmt::format("{}: expected {} event{}, got {}", o.extract_from, *o.count, *o.count == 1 ? "" : "s", events.size());
            for (size_t i = 0; i < events.size() && i < 5; ++i) d += "\n      " + shorten(events[i]);
            diffs.push_back(d);
        }
        if (o.conditions.empty()) continue;
        if (events.empty() && !o.count) {
            diffs.push_back(fmt::format("{}: no events to check the conditions against", o.extract_from));
            continue;
        }
        FieldReader reader;
        std::vector<Condition> conds;
        for (const auto& [text, where] : o.conditions) conds.emplace_back(text, reader);
        std::string padded;
        for (size_t i = 0; i < events.size(); ++i) {
            padded.assign(events[i]);
            padded.reserve(events[i].size() + Batch::kPadding);
            reader.read(parser, padded.data(), events[i].size(), padded.capacity());
            for (const auto& c : conds)
                if (!c.eval(reader))
                    diffs.push_back(fmt::format("{}: event {} does not satisfy '{}': {}", o.extract_from, i + 1, c.text(), shorten(events[i])));
        }
    }
    return diffs;
}

int cmd_test(const std::string& path) {
    setup_logging("warn", "text");
    auto cfg = load_config(path);
    build_stages(*cfg);  // option semantics and the tests' conditions, as validate checks them
    if (!cfg->ok()) {
        std::fputs(cfg->report().c_str(), stderr);
        std::fprintf(stderr, "%s: the config is invalid; no test ran\n", path.c_str());
        return 1;
    }
    if (cfg->tests.empty()) {
        std::fprintf(stderr, "%s: no [[tests]] to run\n", path.c_str());
        return 1;
    }
    std::printf("running %zu test%s from %s\n", cfg->tests.size(), cfg->tests.size() == 1 ? "" : "s", path.c_str());
    size_t failed = 0;
    for (const auto& t : cfg->tests) {
        std::vector<std::string> diffs;
        try {
            diffs = run_test(*cfg, t);
        } catch (const std::exception& e) {
            diffs = {e.what()};
        }
        if (diffs.empty()) {
            std::printf("test %s ... passed\n", t.name.c_str());
            continue;
        }
        ++failed;
        std::printf("test %s ... FAILED (%s:%u)\n", t.name.c_str(), t.where.file.c_str(), t.where.line);
        for (const auto& d : diffs) std::printf("    %s\n", d.c_str());
    }
    std::printf("%zu passed, %zu failed\n", cfg->tests.size() - failed, failed);
    return failed ? 1 : 0;
}

const CommandRegistrar reg{Command{
    "test", "Run the config's [[tests]] through its filters (no input or output starts); exit 0 when all pass.",
    [](CLI::App& app) -> std::function<int()> {
        auto path = std::make_shared<std::string>();
        app.add_option("-c,--config", *path, "Config file (TOML) holding [[tests]].")->required();
        return [path] { return cmd_test(*path); };
    }}};

}  // namespace
}  // namespace hbf::stages
