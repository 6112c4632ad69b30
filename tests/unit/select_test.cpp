#include "filter_events.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::test;

TEST_CASE("select where keeps the matching events, in order") {
    FilterHarness h("select", R"(where = '.severity in ["major", "minor"] && .group != "lab"')");
    auto ex = healthbot_examples();
    uint64_t before = h.ctx().metrics().dropped("filtered").get();
    auto out = h.run(ex);
    std::vector<std::string> want;
    for (const auto& e : ex)
        if ((member(e, "severity") == "major" || member(e, "severity") == "minor") && member(e, "group") != "lab") want.push_back(e);
    REQUIRE(want.size() > 0);
    REQUIRE(want.size() < ex.size());  // the samples hold a normal and a lab alarm
    CHECK(out == want);
    CHECK(h.ctx().metrics().dropped("filtered").get() - before == ex.size() - want.size());
}

TEST_CASE("select drop_where drops the matching events and counts them") {
    FilterHarness h("select", R"(drop_where = '.severity == "normal"')");
    uint64_t before = h.ctx().metrics().dropped("filtered").get();
    auto out = h.run({R"({"severity":"normal","a":1})", R"({"severity":"major","a":2})", R"({"a":3})"});
    CHECK(out == std::vector<std::string>{R"({"severity":"major","a":2})", R"({"a":3})"});
    CHECK(h.ctx().metrics().dropped("filtered").get() - before == 1);
}

TEST_CASE("select acknowledges a batch it empties as dropped") {
    FilterHarness h("select", R"(where = '.severity == "critical"')");
    AckStatus got = AckStatus::delivered;
    bool settled = false;
    {
        BatchPtr b = batch({R"({"severity":"major"})", R"({"severity":"minor"})"});
        AckRef first = make_ack([&](AckStatus s, const std::string&) { got = s, settled = true; });
        b->acks.push_back(first.clone());
        first.reset();
        CHECK(h.run(std::move(b)).empty());
    }
    CHECK(settled);
    CHECK(got == AckStatus::dropped);
}

TEST_CASE("select passes events that are not JSON objects to conditions as all-missing") {
    FilterHarness h("select", R"(where = '!exists(.severity)')");
    CHECK(h.run({"not json", R"({"severity":"x"})"}) == std::vector<std::string>{"not json"});
}

TEST_CASE("select rejects a bad condition with its column in the config") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"select\"\ninputs = [\"i\"]\nwhere = '.severity = \"major\"'\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_FALSE(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("t.toml:6:20") && Catch::Contains("did you mean '=='"));
}

TEST_CASE("select needs exactly one of where and drop_where") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"select\"\ninputs = [\"i\"]\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_THAT(cfg->report(), Catch::Contains("exactly one of 'where'"));
}

TEST_CASE("select: a where that is not a string is reported at its value") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"select\"\ninputs = [\"i\"]\nwhere = 3\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_FALSE(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("t.toml:6:9:") && Catch::Contains("'where'") && Catch::Contains("must be a string"));
}
