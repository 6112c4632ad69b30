#include <simdjson.h>

#include "filter_events.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::test;

namespace {
const std::string kEv =
    R"({"device-id": "mx480-pe2.ams", "group": "edge-routers", "keys": {"_instance_id": "[\"edge-intf\"]", "_playbook_name": "interface-kpis-playbook", "interface-name": "xe-0/1/4"}, "message": "down", "severity": "major"})";
std::string one(const std::string& type, const std::string& body, const std::string& ev = kEv) {
    FilterHarness h(type, body);
    auto out = h.run({ev});
    REQUIRE(out.size() == 1);
    return out[0];
}
}  // namespace

TEST_CASE("fields rename keeps the member's place; a nested member moves to the top level") {
    CHECK(one("fields", R"(rename = { "device-id" = "device", "keys._playbook_name" = "playbook" })") ==
          R"({"device":"mx480-pe2.ams","group":"edge-routers","keys":{"_instance_id":"[\"edge-intf\"]","interface-name":"xe-0/1/4"},"message":"down","severity":"major","playbook":"interface-kpis-playbook"})");
}

TEST_CASE("fields rename replaces an existing member of the destination name, before or after") {
    CHECK(one("fields", R"(rename = { "a" = "b" })", R"({"b":0,"a":1,"c":2})") == R"({"b":1,"c":2})");
    CHECK(one("fields", R"(rename = { "a" = "b" })", R"({"a":1,"b":0,"c":2})") == R"({"b":1,"c":2})");
    CHECK(one("fields", R"(rename = { "k.a" = "b" })", R"({"b":0,"k":{"a":1}})") == R"({"k":{},"b":1})");
    CHECK(one("fields", R"(rename = { "k.a" = "b" })", R"({"b":0,"k":{"x":1}})") == R"({"b":0,"k":{"x":1}})");  // no source: kept
}

TEST_CASE("fields remove and keep") {
    CHECK(one("fields", R"(remove = ["message", "keys._instance_id"])") ==
          R"({"device-id":"mx480-pe2.ams","group":"edge-routers","keys":{"_playbook_name":"interface-kpis-playbook","interface-name":"xe-0/1/4"},"severity":"major"})");
    CHECK(one("fields", R"(keep = ["severity", "device-id"])") == R"({"device-id":"mx480-pe2.ams","severity":"major"})");
}

TEST_CASE("fields set writes values, replacing or creating nested objects") {
    CHECK(one("fields", R"(set = { "labels.env" = "prod", "severity" = "minor", "n" = 3 })", R"({"severity":"major","a":1})") ==
          R"({"severity":"minor","a":1,"labels":{"env":"prod"},"n":3})");
    CHECK(one("fields", R"(set = { "labels.env" = "prod" })", R"({"labels":{"team":"noc","env":"dev"}})") ==
          R"({"labels":{"team":"noc","env":"prod"}})");
    CHECK(one("fields", R"(set = { "labels.env" = "prod" })", R"({"labels":"x"})") == R"({"labels":{"env":"prod"}})");
}

TEST_CASE("fields flatten lifts an object's members to the top level with a prefix") {
    CHECK(one("fields", R"(flatten = "keys")") ==
          R"({"device-id":"mx480-pe2.ams","group":"edge-routers","keys__instance_id":"[\"edge-intf\"]","keys__playbook_name":"interface-kpis-playbook","keys_interface-name":"xe-0/1/4","message":"down","severity":"major"})");
    CHECK(one("fields", "flatten = \"a.b\"\nflatten_prefix = \"\"", R"({"a":{"b":{"x":1,"y":[2]}},"z":0})") == R"({"a":{},"z":0,"x":1,"y":[2]})");
}

TEST_CASE("fields parse_json replaces a string holding JSON by its value") {
    CHECK(one("fields", R"(parse_json = ["keys._instance_id"])") ==
          R"({"device-id":"mx480-pe2.ams","group":"edge-routers","keys":{"_instance_id":["edge-intf"],"_playbook_name":"interface-kpis-playbook","interface-name":"xe-0/1/4"},"message":"down","severity":"major"})");
    FilterHarness h("fields", R"(parse_json = ["j"])");
    CHECK(h.run({R"({"j":"[1, {\"a\": 2}]"})", R"({"j":"not json"})", R"({"j":"1} {\"x\":2"})", R"({"j":5})"}) ==
          std::vector<std::string>{R"({"j":[1,{"a":2}]})", R"({"j":"not json"})", R"({"j":"1} {\"x\":2"})", R"({"j":5})"});
    CHECK(h.ctx().metrics().errors.get() == 2);
}

TEST_CASE("fields parse_json and rename of the same member combine") {
    CHECK(one("fields", "parse_json = [\"keys._instance_id\"]\nrename = { \"keys._instance_id\" = \"instance\" }") ==
          R"({"device-id":"mx480-pe2.ams","group":"edge-routers","keys":{"_playbook_name":"interface-kpis-playbook","interface-name":"xe-0/1/4"},"message":"down","severity":"major","instance":["edge-intf"]})");
}

TEST_CASE("fields keeps UTF-8 and escapes, and passes non-objects unchanged") {
    FilterHarness h("fields", R"(rename = { "m" = "msg" })");
    CHECK(h.run({R"({"m":"caf\u00e9 \"q\" \\ Zürich","a\"b":1})", "not json", "[1]"}) ==
          std::vector<std::string>{R"({"msg":"caf\u00e9 \"q\" \\ Zürich","a\"b":1})", "not json", "[1]"});
}

TEST_CASE("fields on every HealthBot sample gives valid JSON with the playbook at the top") {
    FilterHarness h("fields", "rename = { \"keys._playbook_name\" = \"playbook\" }\nparse_json = [\"keys._instance_id\"]");
    auto ex = healthbot_examples();
    auto out = h.run(ex);
    REQUIRE(out.size() == ex.size());
    simdjson::dom::parser p;
    for (const auto& o : out) {
        simdjson::dom::element e;
        REQUIRE(p.parse(o).get(e) == simdjson::SUCCESS);
        std::string_view pb;
        CHECK(e["playbook"].get(pb) == simdjson::SUCCESS);
        CHECK(e["keys"]["_playbook_name"].error() == simdjson::NO_SUCH_FIELD);
    }
}

TEST_CASE("fields writes names as JSON whatever escapes they hold: the event's as written, the config's escaped") {
    FilterHarness h("fields", "rename = { m = '\"say \\\"x\\\"\"' }\nflatten = \"k\"\nflatten_prefix = 'k\\'");
    CHECK(h.run({R"({"m":1,"k":{"a\"b":2,"caf\u00e9":3},"\u0041\n":4})"}) ==
          std::vector<std::string>{R"({"say \"x\"":1,"k\\a\"b":2,"k\\caf\u00e9":3,"\u0041\n":4})"});
    // Matching uses the unescaped name: an escaped spelling of "m" is renamed too.
    FilterHarness r("fields", R"(rename = { "m" = "n" })");
    CHECK(r.run({R"({"\u006d":1})"}) == std::vector<std::string>{R"({"n":1})"});
}

TEST_CASE("fields parse_json validates the text in its copying pass: whitespace, escapes, broken text") {
    FilterHarness h("fields", R"(parse_json = ["j"])");
    uint64_t errors = h.ctx().metrics().errors.get();  // the registry is process-wide: count from here
    CHECK(h.run({R"({"j":" { \"a\" : [ 1 , \"x y\\\"\" ] } "})", R"({"j":"\"\\ud83d\""})", R"({"j":"[1,]"})", R"({"j":"01"})",
                 R"({"j":"\"caf\u00e9\""})"}) ==
          std::vector<std::string>{R"({"j":{"a":[1,"x y\""]}})", R"({"j":"\"\\ud83d\""})", R"({"j":"[1,]"})", R"({"j":"01"})",
                                   R"({"j":"café"})"});
    CHECK(h.ctx().metrics().errors.get() - errors == 3);
}
