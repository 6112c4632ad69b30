// `hbforward test -c FILE`: runs the [[tests]] of a config (the shape `vector test` uses) through
// the config's own filters, built fresh for every test and wired as the runtime wires them. No
// input or output starts: events are inserted at a stage, and what a stage (or one of its named
// ports) emits, or what an output would receive, is captured and checked.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <set>

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

// One [[tests]] entry: events inserted at stages, what given stages must emit.
struct ConfigTest {
    std::string name;
    Location where;
    struct Insert {
        std::string insert_at;  // a stage: an input's events go to its downstream, others receive it
        std::string value;      // the event's text (`value`, or `log_fields` as JSON)
        Location where;
    };
    struct Extract {
        std::string extract_from;  // "stage" or "stage.port"
        std::string stage, port;
        std::optional<int64_t> count;
        std::vector<std::pair<std::string, Location>> conditions;
        Location where;
    };
    std::vector<Insert> inputs;
    std::vector<Extract> outputs;
};


struct Ctx {
    PipelineConfig& cfg;
    void error(const toml::node& n, std::string msg) { cfg.diags.push_back({location_of(n, cfg.file), std::move(msg)}); }
};

// Unknown keys of a test table, with "did you mean".
bool known_keys(Ctx& c, const toml::table& t, const std::vector<std::string>& keys, const std::string& what) {
    bool ok = true;
    for (const auto& [k, v] : t) {
        std::string key(k.str());
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
        std::string sug = did_you_mean(key, keys);
        c.cfg.diags.push_back({{c.cfg.file, k.source().begin.line, k.source().begin.column},
                               fmt::format("unknown option '{}' in {}{}", key, what, sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug))});
        ok = false;
    }
    return ok;
}

std::string stage_names(const PipelineConfig& cfg) {
    std::string s;
    for (const auto& d : cfg.stages) s += (s.empty() ? "" : ", ") + d.name;
    return s;
}

void load_insert(Ctx& c, const toml::node& n, const std::string& what, ConfigTest& t) {
    const toml::table* tb = n.as_table();
    if (!tb) return c.error(n, what + " must be a table: [[tests.inputs]] insert_at = \"parse\", value = '{...}'");
    known_keys(c, *tb, {"insert_at", "value", "log_fields"}, what);
    ConfigTest::Insert in;
    in.where = location_of(n, c.cfg.file);
    const toml::node* at = tb->get("insert_at");
    if (!at || !at->is_string()) return c.error(at ? *at : n, what + " needs insert_at = \"<stage>\": the stage that receives the event");
    in.insert_at = at->as_string()->get();
    if (!c.cfg.find(in.insert_at)) {
        std::vector<std::string> names;
        for (const auto& d : c.cfg.stages) names.push_back(d.name);
        std::string sug = did_you_mean(in.insert_at, names);
        return c.error(*at, fmt::format("{}: insert_at names no stage: '{}'{}; stages: {}", what, in.insert_at,
                                        sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug), stage_names(c.cfg)));
    }
    const toml::node* value = tb->get("value");
    const toml::node* fields = tb->get("log_fields");
    if ((value != nullptr) == (fields != nullptr))
        return c.error(n, what + " needs exactly one of value = '<event text>' or log_fields = { ... }");
    if (value) {
        if (!value->is_string()) return c.error(*value, what + ": value must be a string, the event's text");
        in.value = value->as_string()->get();
    } else {
        if (!fields->is_table()) return c.error(*fields, what + ": log_fields must be a table, the event's fields");
        in.value = toml_to_json(*fields);
    }
    t.inputs.push_back(std::move(in));
}

void load_extract(Ctx& c, const toml::node& n, const std::string& what, ConfigTest& t) {
    const toml::table* tb = n.as_table();
    if (!tb) return c.error(n, what + " must be a table: [[tests.outputs]] extract_from = \"route.major\"");
    known_keys(c, *tb, {"extract_from", "count", "conditions"}, what);
    ConfigTest::Extract out;
    out.where = location_of(n, c.cfg.file);
    const toml::node* from = tb->get("extract_from");
    if (!from || !from->is_string()) return c.error(from ? *from : n, what + " needs extract_from = \"<stage>\" or \"<stage>.<port>\"");
    out.extract_from = from->as_string()->get();
    out.stage = out.extract_from;
    if (auto dot = out.extract_from.find('.'); dot != std::string::npos) {
        out.stage = out.extract_from.substr(0, dot);
        out.port = out.extract_from.substr(dot + 1);
    }
    const StageDecl* d = c.cfg.find(out.stage);
    if (!d) {
        std::vector<std::string> names;
        for (const auto& s : c.cfg.stages) names.push_back(s.name);
        std::string sug = did_you_mean(out.stage, names);
        return c.error(*from, fmt::format("{}: extract_from names no stage: '{}'{}; stages: {}", what, out.stage,
                                          sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug), stage_names(c.cfg)));
    }
    if (!out.port.empty() && std::find(d->ports.begin(), d->ports.end(), out.port) == d->ports.end()) {
        std::string ports;
        for (const auto& p : d->ports) ports += (ports.empty() ? "" : ", ") + p;
        return c.error(*from, fmt::format("{}: '{}' names no port of {}{}", what, out.extract_from, out.stage,
                                          ports.empty() ? std::string(" (it has none)") : "; its ports: " + ports));
    }
    if (const toml::node* cn = tb->get("count")) {
        auto v = cn->value<int64_t>();
        if (!cn->is_integer() || !v || *v < 0) return c.error(*cn, what + ": count must be an integer, 0 or more");
        out.count = *v;
    }
    if (const toml::node* cs = tb->get("conditions")) {
        const toml::array* a = cs->as_array();
        if (!a) return c.error(*cs, what + ": conditions must be a list of condition strings, such as ['.severity == \"major\"']");
        for (const auto& e : *a) {
            if (!e.is_string()) return c.error(e, what + ": each condition must be a string");
            out.conditions.emplace_back(e.as_string()->get(), location_of(e, c.cfg.file));
        }
    }
    if (!out.count && out.conditions.empty()) return c.error(n, what + " checks nothing: give count, conditions or both");
    t.outputs.push_back(std::move(out));
}

// The [[tests]] of a config: their shape and the stages and ports they name.
std::vector<ConfigTest> load_tests(PipelineConfig& cfg) {
    std::vector<ConfigTest> tests;
    const toml::node* root = cfg.root.get("tests");
    if (!root) return tests;
    Ctx c{cfg};
    const toml::array* arr = root->as_array();
    if (!arr) {
        c.error(*root, "'tests' must be an array of tables: [[tests]] name = \"...\"");
        return tests;
    }
    std::set<std::string> names;
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& n = *arr->get(i);
        const toml::table* tb = n.as_table();
        std::string what = fmt::format("tests[{}]", i);
        if (!tb) {
            c.error(n, what + " must be a table");
            continue;
        }
        known_keys(c, *tb, {"name", "inputs", "outputs"}, what);
        ConfigTest t;
        t.where = location_of(n, cfg.file);
        const toml::node* name = tb->get("name");
        if (!name || !name->is_string() || name->as_string()->get().empty()) {
            c.error(name ? *name : n, what + " needs name = \"...\"");
            continue;
        }
        t.name = name->as_string()->get();
        what = fmt::format("test '{}'", t.name);
        if (!names.insert(t.name).second) c.error(*name, fmt::format("two tests are named '{}'", t.name));
        const toml::array* ins = tb->get_as<toml::array>("inputs");
        if (!ins || ins->empty()) c.error(tb->get("inputs") ? *tb->get("inputs") : n, what + " needs at least one [[tests.inputs]]");
        else
            for (size_t k = 0; k < ins->size(); ++k) load_insert(c, *ins->get(k), fmt::format("{} input {}", what, k + 1), t);
        const toml::array* outs = tb->get_as<toml::array>("outputs");
        if (!outs || outs->empty()) c.error(tb->get("outputs") ? *tb->get("outputs") : n, what + " needs at least one [[tests.outputs]]");
        else
            for (size_t k = 0; k < outs->size(); ++k) load_extract(c, *outs->get(k), fmt::format("{} output {}", what, k + 1), t);
        tests.push_back(std::move(t));
    }
    return tests;
}

// The conditions of [[tests.outputs]] parse as a filter's would; errors point into the string.
void check_conditions(PipelineConfig& cfg, const std::vector<ConfigTest>& tests) {
    for (const auto& t : tests)
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
}

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
    build_stages(*cfg);  // option semantics, as validate checks them
    std::vector<ConfigTest> tests = load_tests(*cfg);
    check_conditions(*cfg, tests);
    if (!cfg->ok()) {
        std::fputs(cfg->report().c_str(), stderr);
        std::fprintf(stderr, "%s: the config is invalid; no test ran\n", path.c_str());
        return 1;
    }
    if (tests.empty()) {
        std::fprintf(stderr, "%s: no [[tests]] to run\n", path.c_str());
        return 1;
    }
    std::printf("running %zu test%s from %s\n", tests.size(), tests.size() == 1 ? "" : "s", path.c_str());
    size_t failed = 0;
    for (const auto& t : tests) {
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
    std::printf("%zu passed, %zu failed\n", tests.size() - failed, failed);
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
