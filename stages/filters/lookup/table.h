// The lookup filter's table: key -> the JSON members to add, precomputed as text.
//
// Loaded from CSV (header row; quoted fields, "" inside quotes, commas and newlines in quotes) or
// from a JSON object file ({"key": {"column": value, ...}, ...}). Built off the hot path and
// shared read-only (std::shared_ptr<const Table>) so a reload swaps it whole.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hbf::stages::lookup {

struct TableSpec {
    std::string key_column;             // CSV: column holding the key ("" = the first)
    std::vector<std::string> columns;   // columns to add ("" = all but the key)
    std::string prefix;                 // prepended to each added member's name
};

struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Table {
    // Members' JSON text without braces: "site":"ams","region":"eu"
    std::unordered_map<std::string, std::string, SvHash, std::equal_to<>> rows;
    std::vector<std::string> names;         // the added members' names (prefix included)
    std::vector<std::string> quoted_names;  // the same as JSON strings, to spot an event that has them

    const std::string* find(std::string_view key) const {
        auto it = rows.find(key);
        return it == rows.end() ? nullptr : &it->second;
    }
};

// Throws std::runtime_error with the line (CSV) or byte offset (JSON) of the problem.
std::shared_ptr<const Table> load_table(const std::string& path, const TableSpec& spec);
std::shared_ptr<const Table> parse_csv(std::string_view text, const TableSpec& spec);
std::shared_ptr<const Table> parse_json(std::string text, const TableSpec& spec);

}  // namespace hbf::stages::lookup
