// [[tests]] of a config: their shape and the stages they name. The conditions' syntax is checked
// where the condition language lives (a ConfigCheck registered by `hbforward test`).
#include <algorithm>
#include <fmt/format.h>
#include <set>

#include "config.h"

namespace hbf {

namespace {

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

}  // namespace

void load_tests(PipelineConfig& cfg) {
    const toml::node* root = cfg.root.get("tests");
    if (!root) return;
    Ctx c{cfg};
    const toml::array* arr = root->as_array();
    if (!arr) return c.error(*root, "'tests' must be an array of tables: [[tests]] name = \"...\"");
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
        cfg.tests.push_back(std::move(t));
    }
}

}  // namespace hbf
