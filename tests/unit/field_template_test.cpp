// Field templates (the kafka output's topic and key, the throttle key): parsing and rendering from event text.
#include <catch2/catch.hpp>

#include "field_template.h"
#include "kafka/client.h"

using hbf::FieldTemplate;

namespace {
std::string render(const FieldTemplate& t, std::string json, bool* ok = nullptr, std::string* missing = nullptr) {
    simdjson::padded_string text(json);
    simdjson::ondemand::parser parser;
    auto doc = parser.iterate(text);
    std::string out;
    std::string_view miss;
    bool r = t.render(doc.value(), out, &miss);
    if (ok) *ok = r;
    if (missing) *missing = std::string(miss);
    return out;
}
}  // namespace

TEST_CASE("a template without fields is static text") {
    FieldTemplate t("healthbot.alarms");
    CHECK(t.is_static());
    CHECK(t.literal() == "healthbot.alarms");
    FieldTemplate braces("a{{b}}c");
    CHECK(braces.is_static());
    CHECK(braces.literal() == "a{b}c");
}

TEST_CASE("fields, nested paths and non-string values render from the event") {
    const std::string ev = R"({"device-id": "mx960-pe1", "severity": "major", "keys": {"interface-name": "et-0/0/1"}, "n": 42, "up": true})";
    CHECK(render(FieldTemplate("hb.{severity}"), ev) == "hb.major");
    CHECK(render(FieldTemplate("{device-id}:{keys.interface-name}"), ev) == "mx960-pe1:et-0/0/1");
    CHECK(render(FieldTemplate("n{n}-{up}"), ev) == "n42-true");
    // fields in any order: the document is read again for each
    CHECK(render(FieldTemplate("{severity}.{device-id}.{severity}"), ev) == "major.mx960-pe1.major");
}

TEST_CASE("a missing field takes its fallback, or fails the rendering and is named") {
    const std::string ev = R"({"severity": "minor", "obj": {"a": 1}, "nul": null})";
    CHECK(render(FieldTemplate("{group|unknown}.{severity}"), ev) == "unknown.minor");
    CHECK(render(FieldTemplate("{obj|x}"), ev) == "x");   // objects are not text
    CHECK(render(FieldTemplate("{nul|none}"), ev) == "none");
    bool ok = true;
    std::string missing;
    render(FieldTemplate("hb.{group}"), ev, &ok, &missing);
    CHECK_FALSE(ok);
    CHECK(missing == "group");
}

TEST_CASE("escaped strings are unescaped") {
    CHECK(render(FieldTemplate("{s}"), R"({"s": "a\"b\u00e9"})") == "a\"b\xc3\xa9");
}

TEST_CASE("malformed templates are rejected with the position") {
    CHECK_THROWS_WITH(FieldTemplate("hb.{severity"), Catch::Contains("character 4") && Catch::Contains("never closed"));
    CHECK_THROWS_WITH(FieldTemplate("hb.{}"), Catch::Contains("empty field name"));
    CHECK_THROWS_WITH(FieldTemplate("hb.{a..b}"), Catch::Contains("empty field name"));
    CHECK_THROWS_WITH(FieldTemplate("hb}"), Catch::Contains("lone '}'"));
}

TEST_CASE("topic names follow Kafka's rules") {
    using hbf::kafka::topic_name_problem;
    CHECK(topic_name_problem("edge-routers.check_bgp.1").empty());
    CHECK_FALSE(topic_name_problem("").empty());
    CHECK_FALSE(topic_name_problem("..").empty());
    CHECK_FALSE(topic_name_problem("a/b").empty());
    CHECK_FALSE(topic_name_problem(std::string(250, 'a')).empty());
    CHECK(topic_name_problem(std::string(249, 'a')).empty());
}

TEST_CASE("a template lists its fields and fallbacks for stages that read fields their own way") {
    FieldTemplate t("{group|none}/{{{device-id}}}");
    std::vector<std::string> fields, fallbacks;
    for (const auto& p : t.pieces())
        if (!p.field.empty()) fields.push_back(p.field), fallbacks.push_back(p.has_fallback ? p.fallback : "-");
    CHECK(fields == std::vector<std::string>{"group", "device-id"});
    CHECK(fallbacks == std::vector<std::string>{"none", "-"});
}
