// The forward output's JSON -> msgpack conversion, checked by converting back with the input's writer.
#include <catch2/catch.hpp>
#include <msgpuck.h>

#include "../../stages/inputs/forward/to_json.h"
#include "../../stages/outputs/forward/json_msgpack.h"

using namespace hbf::forward;

namespace {

std::string round_trip(const std::string& json) {
    simdjson::ondemand::parser parser;
    simdjson::padded_string padded(json);
    simdjson::ondemand::document doc = parser.iterate(padded);
    std::string mp;
    REQUIRE(json_object_to_msgpack(doc, mp));
    const char* p = mp.data();
    REQUIRE(mp_check(&p, mp.data() + mp.size()) == 0);
    std::string back;
    p = mp.data();
    write_json(p, back, {});
    CHECK(p == mp.data() + mp.size());
    return back;
}

}  // namespace

TEST_CASE("forward output: JSON to msgpack and back keeps every value") {
    for (std::string j : {
             R"({})",
             R"({"a":1,"b":-1,"u":18446744073709551615,"i":-9223372036854775808,"f":0.1,"e":1e+300,"t":true,"n":null})",
             R"({"s":"café \"q\" \\ \n\t\u0001 end","nested":{"x":[1,[2,[3,{}]],"y",[]]}})",
         })
        CHECK(round_trip(j) == j);
}

TEST_CASE("forward output: containers of more than 15 and 65535 elements get wider headers") {
    std::string j = "{";
    for (int i = 0; i < 20; ++i) j += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":" + std::to_string(i);
    j += ",\"arr\":[";
    for (int i = 0; i < 70000; ++i) j += (i ? "," : "") + std::to_string(i % 10);
    j += "]}";
    CHECK(round_trip(j) == j);
}

TEST_CASE("forward output: an event that is not a JSON object is refused") {
    simdjson::ondemand::parser parser;
    for (std::string j : {"[1,2]", "\"text\"", "{\"a\":}"}) {
        simdjson::padded_string padded(j);
        simdjson::ondemand::document doc = parser.iterate(padded);
        std::string mp;
        CHECK_FALSE(json_object_to_msgpack(doc, mp));
    }
}
