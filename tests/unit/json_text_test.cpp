#include <catch2/catch.hpp>
#include <simdjson.h>
#include <string>

#include "../../stages/filters/common/json_text.h"

using hbf::filters::append_json_value_compact;

namespace {
// "" when simdjson's DOM parser refuses the text, else the text as simdjson::minify writes it.
std::string simdjson_view(const std::string& s) {
    simdjson::dom::parser p;
    simdjson::dom::element e;
    if (p.parse(s).get(e)) return "";
    std::string out(s.size(), '\0');
    size_t n = 0;
    if (simdjson::minify(s.data(), s.size(), out.data(), n)) return "";
    out.resize(n);
    return out;
}
std::string compact(const std::string& s) {
    std::string out = "prefix";
    if (!append_json_value_compact(out, s)) {
        REQUIRE(out == "prefix");  // nothing written on failure
        return "";
    }
    return out.substr(6);
}
}  // namespace

TEST_CASE("json text compaction accepts what simdjson accepts and writes the same compact text") {
    const char* valid[] = {
        "0", "-0", "12", "-1.5e+3", "1E-2", "0.25", "true", "false", "null", "\"\"", "\"a b\"",
        "[]", "{}", " [ 1 , 2 ] ", "\n{ \"a\" : [ true, null, { \"b\" : \"c d\" } ] }\t",
        R"(["edge-intf"])", R"({"q":"say \"hi\"","s":"a\\b","u":"\u00e9\ud83d\ude00","e":"\/\b\f\n\r\t"})",
        "\"caf\xc3\xa9\"", "[[[[[]]]]]", R"({"a":{"b":{"c":[1,2,{"d":-0.0e0}]}}})",
    };
    for (const char* v : valid) {
        INFO(v);
        std::string want = simdjson_view(v);
        REQUIRE(!want.empty());
        CHECK(compact(v) == want);
    }
}

TEST_CASE("json text compaction refuses broken text, as simdjson does") {
    const char* broken[] = {
        "", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "truex", "nul", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}",
        "{\"a\":1,}", "{a:1}", "[1 2]", "{\"a\":1 \"b\":2}", "\"abc", "\"a\\x\"", "\"\\u12\"", "\"\\u12g4\"",
        "\"tab\there\"", "[1]]", "1 2", "{\"a\":1}}", "[", "{", "\"\\ud83d\"", "\"\\ud83d\\u0041\"", "'a'", "NaN",
    };
    for (const char* b : broken) {
        INFO(b);
        CHECK(simdjson_view(b).empty());
        CHECK(compact(b).empty());
    }
}

TEST_CASE("json text compaction bounds the nesting depth") {
    CHECK(compact(std::string(256, '[') + std::string(256, ']')) == std::string(256, '[') + std::string(256, ']'));
    CHECK(compact(std::string(257, '[') + std::string(257, ']')).empty());
    CHECK(compact(std::string(100000, '[')).empty());
}
