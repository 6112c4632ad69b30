// The condition language: parsing (errors with columns) and every operator on HealthBot events.
#include <catch2/catch.hpp>
#include <string>

#include "../../stages/filters/common/condition.h"

using hbf::filters::Condition;
using hbf::filters::ConditionError;
using hbf::filters::FieldReader;

namespace {

const std::string kEvent =
    R"({"device-id": "mx480-pe2.ams", "group": "edge-routers", "keys": {"_instance_id": "[\"edge-intf\"]", "_playbook_name": "interface-kpis-playbook", "interface-name": "ge-0/1/4"}, "message": "caf\u00e9 \"quoted\" \\ back", "rule": "check-interface-status", "severity": "major", "topic": "interface.statistics", "trigger": "link-state", "rtt": 48.5, "hops": [{"addr": "10.0.0.1", "rtt": 3}, {"addr": "10.0.0.2", "rtt": 41}], "up": false, "note": null, "city": "Zürich"})";

bool eval(const std::string& cond, const std::string& ev = kEvent) {
    FieldReader r;
    Condition c(cond, r);
    simdjson::ondemand::parser p;
    std::string buf = ev;
    buf.reserve(ev.size() + simdjson::SIMDJSON_PADDING);
    r.read(p, buf.data(), ev.size(), buf.capacity());
    return c.eval(r);
}

size_t error_column(const std::string& cond) {
    FieldReader r;
    try {
        Condition c(cond, r);
    } catch (const ConditionError& e) {
        return e.column;
    }
    return 0;
}

}  // namespace

TEST_CASE("condition == and != compare strings, numbers, booleans and null") {
    CHECK(eval(R"(.severity == "major")"));
    CHECK_FALSE(eval(R"(.severity == "minor")"));
    CHECK(eval(R"(.severity != "minor")"));
    CHECK(eval(".rtt == 48.5"));
    CHECK(eval(".up == false"));
    CHECK(eval(".note == null"));
    CHECK_FALSE(eval(R"(.rtt == "48.5")"));  // types differ
}

TEST_CASE("condition in matches any listed value") {
    CHECK(eval(R"(.severity in ["major", "critical"])"));
    CHECK_FALSE(eval(R"(.severity in ["minor","normal"])"));
    CHECK_FALSE(eval(".severity in []"));
    CHECK(eval(R"(.rtt in [1, 48.5])"));
}

TEST_CASE("condition =~ uses RE2 on strings and !~ negates it") {
    CHECK(eval(R"(.keys."interface-name" =~ "^ge-")"));
    CHECK_FALSE(eval(R"(.keys."interface-name" =~ "^xe-")"));
    CHECK(eval(R"(.keys."interface-name" !~ "^xe-")"));
    CHECK_FALSE(eval(R"(.rtt =~ "4")"));  // not a string
    // A pattern that backtracking engines take exponential time on: RE2 answers at once.
    CHECK_FALSE(eval(R"(.message =~ "^(a+)+$")"));
}

TEST_CASE("condition orders numbers only") {
    CHECK(eval(".rtt > 40"));
    CHECK(eval(".rtt >= 48.5"));
    CHECK(eval(".rtt < 1e3"));
    CHECK(eval(".rtt <= 48.5"));
    CHECK_FALSE(eval(".rtt < 48.5"));
    CHECK_FALSE(eval(".severity > 1"));  // a string is not ordered against a number
}

TEST_CASE("condition exists, &&, ||, ! and parentheses") {
    CHECK(eval("exists(.device-id)"));
    CHECK(eval("exists(.note)"));
    CHECK_FALSE(eval("exists(.status)"));
    CHECK(eval(R"(.severity == "major" && .group == "edge-routers")"));
    CHECK_FALSE(eval(R"(.severity == "major" && .group == "core")"));
    CHECK(eval(R"(.group == "core" || .severity == "major")"));
    CHECK(eval(R"(!(.group == "core"))"));
    CHECK(eval(R"(!exists(.status) && (.severity == "minor" || .rtt > 40))"));
    CHECK(eval("true"));
    CHECK_FALSE(eval("!true"));
}

TEST_CASE("condition compares with missing fields as false, != as true") {
    CHECK_FALSE(eval(R"(.status == "open")"));
    CHECK(eval(R"(.status != "open")"));
    CHECK_FALSE(eval(".status > 1"));
    CHECK_FALSE(eval(R"(.status in ["x"])"));
    CHECK_FALSE(eval(R"(.keys.nothing =~ ".")"));
    CHECK_FALSE(eval(R"(.severity.deeper == "x")"));  // through a scalar
    CHECK_FALSE(eval(R"(.severity == "major")", "[1,2]"));  // not an object
    CHECK(eval(R"(.severity != "major")", "not json at all"));
}

TEST_CASE("condition reads fields in nested objects and in arrays") {
    CHECK(eval(R"(.keys._playbook_name == "interface-kpis-playbook")"));
    CHECK(eval(R"(.hops[1].addr == "10.0.0.2")"));
    CHECK(eval(".hops[1].rtt > 40 && .hops[0].rtt < 5"));
    CHECK_FALSE(eval("exists(.hops[2])"));
    CHECK(eval(R"(exists(.keys) && .keys."_instance_id" == "[\"edge-intf\"]")"));
}

TEST_CASE("condition strings: UTF-8 and escapes compare unescaped") {
    CHECK(eval(R"(.city == "Zürich")"));
    CHECK(eval(R"(.city == "Z\u00fcrich")"));
    CHECK(eval(R"(.message == "café \"quoted\" \\ back")"));
    CHECK(eval(R"(.message =~ "^caf\u00e9")"));
    CHECK(eval(R"(.message == "caf\u00e9 \"quoted\" \\ back")"));
}

TEST_CASE("condition: a member whose name needs quotes, and repeated members") {
    CHECK(eval(R"(."a.b" == 1)", R"({"a.b": 1, "a": {"b": 2}})"));
    CHECK(eval(R"(.a.b == 2)", R"({"a.b": 1, "a": {"b": 2}})"));
    CHECK(eval(R"(.x == 1)", R"({"x": 1, "x": 2})"));  // the first one counts
}

TEST_CASE("condition parse errors point at the column") {
    CHECK(error_column(R"(.severity = "major")") == 11);
    CHECK(error_column(R"(.severity == "major" & .x == 1)") == 22);
    CHECK(error_column(R"(.severity == 'major')") == 14);
    CHECK(error_column(R"(.severity in "major")") == 14);
    CHECK(error_column(R"((.severity == "major")") == 1);
    CHECK(error_column(R"x(.severity == "major")) )x") == 21);
    CHECK(error_column(R"(.severity =~ "(")") == 14);
    CHECK(error_column(R"(.rtt < "10")") == 8);
    CHECK(error_column(R"(.severity == "unterminated)") == 14);
    CHECK(error_column(".severity") == 10);
    CHECK(error_column("") == 1);
    CHECK(error_column(R"(. == "x")") == 2);
    CHECK(error_column(R"("major" == .severity)") == 1);
    CHECK(error_column(R"(.a == "\q")") == 8);
    CHECK(error_column(R"(.hops[x] == 1)") == 6);
    CHECK(error_column(R"(.a == 1 .b == 2)") == 9);
}

TEST_CASE("condition error messages say what was expected") {
    FieldReader r;
    try {
        Condition c(R"(.severity = "major")", r);
        FAIL("no error");
    } catch (const ConditionError& e) {
        CHECK(std::string(e.what()) == "column 11: '=' is not an operator (did you mean '=='?)");
    }
}

TEST_CASE("condition nesting is bounded, with an error instead of a stack overflow") {
    CHECK(eval(std::string(64, '(') + ".severity == \"major\"" + std::string(64, ')')));
    CHECK(eval(std::string(64, '!') + ".severity == \"major\""));
    CHECK(error_column(std::string(65, '(') + ".a == 1" + std::string(65, ')')) == 65);
    CHECK(error_column(std::string(100000, '(')) == 65);
    CHECK(error_column(std::string(100000, '!')) == 65);
}

TEST_CASE("condition chains of || and && of any length evaluate without deep recursion") {
    std::string any = ".severity == \"x0\"", all = ".severity == \"major\"";
    for (int i = 1; i < 20000; ++i) any += " || .severity == \"x" + std::to_string(i) + "\"", all += " && .up == false";
    CHECK_FALSE(eval(any));
    CHECK(eval(any + " || .severity == \"major\""));
    CHECK(eval(all));
    CHECK_FALSE(eval(all + " && .up == true"));
    CHECK(eval(".severity == \"minor\" || .severity == \"major\" && .up == false"));  // && binds tighter
    CHECK_FALSE(eval("(.severity == \"minor\" || .severity == \"major\") && .up == true"));
}
