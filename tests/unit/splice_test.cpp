// stages/filters/common/splice.h: adding members before an object event's closing brace.
#include <catch2/catch.hpp>

#include "../../stages/filters/common/splice.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::filters;

namespace {
// `ev` with `member` ("name", value) spliced in, through a batch as the filters do it.
std::string spliced(std::string_view ev, std::vector<std::pair<std::string, std::string>> members) {
    BatchPtr out = Batch::make();
    out->append("{\"before\":1}");  // the look-back for '{' must stop inside the event
    size_t close = object_close(ev);
    REQUIRE(close != std::string_view::npos);
    MemberSplice s(*out);
    s.buf().append(ev.substr(0, close));
    for (auto& [q, v] : members) s.member(q, v);
    s.finish(ev.substr(close));
    REQUIRE(out->size() == 2);
    return std::string(out->event(1));
}
}  // namespace

TEST_CASE("object_close finds the closing brace of an object event and refuses anything else") {
    CHECK(object_close("{}") == 1);
    CHECK(object_close(R"({"a":{"b":1}} )") == 12);
    CHECK(object_close("[{}]") == std::string_view::npos);
    CHECK(object_close(R"("}")") == std::string_view::npos);
    CHECK(object_close("{") == std::string_view::npos);
    CHECK(object_close("") == std::string_view::npos);
}

TEST_CASE("splicing puts a comma before a member only when the object already has one") {
    CHECK(spliced("{}", {{R"("x")", "1"}}) == R"({"x":1})");
    CHECK(spliced("{ \n}", {{R"("x")", "1"}}) == "{ \n\"x\":1}");
    CHECK(spliced(R"({"a":1})", {{R"("x")", "1"}, {R"("y")", R"("z")"}}) == R"({"a":1,"x":1,"y":"z"})");
    CHECK(spliced(R"({"a":[1,{}] } )", {{R"("x")", "null"}}) == R"({"a":[1,{}] ,"x":null} )");
}

TEST_CASE("members written as text are spliced like single members") {
    BatchPtr out = Batch::make();
    std::string_view ev = R"({"a":1})";
    MemberSplice s(*out);
    s.buf().append(ev.substr(0, object_close(ev)));
    s.members(R"("b":2,"c":3)");
    s.finish("}");
    CHECK(test::texts(*out) == std::vector<std::string>{R"({"a":1,"b":2,"c":3})"});
}

TEST_CASE("copy_object_without leaves out the members the predicate claims, keeping order and escapes") {
    simdjson::ondemand::parser parser;
    BatchPtr in = test::batch({R"({"a":1, "drop":{"x":[1]}, "q\"uote":"v", "b":true})"});
    std::string out = "prefix";
    CHECK(copy_object_without(parser, in->event(0), in->capacity_after(0), out, [](std::string_view n) { return n == "drop"; }));
    CHECK(out == R"(prefix{"a":1,"q\"uote":"v","b":true)");
}

TEST_CASE("copy_object_without refuses what is not a well-formed object and leaves the output alone") {
    simdjson::ondemand::parser parser;
    BatchPtr in = test::batch({"[1,2]", R"({"a":1,"b":})", "{"});
    for (size_t i = 0; i < in->size(); ++i) {
        std::string out = "prefix";
        CHECK_FALSE(copy_object_without(parser, in->event(i), in->capacity_after(i), out, [](std::string_view) { return false; }));
        CHECK(out == "prefix");
    }
}
