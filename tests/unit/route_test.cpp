#include "filter_events.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::test;

namespace {
const char* kRoutes = R"([filters.f.routes]
major = '.severity in ["major","critical"]'
info = '.severity == "normal"'
edge = '.group =~ "edge"'
)";
}

TEST_CASE("route sends each event to every route it matches, the rest to _unmatched") {
    FilterHarness h("route", kRoutes);  // ports: 1 major, 2 info, 3 edge, 4 _unmatched
    std::vector<std::string> in = {R"({"severity":"major","group":"edge-routers"})", R"({"severity":"normal","group":"core"})",
                                   R"({"severity":"minor","group":"core"})", R"({"severity":"critical","group":"lab"})"};
    BatchPtr b = batch(in);
    // The filter writes all ports at once: run, then drain each.
    h.run(std::move(b), 0);
    CHECK(h.drain(1) == std::vector<std::string>{in[0], in[3]});
    CHECK(h.drain(2) == std::vector<std::string>{in[1]});
    CHECK(h.drain(3) == std::vector<std::string>{in[0]});
    CHECK(h.drain(4) == std::vector<std::string>{in[2]});
}

TEST_CASE("route port names follow the table's order, then _unmatched") {
    auto cfg = config(std::string("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"route\"\ninputs = [\"i\"]\n") + kRoutes +
                      "[outputs.a]\ntype = \"null\"\ninputs = [\"f.edge\", \"f._unmatched\"]\n");
    for (const auto& s : cfg->stages)
        if (s.name == "f") CHECK(s.ports == std::vector<std::string>{"major", "info", "edge", "_unmatched"});
}

TEST_CASE("route: reading an unknown route is a config error naming the ports") {
    auto cfg = load_config_text(std::string("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"route\"\ninputs = [\"i\"]\n") + kRoutes +
                                    "[outputs.a]\ntype = \"null\"\ninputs = [\"f.majr\"]\n",
                                "t.toml");
    CHECK_FALSE(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("'f.majr' names no port") && Catch::Contains("major, info, edge, _unmatched"));
}

TEST_CASE("route gives every port batch its own ack hold; the ack settles when all are released") {
    FilterHarness h("route", kRoutes);
    int settled = 0;
    {
        BatchPtr b = batch({R"({"severity":"major","group":"edge-routers"})", R"({"severity":"minor"})"});
        AckRef first = make_ack([&](AckStatus, const std::string&) { ++settled; });
        b->acks.push_back(first.clone());
        first.reset();
        h.run(std::move(b), 1);
        CHECK(settled == 0);  // ports 3 and 4 still hold their batches
        h.drain(3);
        CHECK(settled == 0);
        h.drain(4);
        CHECK(settled == 0);  // the stage's own port (every event) still holds the input batch
        CHECK(h.drain(0).size() == 2);
    }
    CHECK(settled == 1);
}

TEST_CASE("route sends events matching no route to _unmatched only") {
    FilterHarness h("route", kRoutes);
    auto ex = healthbot_examples();
    std::vector<std::string> minors;
    for (const auto& e : ex)
        if (member(e, "severity") == "minor" && member(e, "group").find("edge") == std::string::npos) minors.push_back(e);
    REQUIRE(minors.size() > 1);
    h.run(batch(minors), 0);
    CHECK(h.drain(4) == minors);
    CHECK(h.drain(1).empty());
}

TEST_CASE("route rejects a bad condition, pointing into the route's value") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"route\"\ninputs = [\"i\"]\n[filters.f.routes]\n"
                                "major = '.severity in \"major\"'\n[outputs.a]\ntype = \"null\"\ninputs = [\"f.major\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_FALSE(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("t.toml:7:23") && Catch::Contains("route 'major'"));
}

TEST_CASE("route reports every bad route at once: conditions, a reserved name, a value that is not a string") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"route\"\ninputs = [\"i\"]\n[filters.f.routes]\n"
                                "major = '.severity in \"major\"'\nminor = '.severity = 1'\n_unmatched = '.a == 1'\nn = 5\n"
                                "[outputs.a]\ntype = \"null\"\ninputs = [\"f.major\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_FALSE(cfg->ok());
    std::string r = cfg->report();
    CHECK_THAT(r, Catch::Contains("t.toml:7:23") && Catch::Contains("route 'major'"));
    CHECK_THAT(r, Catch::Contains("t.toml:8:") && Catch::Contains("route 'minor'"));
    CHECK_THAT(r, Catch::Contains("t.toml:9:14: '_unmatched' is reserved"));
    CHECK_THAT(r, Catch::Contains("t.toml:10:5: route 'n' must be a condition string"));
}
