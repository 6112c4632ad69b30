// Config-time helpers shared by the filters of this folder.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "condition.h"
#include "options.h"

namespace hbf::filters {

// Parses option `key` as a condition; a syntax error points at the column inside the TOML value.
inline Condition condition_option(const StageConfig& c, const std::string& key, FieldReader& reader) {
    std::string text = c.str(key);
    try {
        return Condition(text, reader);
    } catch (const ConditionError& e) {
        Location l = c.where(key);
        const toml::node* n = c.node(key);
        if (n) l = location_of(*n, l.file), l.column += uint32_t(e.column);  // +1 for the opening quote, -1 for 1-based
        throw ConfigError(l, "invalid condition in '" + key + "': " + e.what() + "\n  " + text + "\n  " + std::string(e.column - 1, ' ') + "^");
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
