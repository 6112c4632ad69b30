// Config-time helpers shared by the filters of this folder.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "condition.h"
#include "options.h"

namespace hbf::filters {

// Parses `text`, the value of option `key` (or `at`, a value inside it), as a condition. A syntax
// error is a problem of the stage pointing at the column inside the TOML value, and the result is
// empty; `what` names the condition in the message ("'where'", "route 'major'").
inline std::optional<Condition> condition_option(const StageConfig& c, const std::string& key, const std::string& text,
                                                 FieldReader& reader, const toml::node* at = nullptr,
                                                 const std::string& what = "") {
    try {
        return Condition(text, reader);
    } catch (const ConditionError& e) {
        Location l = c.where(key);
        if (const toml::node* n = at ? at : c.node(key)) l = location_of(*n, l.file), l.column += uint32_t(e.column);  // +1 for the opening quote, -1 for 1-based
        c.problem_at(l, "invalid condition in " + (what.empty() ? "'" + key + "'" : what) + ": " + e.what() + "\n  " + text + "\n  " +
                            std::string(e.column - 1, ' ') + "^");
        return std::nullopt;
    }
}

// A table's members in the order they were written (toml++ keeps tables sorted by key).
inline std::vector<std::pair<std::string, const toml::node*>> members_in_order(const toml::table& t) {
    std::vector<std::pair<std::string, const toml::node*>> out;
    for (const auto& [k, v] : t) out.emplace_back(std::string(k.str()), &v);
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        auto sa = a.second->source().begin, sb = b.second->source().begin;
        return sa.line != sb.line ? sa.line < sb.line : sa.column < sb.column;
    });
    return out;
}

// A field path option; a syntax error points at the option.
inline FieldPath path_option(const StageConfig& c, const std::string& key, const std::string& text) {
    try {
        return parse_path_option(text);
    } catch (const std::invalid_argument& e) {
        c.fail(key, "invalid field path '" + text + "' in '" + key + "': " + e.what());
    }
}

}  // namespace hbf::filters
