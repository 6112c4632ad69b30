// Option schemas and typed access to a stage's TOML table.
//
// A stage declares its options once (name, type, default, one-line doc). The core validates
// every table against that schema (unknown keys with "did you mean", wrong types, missing
// required keys), `hbforward stages` prints it, and the stage's factory reads values through
// StageConfig, which applies defaults, parses sizes and durations and substitutes ${VAR}.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace hbf {

enum class OptType { string, integer, boolean, number, size, duration, string_list, table, any };
const char* to_string(OptType t);

struct OptionSpec {
    std::string name;
    OptType type;
    std::string default_text;  // as shown to users; empty = no default
    std::string doc;
    bool required = false;
};

struct Location {
    std::string file;
    uint32_t line = 0, column = 0;
};

// Thrown by factories and accessors at config time; carries where the problem is.
struct ConfigError : std::runtime_error {
    ConfigError(Location l, const std::string& m) : std::runtime_error(m), where(std::move(l)) {}
    Location where;
};

// Replaces ${VAR} and ${VAR:-default}; returns the name of an unset variable without default in `missing`.
std::string substitute_env(std::string_view s, std::string* missing);
// The message for what substitute_env reported in `missing` (an unset variable or an unreadable
// ${file:...}), naming the option `key` when not empty.
std::string unresolved_message(const std::string& missing, std::string_view key);
// Closest candidate by edit distance, or "" when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
Location location_of(const toml::node& n, const std::string& file);

// A JSON string literal for s, with quotes.
std::string json_quote(std::string_view s);
// The JSON text of a TOML value (string, number, bool, array, table).
std::string toml_to_json(const toml::node& n);

// Thrown by StageConfig::stop_if_problems; the problems are already recorded.
struct ProblemsFound : std::exception {
    const char* what() const noexcept override { return "the stage's options have problems"; }
};

struct Diagnostic {
    Location where;
    std::string message;
    bool warning = false;
};

std::optional<uint64_t> parse_size(std::string_view s);  // "64MiB", "1GB", "4096"
// One or more terms of a number and a unit ("500ms", "1h30m", "250us"), or a bare number of seconds.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view s);
// The shortest text parse_duration reads back as d ("1h30m", "250us", "0").
std::string format_duration(std::chrono::nanoseconds d);
// "8MiB" when a whole number of KiB/MiB/GiB, else the number of bytes.
std::string format_size(uint64_t bytes);

class StageConfig {
public:
    StageConfig(std::string name, std::string type, const toml::table* tbl, std::string file, Location loc)
        : name_(std::move(name)), type_(std::move(type)), tbl_(tbl), file_(std::move(file)), loc_(std::move(loc)) {}

    const std::string& name() const { return name_; }
    const std::string& type() const { return type_; }
    bool has(std::string_view key) const { return tbl_ && tbl_->contains(key); }

    std::string str(std::string_view key) const;
    int64_t integer(std::string_view key) const;
    bool boolean(std::string_view key) const;
    double number(std::string_view key) const;
    uint64_t size(std::string_view key) const;
    std::chrono::nanoseconds duration(std::string_view key) const;
    std::vector<std::string> strings(std::string_view key) const;
    // A table's members in order, each value as JSON text (strings get ${VAR} substitution).
    std::vector<std::pair<std::string, std::string>> json_fields(std::string_view key) const;
    // A table's members whose values must be strings (or numbers/bools, given as their text).
    std::vector<std::pair<std::string, std::string>> string_map(std::string_view key) const;
    const toml::table* table(std::string_view key) const;
    const toml::node* node(std::string_view key) const;

    // Throws ConfigError pointing at `key` (or the stage's header when it is absent).
    [[noreturn]] void fail(std::string_view key, const std::string& message) const;
    Location where(std::string_view key) const;
    // Records a problem and carries on, so that a stage reports all of its problems at once;
    // build_stages builds no stage that has one. fail() is for when nothing further can be checked.
    void problem(std::string_view key, const std::string& message) const;
    void problem_at(Location where, const std::string& message) const;
    const std::vector<Diagnostic>& problems() const { return problems_; }
    // Throws ProblemsFound when a problem was recorded: a factory calls it once everything is
    // checked, before building anything from values known to be wrong.
    void stop_if_problems() const;
    void clear_problems() const { problems_.clear(); }

private:
    std::string env_value(const toml::node& v, const std::string& s) const;

    std::string name_, type_;
    const toml::table* tbl_;
    std::string file_;
    Location loc_;
    mutable std::vector<Diagnostic> problems_;
};

// Checks `tbl` against `schema`, appending "message" entries with their locations. Keys in
// `reserved` (type, inputs) are skipped.
void check_table(const toml::table& tbl, const std::vector<OptionSpec>& schema, const std::string& what,
                 const std::string& file, const Location& header, const std::vector<std::string>& reserved,
                 std::vector<Diagnostic>& out);

}  // namespace hbf
