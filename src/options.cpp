#include "options.h"

#include "json_util.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

namespace hbf {

namespace {
const char* const kSizeHint = "a size: a number and a unit (B, KiB, MiB, GiB, KB, MB, GB), like 4096, \"512KiB\" or \"64MiB\"";
const char* const kDurationHint =
    "a duration: numbers each followed by a unit (ns, us, ms, s, m, h, d), like \"500ms\", \"5s\" or \"1h30m\", or a number of seconds";

const char* toml_type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date/time";
    }
}

// How a value is named in an error: a string by its text, anything else by its type.
std::string value_text(const toml::node& n) {
    if (auto s = n.as_string()) return json_quote(s->get());
    return toml_type_name(n);
}

// Reads the run of digits and dots at s[i] as a number into out and moves i past it. False when
// there is no such run or strtod does not use all of it ("1.2.3", ".").
bool read_number(std::string_view s, size_t& i, double& out) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return false;
    std::string num(s.substr(start, i - start));
    char* end = nullptr;
    out = std::strtod(num.c_str(), &end);
    return end == num.c_str() + num.size();
}

}  // namespace

const char* to_string(OptType t) {
    switch (t) {
        case OptType::string: return "string";
        case OptType::integer: return "integer";
        case OptType::boolean: return "boolean";
        case OptType::number: return "number";
        case OptType::size: return "size";
        case OptType::duration: return "duration";
        case OptType::string_list: return "list of strings";
        case OptType::table: return "table";
        case OptType::any: return "any";
    }
    return "?";
}

std::optional<uint64_t> parse_size(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && s[i] == ' ') ++i;
    double v;
    if (!read_number(s, i, v)) return std::nullopt;
    while (i < s.size() && s[i] == ' ') ++i;
    std::string unit(s.substr(i));
    for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double m;
    if (unit.empty() || unit == "b") m = 1;
    else if (unit == "k" || unit == "kib") m = 1024.0;
    else if (unit == "kb") m = 1e3;
    else if (unit == "m" || unit == "mib") m = 1024.0 * 1024;
    else if (unit == "mb") m = 1e6;
    else if (unit == "g" || unit == "gib") m = 1024.0 * 1024 * 1024;
    else if (unit == "gb") m = 1e9;
    else return std::nullopt;
    double bytes = v * m;
    if (!(bytes < 18446744073709551616.0)) return std::nullopt;  // beyond uint64_t (or inf): a bad size, not UB
    return static_cast<uint64_t>(bytes);
}

// One or more <number><unit> terms ("1h30m", "1.5s", "250us"), or a bare number of seconds.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view s) {
    if (s.empty()) return std::nullopt;
    double total = 0;
    size_t i = 0;
    while (i < s.size()) {
        size_t start = i;
        double v;
        if (!read_number(s, i, v)) return std::nullopt;
        size_t u = i;
        while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
        std::string_view unit = s.substr(u, i - u);
        double ns;
        if (unit == "ns") ns = 1;
        else if (unit == "us" || unit == "\u00b5s") ns = 1e3;
        else if (unit == "ms") ns = 1e6;
        else if (unit == "s") ns = 1e9;
        else if (unit == "m") ns = 60e9;
        else if (unit == "h") ns = 3600e9;
        else if (unit == "d") ns = 86400e9;
        else if (unit.empty() && start == 0 && i == s.size()) ns = 1e9;  // a bare number: seconds
        else return std::nullopt;
        total += v * ns;
    }
    if (total > 9.2e18) return std::nullopt;
    return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

std::string format_duration(std::chrono::nanoseconds d) {
    int64_t ns = d.count();
    if (ns == 0) return "0";
    struct Unit { const char* name; int64_t ns; };
    static const Unit units[] = {{"d", 86400'000000000}, {"h", 3600'000000000}, {"m", 60'000000000},
                                 {"s", 1000000000}, {"ms", 1000000}, {"us", 1000}, {"ns", 1}};
    std::string out;
    for (const auto& u : units) {
        if (ns >= u.ns) {
            out += std::to_string(ns / u.ns) + u.name;
            ns %= u.ns;
        }
    }
    return out;
}

std::string format_size(uint64_t b) {
    if (b == 0) return "0";
    static const std::pair<const char*, uint64_t> units[] = {{"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
    for (const auto& [name, n] : units)
        if (b % n == 0) return std::to_string(b / n) + name;
    return std::to_string(b);
}

namespace {
bool read_small_file(const std::string& path, std::string& out, std::string& err) {
    constexpr size_t kMax = 1 << 20;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        err = std::strerror(errno);
        return false;
    }
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() <= kMax) out.append(buf, n);
    bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) err = "read error";
    else if (out.size() > kMax) err = "larger than 1 MiB";
    return err.empty();
}

}  // namespace

// The message for what substitute_env could not replace (`missing` as it reports it).
std::string unresolved_message(const std::string& missing, std::string_view key) {
    std::string user = key.empty() ? "" : fmt::format(" used by option '{}'", key);
    if (missing.rfind("file:", 0) == 0) {
        size_t nl = missing.find('\n');
        return fmt::format("cannot read {}{}: {} (use ${{{}:-default}} for a default)", missing.substr(5, nl - 5), user,
                           missing.substr(nl + 1), missing.substr(0, nl));
    }
    return fmt::format("environment variable '{}'{} is not set (use ${{{}:-default}} for a default)", missing, user, missing);
}

// Besides ${VAR} and ${VAR:-default}: ${file:/path}, the file's contents less a trailing newline
// (systemd's LoadCredential=); an unreadable file goes to `missing` as "file:PATH\nREASON".
std::string substitute_env(std::string_view s, std::string* missing) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
            size_t end = s.find('}', i + 2);
            if (end == std::string_view::npos) { out.append(s.substr(i)); break; }
            std::string_view body = s.substr(i + 2, end - i - 2);
            std::string_view name = body, def;
            bool has_def = false;
            if (auto p = body.find(":-"); p != std::string_view::npos) {
                name = body.substr(0, p);
                def = body.substr(p + 2);
                has_def = true;
            }
            if (name.substr(0, 5) == "file:") {
                // A secret from a file (systemd's LoadCredential=, Docker and Kubernetes secrets):
                // its contents without the trailing newline.
                std::string path(name.substr(5)), text, err;
                if (read_small_file(path, text, err)) {
                    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
                    out += text;
                } else if (has_def) {
                    out.append(def);
                } else if (missing && missing->empty()) {
                    *missing = "file:" + path + "\n" + err;
                }
                i = end + 1;
                continue;
            }
            const char* v = std::getenv(std::string(name).c_str());
            if (v && *v) out += v;
            else if (has_def) out.append(def);
            else if (missing && missing->empty()) *missing = std::string(name);
            i = end + 1;
        } else {
            out.push_back(s[i++]);
        }
    }
    return out;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    auto dist = [](std::string_view a, std::string_view b) {
        std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
        for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
        for (size_t i = 1; i <= a.size(); ++i) {
            cur[0] = i;
            for (size_t j = 1; j <= b.size(); ++j)
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            std::swap(prev, cur);
        }
        return prev[b.size()];
    };
    std::string best;
    size_t best_d = SIZE_MAX;
    for (const auto& c : candidates) {
        size_t d = dist(word, c);
        if (d < best_d) { best_d = d; best = c; }
    }
    if (best_d <= std::max<size_t>(2, word.size() / 3)) return best;
    return {};
}

Location location_of(const toml::node& n, const std::string& file) {
    return {file, n.source().begin.line, n.source().begin.column};
}

std::string json_quote(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string toml_to_json(const toml::node& n) {
    if (auto s = n.as_string()) return json_quote(s->get());
    if (auto i = n.as_integer()) return std::to_string(i->get());
    if (auto f = n.as_floating_point()) return fmt::format("{}", f->get());
    if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
    if (auto a = n.as_array()) {
        std::string out = "[";
        for (size_t i = 0; i < a->size(); ++i) {
            if (i) out += ',';
            out += toml_to_json(*a->get(i));
        }
        return out + "]";
    }
    if (auto t = n.as_table()) {
        std::string out = "{";
        bool first = true;
        for (const auto& [k, v] : *t) {
            if (!first) out += ',';
            first = false;
            out += json_quote(k.str()) + ":" + toml_to_json(v);
        }
        return out + "}";
    }
    return json_quote(fmt::format("{}", n.source().begin.line));
}

// ---- StageConfig ----

Location StageConfig::where(std::string_view key) const {
    if (const toml::node* n = node(key)) return location_of(*n, file_);
    return loc_;
}

void StageConfig::fail(std::string_view key, const std::string& message) const { throw ConfigError(where(key), message); }

void StageConfig::problem(std::string_view key, const std::string& message) const { problems_.push_back({where(key), message}); }

void StageConfig::stop_if_problems() const {
    if (!problems_.empty()) throw ProblemsFound();
}

void StageConfig::problem_at(Location where, const std::string& message) const { problems_.push_back({std::move(where), message}); }

const toml::node* StageConfig::node(std::string_view key) const { return tbl_ ? tbl_->get(key) : nullptr; }

// A value of the wrong type (or an absent one) gives an empty value ("", 0, false); the wrong
// type is recorded as a problem, and the OptionSchema reading it keeps the field's default, so
// reading on finds the stage's other problems too. Defaults live in the options structs only.
std::string StageConfig::str(std::string_view key) const {
    std::string raw;
    if (const toml::node* n = node(key)) {
        if (auto s = n->as_string()) raw = s->get();
        else problem(key, fmt::format("option '{}' of {} must be a string", key, name_));
    }
    std::string missing;
    std::string v = substitute_env(raw, &missing);
    if (!missing.empty()) problem(key, unresolved_message(missing, key));
    return v;
}

int64_t StageConfig::integer(std::string_view key) const {
    if (const toml::node* n = node(key)) {
        if (auto i = n->as_integer()) return i->get();
        problem(key, fmt::format("option '{}' of {} must be an integer", key, name_));
    }
    return 0;
}

bool StageConfig::boolean(std::string_view key) const {
    if (const toml::node* n = node(key)) {
        if (auto b = n->as_boolean()) return b->get();
        problem(key, fmt::format("option '{}' of {} must be true or false", key, name_));
    }
    return false;
}

double StageConfig::number(std::string_view key) const {
    if (const toml::node* n = node(key)) {
        if (auto f = n->as_floating_point()) return f->get();
        if (auto i = n->as_integer()) return double(i->get());
        problem(key, fmt::format("option '{}' of {} must be a number", key, name_));
    }
    return 0;
}

uint64_t StageConfig::size(std::string_view key) const {
    if (const toml::node* n = node(key)) {
        auto i = n->as_integer();
        if (i && i->get() >= 0) return uint64_t(i->get());
        if (auto s = n->as_string())
            if (auto v = parse_size(s->get())) return *v;
        problem(key, fmt::format("option '{}' of {} must be {}, not {}", key, name_, kSizeHint,
                                 i ? std::string("a negative number") : value_text(*n)));
    }
    return 0;
}

std::chrono::nanoseconds StageConfig::duration(std::string_view key) const {
    if (const toml::node* n = node(key)) {
        if (auto i = n->as_integer(); i && i->get() >= 0) return std::chrono::seconds(i->get());
        if (auto f = n->as_floating_point(); f && f->get() >= 0) return std::chrono::nanoseconds(int64_t(f->get() * 1e9));
        if (auto s = n->as_string())
            if (auto v = parse_duration(s->get())) return *v;
        problem(key, fmt::format("option '{}' of {} must be {}, not {}", key, name_, kDurationHint,
                                 n->is_number() ? std::string("a negative number") : value_text(*n)));
    }
    return std::chrono::nanoseconds(0);
}

std::vector<std::string> StageConfig::strings(std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* n = node(key);
    if (n && !n->is_string() && !n->is_array()) {
        problem(key, fmt::format("option '{}' of {} must be a list of strings", key, name_));
        n = nullptr;
    }
    if (!n) return out;
    auto add = [&](const toml::node& e, const std::string& text) {
        std::string missing;
        out.push_back(substitute_env(text, &missing));
        if (!missing.empty())
            problem_at(location_of(e, file_), unresolved_message(missing, key));
    };
    if (auto s = n->as_string()) {  // a bare string is a list of one, as for every list option
        add(*n, s->get());
        return out;
    }
    for (const auto& e : *n->as_array()) {
        if (auto s = e.as_string()) add(e, s->get());
        else problem_at(location_of(e, file_), fmt::format("option '{}' of {} must hold only strings", key, name_));
    }
    return out;
}

const toml::table* StageConfig::table(std::string_view key) const {
    const toml::node* n = node(key);
    if (!n) return nullptr;
    if (auto t = n->as_table()) return t;
    problem(key, fmt::format("option '{}' of {} must be a table, such as {{ a = \"b\" }}", key, name_));
    return nullptr;
}

// A table member's string value with ${VAR} substituted; an unset variable is a problem.
std::string StageConfig::env_value(const toml::node& v, const std::string& s) const {
    std::string missing;
    std::string val = substitute_env(s, &missing);
    if (!missing.empty()) problem_at(location_of(v, file_), unresolved_message(missing, ""));
    return val;
}

std::vector<std::pair<std::string, std::string>> StageConfig::json_fields(std::string_view key) const {
    std::vector<std::pair<std::string, std::string>> out;
    const toml::table* t = table(key);
    if (!t) return out;
    for (const auto& [k, v] : *t) {
        if (auto s = v.as_string()) out.emplace_back(std::string(k.str()), json_quote(env_value(v, s->get())));
        else out.emplace_back(std::string(k.str()), toml_to_json(v));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> StageConfig::string_map(std::string_view key) const {
    std::vector<std::pair<std::string, std::string>> out;
    const toml::table* t = table(key);
    if (!t) return out;
    for (const auto& [k, v] : *t) {
        if (auto s = v.as_string()) out.emplace_back(std::string(k.str()), env_value(v, s->get()));
        else if (v.is_integer() || v.is_boolean() || v.is_floating_point()) out.emplace_back(std::string(k.str()), toml_to_json(v));
        else problem_at(location_of(v, file_), fmt::format("'{}.{}' must be a string", key, k.str()));
    }
    return out;
}

// ---- schema check ----

namespace {
bool type_ok(const toml::node& n, OptType t) {
    switch (t) {
        case OptType::string: return n.is_string();
        case OptType::integer: return n.is_integer();
        case OptType::boolean: return n.is_boolean();
        case OptType::number: return n.is_number();
        case OptType::size: return n.is_integer() || (n.is_string() && parse_size(n.as_string()->get()));
        case OptType::duration:
            return n.is_number() || (n.is_string() && parse_duration(n.as_string()->get()));
        case OptType::string_list: {
            if (n.is_string()) return true;
            auto a = n.as_array();
            if (!a) return false;
            for (const auto& e : *a)
                if (!e.is_string()) return false;
            return true;
        }
        case OptType::table: return n.is_table();
        case OptType::any: return true;
    }
    return false;
}

std::string type_hint(OptType t) {
    switch (t) {
        case OptType::size: return kSizeHint;
        case OptType::duration: return kDurationHint;
        case OptType::string_list: return "a list of strings";
        case OptType::table: return "a table";
        case OptType::string: return "a string";
        case OptType::integer: return "an integer";
        case OptType::boolean: return "true or false";
        case OptType::number: return "a number";
        case OptType::any: return "any value";
    }
    return "?";
}

}  // namespace

void check_table(const toml::table& tbl, const std::vector<OptionSpec>& schema, const std::string& what,
                 const std::string& file, const Location& header, const std::vector<std::string>& reserved,
                 std::vector<Diagnostic>& out) {
    std::vector<std::string> names;
    for (const auto& s : schema) names.push_back(s.name);
    for (const auto& [k, v] : tbl) {
        std::string key(k.str());
        if (std::find(reserved.begin(), reserved.end(), key) != reserved.end()) continue;
        const OptionSpec* spec = nullptr;
        for (const auto& s : schema)
            if (s.name == key) spec = &s;
        Location kl{file, k.source().begin.line, k.source().begin.column};
        if (kl.line == 0) kl = location_of(v, file);
        if (!spec) {
            std::vector<std::string> all = names;
            all.insert(all.end(), reserved.begin(), reserved.end());
            std::string sug = did_you_mean(key, all);
            out.push_back({kl, fmt::format("unknown option '{}' in {}{}", key, what,
                                           sug.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", sug))});
            continue;
        }
        if (!type_ok(v, spec->type)) {
            bool quote = spec->type == OptType::size || spec->type == OptType::duration;
            out.push_back({location_of(v, file), fmt::format("option '{}' in {} must be {}, not {}", key, what, type_hint(spec->type),
                                                              quote ? value_text(v) : std::string(toml_type_name(v)))});
        }
    }
    for (const auto& s : schema) {
        if (s.required && !tbl.contains(s.name))
            out.push_back({header, fmt::format("missing required option '{}' in {} ({})", s.name, what, s.doc)});
    }
}

}  // namespace hbf
