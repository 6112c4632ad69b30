// stages/filters/common/hash.h: the value hash dedupe and throttle key their state on.
#include <catch2/catch.hpp>

#include "../../stages/filters/common/field_path.h"
#include "../../stages/filters/common/hash.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::filters;

namespace {
// The value hash of member "v" of each event, read as the filters read it.
std::vector<uint64_t> hashes(const std::vector<std::string>& events, bool hash_objects) {
    FieldReader reader;
    size_t slot = reader.add(parse_path_option("v"));
    reader.hash_objects(hash_objects);
    simdjson::ondemand::parser parser;
    BatchPtr b = test::batch(events);
    std::vector<uint64_t> out;
    for (size_t i = 0; i < b->size(); ++i) {
        std::string_view ev = b->event(i);
        reader.read(parser, ev.data(), ev.size(), b->capacity_after(i));
        out.push_back(value_hash(reader.value(slot)));
    }
    return out;
}
}  // namespace

TEST_CASE("value_hash reads strings by their unescaped text and tells kinds apart") {
    auto h = hashes({R"({"v":"ab"})", R"({"v":"a\u0062"})", R"({"v":"1"})", R"({"v":1})", R"({"v":null})", R"({})", R"({"v":true})",
                     R"({"v":"true"})"},
                    false);
    CHECK(h[0] == h[1]);
    CHECK(h[2] != h[3]);  // the string "1" is not the number 1
    CHECK(h[4] != h[5]);  // null is not missing
    CHECK(h[6] != h[7]);
}

TEST_CASE("value_hash tells objects apart whether or not the reader hashed them") {
    std::vector<std::string> evs = {R"({"v":{"a":1,"b":2}})", R"({"v":{"b":2,"a":1}})", R"({"v":{"a":1,"b":3}})"};
    auto hashed = hashes(evs, true);
    CHECK(hashed[0] == hashed[1]);  // member order does not matter to the reader's object hash
    CHECK(hashed[0] != hashed[2]);
    auto text = hashes(evs, false);
    CHECK(text[0] != text[2]);
}

TEST_CASE("a quoted path segment takes JSON's \\u escapes, surrogate pairs whole, and names a bad one by its column") {
    auto name = [](std::string_view text) { return parse_path_option(text).segments.at(1).name; };
    CHECK(name(R"(keys."caf\u00e9")") == "caf\xc3\xa9");
    CHECK(name(R"(keys."\ud83d\ude00 up")") == "\xf0\x9f\x98\x80 up");
    CHECK(name(R"(keys."a\"b\\c\/d\te")") == "a\"b\\c/d\te");
    auto error = [](std::string_view text) {
        size_t pos = 0;
        FieldPath p;
        PathError err;
        CHECK_FALSE(parse_path(text, pos, false, p, err));
        return std::to_string(err.column) + ": " + err.message;
    };
    CHECK(error(R"(k."x\u12")") == "5: \\u needs four hex digits");
    CHECK(error(R"(k."x\ud83d")") == "5: unpaired UTF-16 surrogate in \\u escape");
    CHECK(error(R"(k."x\ud83d\u0041")") == "5: unpaired UTF-16 surrogate in \\u escape");
    CHECK(error(R"(k."x\ude00")") == "5: unpaired UTF-16 surrogate in \\u escape");
    CHECK(error(R"(k."x\q")") == "5: unknown escape '\\q'");
    CHECK(error(R"(k."x)") == "3: unterminated string");
}
