#include "helpers.h"

using namespace hbf;
using namespace hbf::test;

namespace {
const int64_t kSec = 1000000000;
BatchPtr at(int64_t t_ns, const std::vector<std::string>& evs) {
    BatchPtr b = batch(evs);
    b->received_ns = t_ns;
    return b;
}
std::vector<std::string> dev(const std::string& d, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(R"({"device-id":")" + d + R"(","n":)" + std::to_string(i) + "}");
    return v;
}
}  // namespace

TEST_CASE("throttle lets rate events per interval through per key and counts the excess") {
    FilterHarness h("throttle", "rate = 3\nper = \"10s\"\nkey = \"{device-id}\"");
    uint64_t before = h.ctx().metrics().dropped("throttled").get();
    auto a = dev("a", 5), b = dev("b", 2);
    std::vector<std::string> in = a;
    in.insert(in.end(), b.begin(), b.end());
    CHECK(h.run(at(kSec, in)) == std::vector<std::string>{a[0], a[1], a[2], b[0], b[1]});
    CHECK(h.run(at(5 * kSec, dev("a", 1))).empty());
    CHECK(h.run(at(11 * kSec, dev("a", 4))) == std::vector<std::string>{a[0], a[1], a[2]});
    CHECK(h.ctx().metrics().dropped("throttled").get() - before == 4);
}

TEST_CASE("throttle on_excess = sample passes one in N of the excess") {
    FilterHarness h("throttle", "rate = 2\nper = \"1m\"\non_excess = \"sample\"\nsample = 3");
    auto a = dev("a", 10);
    CHECK(h.run(at(kSec, a)) == std::vector<std::string>{a[0], a[1], a[2], a[5], a[8]});
}

TEST_CASE("throttle keys on several fields; a missing field is a key of its own") {
    FilterHarness h("throttle", "rate = 1\nkey = \"{group}/{device-id}\"");
    CHECK(h.run(at(kSec, {R"({"group":"g","device-id":"a"})", R"({"group":"h","device-id":"a"})", R"({"device-id":"a"})",
                          R"({"device-id":"a"})", R"({"group":"g","device-id":"a"})"}))
              .size() == 3);
}

TEST_CASE("throttle rejects a key template without fields") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"throttle\"\ninputs = [\"i\"]\nrate = 1\nkey = \"device-id\"\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_THAT(cfg->report(), Catch::Contains("names no field"));
}

TEST_CASE("throttle counts a missing key field as its fallback") {
    FilterHarness h("throttle", "rate = 1\nkey = \"{group|none}\"");
    CHECK(h.run(at(kSec, {R"({"group":"none"})", R"({"n":1})", R"({"group":"g"})"})).size() == 2);
}

TEST_CASE("throttle reports a malformed key template where it is") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"throttle\"\ninputs = [\"i\"]\nrate = 1\nkey = \"{device-id\"\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_THAT(cfg->report(), Catch::Contains("t.toml:7") && Catch::Contains("never closed"));
}

TEST_CASE("throttle reports every bad option at once, each at its line") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"throttle\"\ninputs = [\"i\"]\n"
                                "rate = 0\nper = \"0s\"\non_excess = \"burst\"\nsample = 0\nmax_entries = 0\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    std::string r = cfg->report();
    CHECK_THAT(r, Catch::Contains("t.toml:6:8: option 'rate' of f must be at least 1, not 0"));
    CHECK_THAT(r, Catch::Contains("t.toml:7:7: option 'per' of f must be at least 1ns, not \"0s\""));
    CHECK_THAT(r, Catch::Contains("t.toml:8:13: option 'on_excess' of f must be \"drop\" or \"sample\", not \"burst\""));
    CHECK_THAT(r, Catch::Contains("t.toml:9:10: option 'sample' of f must be at least 1"));
    CHECK_THAT(r, Catch::Contains("t.toml:10:15: option 'max_entries' of f must be at least 1"));
}
