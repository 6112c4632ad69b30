// Options declared once: each option of a stage is bound to a field of the stage's options
// struct, with its doc and any rules, in one declaration; the field's initializer is the
// default. From that declaration come the schema check (unknown keys, "did you mean", types,
// required keys), the values the stage is built from, `hbforward stages` and the README's
// stage reference (`hbforward stages --markdown`). Like Fluent Bit's config map, which fills
// the plugin's context at each entry's `offsetof`.
//
//   struct FileOutOptions { std::string path; Duration fsync_interval = std::chrono::seconds(1); };
//   const OptionSchema<FileOutOptions> kFileOutSchema{
//       {"path", &FileOutOptions::path, "File to append NDJSON to.", required()},
//       {"fsync_interval", &FileOutOptions::fsync_interval, "How often written data is fsync'ed."},
//   };
//   HBF_REGISTER_OUTPUT("file", FileOut, kFileOutSchema, "...");  // FileOut(FileOutOptions, const StageConfig&)
//
// A rule's violation, like a value of the wrong type, is a problem of the stage recorded in
// its StageConfig (the field keeps its default), so one validate reports them all.
#pragma once

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "options.h"
#include "resource.h"

namespace hbf {

// The field types an option can bind to, besides std::string, bool, integers and double.
struct Size {  // "64MiB"
    uint64_t bytes = 0;
    constexpr Size() = default;
    constexpr Size(uint64_t b) : bytes(b) {}
    constexpr operator uint64_t() const { return bytes; }
};
using Duration = std::chrono::nanoseconds;  // "1h30m", "250us", or a number of seconds
using StringList = std::vector<std::string>;  // ["a", "b"], or one bare string
// A table the stage reads itself, as `const toml::table*` (nullptr when absent).
// A table of name = "value" (numbers and booleans as their text), in order, ${VAR} substituted.
struct StringMap : std::vector<std::pair<std::string, std::string>> {};
// A table of name = any value, each kept as its JSON text, in order.
struct JsonFields : std::vector<std::pair<std::string, std::string>> {};

// Rules an option can carry after its doc.
struct required {};
struct one_of {
    std::vector<std::string> choices;
    one_of(std::initializer_list<std::string> c) : choices(c) {}
};
struct at_least {
    double min;
};
struct between {
    double lo, hi;
};
// The default as shown to users, when the field's initial value does not say it ("none").
struct shown {
    std::string text;
};

namespace option_detail {

template <class T>
struct Traits;
template <>
struct Traits<std::string> {
    static constexpr OptType type = OptType::string;
    static std::string read(const StageConfig& c, std::string_view k) { return c.str(k); }
    static std::string show(const std::string& v) { return v; }
};
template <>
struct Traits<bool> {
    static constexpr OptType type = OptType::boolean;
    static bool read(const StageConfig& c, std::string_view k) { return c.boolean(k); }
    static std::string show(bool v) { return v ? "true" : "false"; }
};
template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
struct Traits<T> {
    static constexpr OptType type = OptType::integer;
    static T read(const StageConfig& c, std::string_view k) { return T(c.integer(k)); }
    static std::string show(T v) { return std::to_string(v); }
};
template <>
struct Traits<double> {
    static constexpr OptType type = OptType::number;
    static double read(const StageConfig& c, std::string_view k) { return c.number(k); }
    static std::string show(double v) { return fmt::format("{}", v); }
};
template <>
struct Traits<Size> {
    static constexpr OptType type = OptType::size;
    static Size read(const StageConfig& c, std::string_view k) { return c.size(k); }
    static std::string show(Size v) { return format_size(v.bytes); }
};
template <>
struct Traits<Duration> {
    static constexpr OptType type = OptType::duration;
    static Duration read(const StageConfig& c, std::string_view k) { return c.duration(k); }
    static std::string show(Duration v) { return format_duration(v); }
};
template <>
struct Traits<StringList> {
    static constexpr OptType type = OptType::string_list;
    static StringList read(const StageConfig& c, std::string_view k) { return c.strings(k); }
    static std::string show(const StringList& v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_quote(v[i]);
        return s + "]";
    }
};
template <>
struct Traits<StringMap> {
    static constexpr OptType type = OptType::table;
    static StringMap read(const StageConfig& c, std::string_view k) { return {c.string_map(k)}; }
    static std::string show(const StringMap&) { return ""; }
};
template <>
struct Traits<JsonFields> {
    static constexpr OptType type = OptType::table;
    static JsonFields read(const StageConfig& c, std::string_view k) { return {c.json_fields(k)}; }
    static std::string show(const JsonFields&) { return ""; }
};
template <>
struct Traits<const toml::table*> {  // a table the stage reads itself (member order, positions)
    static constexpr OptType type = OptType::table;
    static const toml::table* read(const StageConfig& c, std::string_view k) { return c.table(k); }
    static std::string show(const toml::table*) { return ""; }
};
template <>
struct Traits<std::optional<std::string>> {  // unset is not the same as ""
    static constexpr OptType type = OptType::string;
    static std::optional<std::string> read(const StageConfig& c, std::string_view k) { return c.str(k); }
    static std::string show(const std::optional<std::string>& v) { return v ? *v : ""; }
};

template <class T>
double number_of(const T& v) {
    if constexpr (std::is_same_v<T, Duration>) return double(v.count()) / 1e9;
    else if constexpr (std::is_same_v<T, Size>) return double(v.bytes);
    else return double(v);
}

template <class T>
std::string show_limit(double x) {
    if constexpr (std::is_same_v<T, Duration>) return format_duration(Duration(std::llround(x * 1e9)));
    else if constexpr (std::is_same_v<T, Size>) return format_size(uint64_t(x));
    else return fmt::format("{}", x);
}

}  // namespace option_detail

template <class O>
class Opt {
public:
    template <class T, class... Rules>
    Opt(std::string name, T O::*field, std::string doc, Rules... rules) {
        using Tr = option_detail::Traits<T>;
        static const O defaults{};
        spec_ = OptionSpec{std::move(name), Tr::type, Tr::show(defaults.*field), std::move(doc), false};
        std::vector<std::function<std::string(const T&)>> checks;
        (add_rule<T>(checks, rules), ...);
        std::string key = spec_.name;
        read_ = [field, key, checks = std::move(checks)](const StageConfig& c, O& o) {
            if (!c.has(key)) return;
            size_t before = c.problems().size();
            T v = Tr::read(c, key);
            if (c.problems().size() != before) return;  // the value is wrong: the field keeps its default
            for (const auto& check : checks)
                if (std::string why = check(v); !why.empty()) {
                    c.problem(key, fmt::format("option '{}' of {} must be {}, not {}", key, c.name(), why, shown_value(c, key, v)));
                    return;
                }
            o.*field = std::move(v);
        };
    }

    const OptionSpec& spec() const { return spec_; }
    void read(const StageConfig& c, O& o) const { read_(c, o); }

private:
    template <class T>
    static std::string shown_value(const StageConfig& c, const std::string& key, const T& v) {
        if (const toml::node* n = c.node(key))
            if (auto s = n->as_string()) return json_quote(s->get());
        if constexpr (std::is_same_v<T, std::string>) return json_quote(v);
        else return option_detail::Traits<T>::show(v);
    }

    template <class T>
    void add_rule(std::vector<std::function<std::string(const T&)>>&, required) { spec_.required = true; spec_.default_text.clear(); }
    template <class T>
    void add_rule(std::vector<std::function<std::string(const T&)>>&, shown s) { spec_.default_text = s.text; }
    template <class T>
    void add_rule(std::vector<std::function<std::string(const T&)>>& checks, one_of r) {
        std::string list;
        for (size_t i = 0; i < r.choices.size(); ++i)
            list += (i == 0 ? "" : i + 1 == r.choices.size() ? " or " : ", ") + json_quote(r.choices[i]);
        checks.push_back([r, list](const T& v) -> std::string {
            if constexpr (std::is_same_v<T, std::string>) {
                for (const auto& ch : r.choices)
                    if (ch == v) return "";
            }
            return list;
        });
    }
    template <class T>
    void add_rule(std::vector<std::function<std::string(const T&)>>& checks, at_least r) {
        checks.push_back([r](const T& v) -> std::string {
            return option_detail::number_of(v) >= r.min ? "" : "at least " + option_detail::show_limit<T>(r.min);
        });
    }
    template <class T>
    void add_rule(std::vector<std::function<std::string(const T&)>>& checks, between r) {
        checks.push_back([r](const T& v) -> std::string {
            double x = option_detail::number_of(v);
            return x >= r.lo && x <= r.hi
                       ? ""
                       : "between " + option_detail::show_limit<T>(r.lo) + " and " + option_detail::show_limit<T>(r.hi);
        });
    }

    OptionSpec spec_;
    std::function<void(const StageConfig&, O&)> read_;
};

template <class O>
class OptionSchema {
public:
    using Options = O;
    OptionSchema(std::initializer_list<Opt<O>> opts) : opts_(opts) {
        for (const auto& o : opts_) specs_.push_back(o.spec());
    }
    const std::vector<OptionSpec>& specs() const { return specs_; }
    // The options of a stage's table: defaults, then each value given; problems go to c.
    O parse(const StageConfig& c) const {
        O o{};
        for (const auto& opt : opts_) opt.read(c, o);
        return o;
    }

private:
    std::vector<Opt<O>> opts_;
    std::vector<OptionSpec> specs_;
};

// What the registration macros call: the schema gives the registry its specs and a factory that
// builds the stage from the parsed options (and the StageConfig, for problems, if it takes one).
template <class O>
const std::vector<OptionSpec>& specs_of(const OptionSchema<O>& s) { return s.specs(); }

// What the registration macros give the registry as the stage's resources: when the options
// struct declares
//   std::vector<Resource> resources(const StagePlace&) const;
// the options parsed from a copy of the stage's config, asked for theirs; else nothing. Options
// that do not parse hold nothing (validation reports them; such a stage is never built).
template <class O>
std::function<std::vector<Resource>(const StageConfig&, const StagePlace&)> declared_resources(const OptionSchema<O>& s) {
    if constexpr (requires(const O& o, const StagePlace& p) {
                      { o.resources(p) } -> std::same_as<std::vector<Resource>>;
                  }) {
        return [&s](const StageConfig& c, const StagePlace& p) -> std::vector<Resource> {
            StageConfig quiet = c;  // the config's problems are validation's to report, not the plan's
            quiet.clear_problems();
            try {
                O o = s.parse(quiet);
                if (!quiet.problems().empty()) return {};
                return o.resources(p);
            } catch (const std::exception&) {
                return {};
            }
        };
    } else {
        return nullptr;
    }
}

template <class Base, class Class, class O>
std::unique_ptr<Base> make_stage(const OptionSchema<O>& s, const StageConfig& c) {
    O o = s.parse(c);
    std::unique_ptr<Base> out;
    if constexpr (std::is_constructible_v<Class, O, const StageConfig&>) out = std::make_unique<Class>(std::move(o), c);
    else out = std::make_unique<Class>(std::move(o));
    c.stop_if_problems();
    return out;
}

}  // namespace hbf
