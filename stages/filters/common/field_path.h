// Field paths into an event: `.keys."interface-name"`, `.labels.env`, `.hops[0].addr`.
//
// A segment is a bare name (letters, digits, '_', '-', '@', '$'), a JSON-quoted name (for names
// holding dots, spaces or anything else), or an array index [N]. The leading dot is optional in
// option values ("device-id", "keys._instance_id"); conditions write it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hbf::filters {

struct PathSegment {
    std::string name;   // unescaped member name; empty when this is an index
    long index = -1;    // >= 0 for [N]
    bool is_index() const { return index >= 0; }
    bool operator==(const PathSegment&) const = default;
};

struct FieldPath {
    std::vector<PathSegment> segments;
    std::string text;  // as written, for messages
    bool operator==(const FieldPath& o) const { return segments == o.segments; }
};

struct PathError {
    size_t column = 0;  // 1-based, into the text given
    std::string message;
};

// Parses a path starting at text[pos]; on success advances pos past it. `need_dot`: the path
// must start with '.' (conditions); otherwise a leading dot is optional (option values).
bool parse_path(std::string_view text, size_t& pos, bool need_dot, FieldPath& out, PathError& err);

// A whole option value as one path; throws std::invalid_argument with the column on error.
FieldPath parse_path_option(std::string_view text);

// Parses a JSON string literal at text[pos] ('"' ... '"'), unescaping into out.
bool parse_json_string(std::string_view text, size_t& pos, std::string& out, PathError& err);

}  // namespace hbf::filters
