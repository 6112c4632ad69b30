#include "config.h"

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace hbf {

const OptionSchema<ServiceConfig>& service_schema() {
    using S = ServiceConfig;
    static const OptionSchema<S> s{
        {"log_level", &S::log_level, "trace | debug | info | warn | error (`--log-level` overrides).",
         one_of{"trace", "debug", "info", "warn", "error"}},
        {"log_format", &S::log_format, "text | json (one JSON object a line).", one_of{"text", "json"}},
        {"shutdown_timeout", &S::shutdown_timeout, "How long SIGTERM may take to drain every queue and flush outputs."},
        {"queue_events", &S::queue_events, "Capacity of each filter's and output's input queue, in events.", at_least{1}},
        {"queue_bytes", &S::queue_bytes, "The same, in bytes of event text.", at_least{1024}},
        {"batch_events", &S::batch_events, "Most events an input puts in one batch.", at_least{1}},
        {"linger", &S::linger,
         "After taking fewer than 256 events (in fewer than 32 batches) from its queue, a stage's thread waits this long for more before the next take: "
         "far fewer thread wake-ups under many small requests, at most this much added latency; not after taking events "
         "an input waits on (a webhook request with ack = \"delivered\", a file input's checkpoint, a Kafka input's "
         "offset), whose senders the wait would only delay; 0 = off."},
        {"api_address", &S::api_address, "host:port of the health, metrics and reload API; empty disables it."},
        {"data_dir", &S::data_dir, "Directory for checkpoints, disk buffers (buffer/<output>/) and other state."},
    };
    return s;
}

bool PipelineConfig::ok() const {
    return std::none_of(diags.begin(), diags.end(), [](const Diagnostic& d) { return !d.warning; });
}

const StageDecl* PipelineConfig::find(const std::string& name) const {
    for (const auto& s : stages)
        if (s.name == name) return &s;
    return nullptr;
}

std::string PipelineConfig::report() const {
    auto sorted = diags;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    std::string out;
    for (const auto& d : sorted)
        out += fmt::format("{}:{}:{}: {}{}\n", d.where.file, d.where.line, d.where.column, d.warning ? "warning: " : "", d.message);
    return out;
}

namespace {

const char* section_of(StageKind k) {
    switch (k) {
        case StageKind::input: return "inputs";
        case StageKind::filter: return "filters";
        case StageKind::output: return "outputs";
    }
    return "?";
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
}

void load_service(PipelineConfig& cfg) {
    const toml::node* n = cfg.root.get("service");
    if (!n) return;
    const toml::table* t = n->as_table();
    if (!t) {
        cfg.diags.push_back({location_of(*n, cfg.file), "[service] must be a table"});
        return;
    }
    check_table(*t, service_schema().specs(), "[service]", cfg.file, location_of(*t, cfg.file), {}, cfg.diags);
    StageConfig sc("[service]", "service", t, cfg.file, location_of(*t, cfg.file));
    cfg.service = service_schema().parse(sc);
    std::set<std::pair<uint32_t, uint32_t>> reported;  // a wrong type is already reported by check_table
    for (const auto& d : cfg.diags) reported.insert({d.where.line, d.where.column});
    for (const auto& p : sc.problems())
        if (reported.insert({p.where.line, p.where.column}).second) cfg.diags.push_back(p);
}

const char* const kSections[] = {"inputs", "filters", "outputs"};

// Top-level tables other than service, inputs, filters, outputs and tests are a mistake.
void check_sections(PipelineConfig& cfg) {
    for (const auto& [k, v] : cfg.root) {
        std::string key(k.str());
        if (key == "service" || key == "tests") continue;  // [[tests]]: checked and run by `hbforward test`
        Location kl{cfg.file, k.source().begin.line, k.source().begin.column};
        if (std::find(std::begin(kSections), std::end(kSections), key) == std::end(kSections)) {
            std::string sug = did_you_mean(key, {"service", "inputs", "filters", "outputs", "tests"});
            cfg.diags.push_back({kl, fmt::format("unknown section '{}'{}; expected service, inputs, filters, outputs or tests", key,
                                                 sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug))});
        }
    }
}

// A stage's name: a table, not empty, without '.', used once. `seen`: name -> "inputs.x".
bool check_name(PipelineConfig& cfg, const StageDecl& d, const std::string& what, std::map<std::string, std::string>& seen) {
    if (!d.tbl) {
        cfg.diags.push_back({d.loc, fmt::format("{} must be a table", what)});
        return false;
    }
    if (d.name.find('.') != std::string::npos || d.name.empty()) {
        cfg.diags.push_back({d.loc, fmt::format("stage name '{}' must not be empty or contain '.'", d.name)});
        return false;
    }
    if (auto it = seen.find(d.name); it != seen.end()) {
        cfg.diags.push_back({d.loc, fmt::format("stage name '{}' is already used by {}", d.name, it->second)});
        return false;
    }
    seen[d.name] = what;
    return true;
}

// What a reload compares: the table without `inputs` (rewiring a stage does not restart it).
std::string fingerprint_of(const toml::table& tbl) {
    toml::table fpt = tbl;
    fpt.erase("inputs");
    std::ostringstream fp;
    fp << fpt;
    return fp.str();
}

// `type = "..."`, found in the registry.
bool resolve_type(PipelineConfig& cfg, StageDecl& d, const std::string& what) {
    const toml::node* tn = d.tbl->get("type");
    if (!tn || !tn->is_string()) {
        cfg.diags.push_back({tn ? location_of(*tn, cfg.file) : d.loc, fmt::format("{} needs type = \"...\"; known {} types: {}", what,
                                                                                to_string(d.kind), join(Registry::get().types(d.kind)))});
        return false;
    }
    d.type = tn->as_string()->get();
    d.info = Registry::get().find(d.kind, d.type);
    if (d.info) return true;
    auto known = Registry::get().types(d.kind);
    std::string sug = did_you_mean(d.type, known);
    cfg.diags.push_back({location_of(*tn, cfg.file), fmt::format("unknown {} type '{}' in {}{}; known {} types: {}", to_string(d.kind), d.type, what,
                                                                 sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug),
                                                                 to_string(d.kind), join(known))});
    return false;
}

// A filter's or output's `inputs`: a stage name, or a list of them; "stage.port" names a port.
void read_inputs(PipelineConfig& cfg, StageDecl& d, const std::string& what) {
    const toml::node* in = d.tbl->get("inputs");
    auto add_ref = [&](const std::string& ref, const toml::node& at) {
        StageDecl::InputRef r{ref, "", location_of(at, cfg.file)};
        if (auto dot = ref.find('.'); dot != std::string::npos) {
            r.stage = ref.substr(0, dot);
            r.port = ref.substr(dot + 1);
        }
        d.inputs.push_back(r);
    };
    if (!in) {
        cfg.diags.push_back({d.loc, fmt::format("missing required option 'inputs' in {}: name the stages it reads from", what)});
    } else if (auto one = in->as_string()) {
        add_ref(one->get(), *in);  // like every list option, a bare string is a list of one
    } else if (auto a = in->as_array()) {
        if (a->empty()) cfg.diags.push_back({location_of(*in, cfg.file), fmt::format("'inputs' of {} is empty", what)});
        for (const auto& e : *a) {
            if (auto s = e.as_string()) {
                add_ref(s->get(), e);
            } else {
                cfg.diags.push_back({location_of(e, cfg.file), fmt::format("'inputs' of {} must hold stage names (strings)", what)});
            }
        }
    } else {
        cfg.diags.push_back({location_of(*in, cfg.file), fmt::format("'inputs' of {} must be a list of stage names, such as [\"parse\"]", what)});
    }
}

// `workers = N` on a filter: N threads run it, and the filters inline below it, on successive
// batches at once; the order is restored before the next queue (src/ordered.h). Only a filter
// that keeps nothing from one batch to the next may have more than one.
int load_workers(const StageDecl& d, const std::string& what, PipelineConfig& cfg) {
    const toml::node* n = d.tbl->get("workers");
    if (!n) return 1;
    auto v = n->value_exact<int64_t>();
    if (!v || *v < 1 || *v > StageDecl::kMaxWorkers) {
        cfg.diags.push_back({location_of(*n, cfg.file),
                             fmt::format("'workers' of {} must be an integer from 1 to {}", what, StageDecl::kMaxWorkers)});
        return 1;
    }
    if (*v > 1 && !d.info->stateless) {
        std::vector<std::string> ok;
        for (const auto& [type, info] : Registry::get().all(StageKind::filter))
            if (info.stateless) ok.push_back(type);
        cfg.diags.push_back({location_of(*n, cfg.file),
                             fmt::format("{} cannot run on several workers: a {} filter keeps state from one batch to the next "
                                         "(filters that can: {})",
                                         what, d.type, join(ok))});
        return 1;
    }
    return int(*v);
}

// The stage's options against its schema, its buffer, its workers, its inputs and its ports.
void read_options(PipelineConfig& cfg, StageDecl& d, const std::string& what) {
    std::vector<std::string> reserved = {"type"};
    if (d.kind != StageKind::input) reserved.push_back("inputs");
    if (d.kind == StageKind::output) reserved.push_back("buffer");
    if (d.kind == StageKind::filter) reserved.push_back("workers");
    size_t before = cfg.diags.size();
    check_table(*d.tbl, d.info->options, what, cfg.file, d.loc, reserved, cfg.diags);
    if (d.kind == StageKind::filter) d.workers = load_workers(d, what, cfg);
    if (d.kind == StageKind::output) d.buffer = buffer::load_buffer_config(*d.tbl, what, cfg.file, cfg.diags);
    d.cfg = std::make_unique<StageConfig>(d.name, d.type, d.tbl, cfg.file, d.loc);
    if (d.kind != StageKind::input) read_inputs(cfg, d, what);
    d.options_ok = cfg.diags.size() == before;
    if (d.options_ok && d.info->ports) {
        try {
            d.ports = d.info->ports(*d.cfg);
        } catch (const ConfigError& e) {
            cfg.diags.push_back({e.where, e.what()});
        }
        d.cfg->clear_problems();  // build_stages reports them with the factory's
    }
}

// The stages of one section ("inputs", "filters", "outputs"), appended to cfg.stages.
void load_section(PipelineConfig& cfg, StageKind sk, std::map<std::string, std::string>& seen) {
    const char* section = kSections[int(sk)];
    const toml::node* sect = cfg.root.get(section);
    if (!sect) return;
    const toml::table* st = sect->as_table();
    if (!st) {
        cfg.diags.push_back({location_of(*sect, cfg.file), fmt::format("'{}' must be a table of stages", section)});
        return;
    }
    for (const auto& [k, v] : *st) {
        StageDecl d;
        d.name = std::string(k.str());
        d.kind = sk;
        std::string what = fmt::format("{}.{}", section, d.name);
        d.loc = {cfg.file, k.source().begin.line, k.source().begin.column};
        if (d.loc.line == 0) d.loc = location_of(v, cfg.file);
        d.tbl = v.as_table();
        if (!check_name(cfg, d, what, seen)) continue;
        d.fingerprint = fingerprint_of(*d.tbl);
        if (!resolve_type(cfg, d, what)) continue;
        read_options(cfg, d, what);
        cfg.stages.push_back(std::move(d));
    }
}

void load_stages(PipelineConfig& cfg) {
    check_sections(cfg);
    std::map<std::string, std::string> seen;  // name -> "inputs.x"
    for (StageKind sk : {StageKind::input, StageKind::filter, StageKind::output}) load_section(cfg, sk, seen);
}

using StagesByName = std::map<std::string, StageDecl*>;

// Each `inputs` entry names a stage that exists, is not an output, offers the port named and is
// not the stage itself. Returns the names of the stages something reads from.
std::set<std::string> check_edges(PipelineConfig& cfg, const StagesByName& by_name) {
    std::vector<std::string> names;
    for (auto& s : cfg.stages) names.push_back(s.name);
    std::set<std::string> consumed;
    for (auto& s : cfg.stages) {
        for (auto& r : s.inputs) {
            auto it = by_name.find(r.stage);
            if (it == by_name.end()) {
                std::string sug = did_you_mean(r.stage, names);
                cfg.diags.push_back({r.where, fmt::format("{}.{} reads from unknown stage '{}'{}", section_of(s.kind), s.name, r.stage,
                                                          sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug))});
                continue;
            }
            StageDecl* up = it->second;
            if (up->kind == StageKind::output) {
                cfg.diags.push_back({r.where, fmt::format("{}.{} reads from '{}', which is an output: outputs send nowhere further",
                                                          section_of(s.kind), s.name, r.stage)});
                continue;
            }
            if (!r.port.empty() && std::find(up->ports.begin(), up->ports.end(), r.port) == up->ports.end()) {
                cfg.diags.push_back({r.where, fmt::format("'{}.{}' names no port of {}.{}{}", r.stage, r.port, section_of(up->kind), up->name,
                                                          up->ports.empty() ? std::string(" (it has none)")
                                                                            : fmt::format("; its ports: {}", join(up->ports)))});
                continue;
            }
            if (up == &s) {
                cfg.diags.push_back({r.where, fmt::format("{}.{} reads from itself", section_of(s.kind), s.name)});
                continue;
            }
            consumed.insert(up->name);
        }
    }
    return consumed;
}

// Cycles among filters: depth-first search over "reads from" edges; the first one is reported.
void check_cycles(PipelineConfig& cfg, const StagesByName& by_name) {
    std::map<std::string, int> state;  // 0 new, 1 on stack, 2 done
    std::function<bool(StageDecl*, std::vector<std::string>&)> dfs = [&](StageDecl* s, std::vector<std::string>& path) {
        state[s->name] = 1;
        path.push_back(s->name);
        for (auto& r : s->inputs) {
            auto it = by_name.find(r.stage);
            if (it == by_name.end() || it->second == s) continue;
            int st = state[r.stage];
            if (st == 1) {
                auto from = std::find(path.begin(), path.end(), r.stage);
                std::vector<std::string> cyc(from, path.end());
                cyc.push_back(r.stage);
                std::string c;
                for (size_t i = 0; i < cyc.size(); ++i) c += (i ? " <- " : "") + cyc[i];
                cfg.diags.push_back({r.where, fmt::format("cycle in the pipeline: {}", c)});
                return true;
            }
            if (st == 0 && dfs(it->second, path)) return true;
        }
        path.pop_back();
        state[s->name] = 2;
        return false;
    };
    for (auto& s : cfg.stages) {
        std::vector<std::string> path;
        if (state[s.name] == 0 && dfs(&s, path)) break;
    }
}

// Events that go nowhere (a warning), and a pipeline without an input or an output.
void check_ends(PipelineConfig& cfg, const std::set<std::string>& consumed) {
    for (auto& s : cfg.stages) {
        if (s.kind != StageKind::output && !consumed.count(s.name))
            cfg.diags.push_back({s.loc, fmt::format("the events of {}.{} go nowhere: no stage names '{}' in its inputs", section_of(s.kind),
                                                    s.name, s.name),
                                 true});
    }
    bool any_input = std::any_of(cfg.stages.begin(), cfg.stages.end(), [](auto& s) { return s.kind == StageKind::input; });
    bool any_output = std::any_of(cfg.stages.begin(), cfg.stages.end(), [](auto& s) { return s.kind == StageKind::output; });
    if (cfg.ok() && (!any_input || !any_output))
        cfg.diags.push_back({{cfg.file, 1, 1}, "a pipeline needs at least one [inputs.NAME] and one [outputs.NAME]"});
}

void check_graph(PipelineConfig& cfg) {
    StagesByName by_name;
    for (auto& s : cfg.stages) by_name[s.name] = &s;
    std::set<std::string> consumed = check_edges(cfg, by_name);
    check_cycles(cfg, by_name);
    check_ends(cfg, consumed);
}

std::unique_ptr<PipelineConfig> finish(std::unique_ptr<PipelineConfig> cfg) {
    load_service(*cfg);
    load_stages(*cfg);
    check_graph(*cfg);
    return cfg;
}

}  // namespace

std::unique_ptr<PipelineConfig> load_config_text(std::string_view text, const std::string& path) {
    auto cfg = std::make_unique<PipelineConfig>();
    cfg->file = path;
    try {
        cfg->root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        cfg->diags.push_back({{path, e.source().begin.line, e.source().begin.column}, std::string(e.description())});
        return cfg;
    }
    return finish(std::move(cfg));
}

std::unique_ptr<PipelineConfig> load_config(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        auto cfg = std::make_unique<PipelineConfig>();
        cfg->file = path;
        cfg->diags.push_back({{path, 0, 0}, fmt::format("cannot read config file: {}", std::strerror(errno))});
        return cfg;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return load_config_text(ss.str(), path);
}

std::vector<BuiltStage> build_stages(PipelineConfig& cfg) {
    // Every factory runs, even for a stage whose table already has errors, so that validate
    // reports all of a stage's problems at once; what a factory finds at a position already
    // reported (the same wrong value, the same missing option) is not repeated.
    std::set<std::pair<uint32_t, uint32_t>> reported;
    for (const auto& d : cfg.diags) reported.insert({d.where.line, d.where.column});
    auto add = [&](const Diagnostic& d) {
        if (reported.insert({d.where.line, d.where.column}).second) cfg.diags.push_back(d);
    };
    std::vector<BuiltStage> out;
    for (auto& d : cfg.stages) {
        BuiltStage b;
        b.decl = &d;
        d.cfg->clear_problems();
        try {
            switch (d.kind) {
                case StageKind::input: b.input = d.info->make_input(*d.cfg); break;
                case StageKind::filter: b.filter = d.info->make_filter(*d.cfg); break;
                case StageKind::output: b.output = d.info->make_output(*d.cfg); break;
            }
        } catch (const ProblemsFound&) {
        } catch (const ConfigError& e) {
            d.cfg->problem_at(e.where, e.what());
        } catch (const std::exception& e) {
            d.cfg->problem_at(d.loc, fmt::format("{}.{}: {}", section_of(d.kind), d.name, e.what()));
        }
        if (!d.options_ok || !d.cfg->problems().empty()) b = BuiltStage{&d, nullptr, nullptr, nullptr};
        for (const auto& p : d.cfg->problems()) add(p);
        out.push_back(std::move(b));
    }
    return out;
}

}  // namespace hbf
