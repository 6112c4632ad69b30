// simdjson On-Demand helpers shared by the stages that read event text.
#pragma once

#include <simdjson.h>
#include <string>
#include <string_view>

namespace hbf {

struct JsonCheck {
    bool ok = true;
    size_t offset = 0;     // byte offset of the problem inside the text
    const char* message = "";
};

// Fully validates that [p, p+len) is one JSON object (every value visited, nothing trailing).
// `capacity` is the readable size from p (>= len + SIMDJSON_PADDING): no copy is made.
JsonCheck check_object(simdjson::ondemand::parser& parser, const char* p, size_t len, size_t capacity);

// check_object's verdict, in one pass of simdjson's DOM parser: it validates a whole text about
// twice as fast as walking it On-Demand (bench/README.md). Only a text it rejects is walked again,
// for the message and the offset of the problem, so errors read as before. Its depth limit is below
// the walk's, so it accepts nothing the walk refuses (a deeper text is walked); on numbers,
// strings, atoms and structure the two agree (tests/unit/stages_test.cpp compares them).
class ObjectChecker {
public:
    ObjectChecker();
    JsonCheck check(const char* p, size_t len, size_t capacity);

    // check(p, ...)'s verdict, and when it is ok, append_compact(out, p) done too, in one pass over the text
    // instead of three (simdjson's two stages, then compaction): simdjson's stage 1 (UTF-8, control
    // characters, string extents, the structural indexes), then a walk of those indexes that checks
    // the grammar and each token and copies it without the whitespace after it. Whatever the walk
    // cannot settle cheaply (numbers with exponents or more than 18 digits, \u escapes of
    // surrogates, nesting deeper than 128, a text without padding) goes the way of check() and
    // append_compact, so the verdict and the output are theirs (tests/unit/stages_test.cpp compares
    // both on mutated events). When not ok, nothing was appended.
    JsonCheck append_compact_if_valid(std::string& out, const char* p, size_t len, size_t capacity);
    // How many texts append_compact_if_valid settled in its one pass (for the tests).
    uint64_t one_pass() const { return one_pass_; }

private:
    bool walk_indexes(const uint8_t* buf, size_t len, std::string& out);

    simdjson::ondemand::parser ondemand_;
    simdjson::dom::parser dom_;
    uint64_t one_pass_ = 0;
};

// The JSON text of a value, inside the document. By reference: a copy of simdjson's value on the hot
// path costs a store-forwarding stall (the compiler copies it with one vector load after scalar stores).
simdjson::simdjson_result<std::string_view> raw_value(simdjson::ondemand::value& v);
inline simdjson::simdjson_result<std::string_view> raw_value(simdjson::ondemand::value&& v) { return raw_value(v); }

// Appends valid JSON text without the whitespace outside strings (faster than simdjson::minify
// on short documents, whose per-call setup dominates).
void append_compact(std::string& out, std::string_view json);
// JSON's whitespace.
inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Appends s as a JSON string literal, with quotes and escapes.
void append_json_string(std::string& out, std::string_view s);

// A dotted field path split into its names: .keys."interface-name" or keys.interface-name.
}  // namespace hbf
