#include "filter_events.h"
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
const std::string kMajor = R"({"group":"g","device-id":"d1","topic":"t","rule":"r","trigger":"x","keys":{"a":"1","b":"2"},"severity":"major","message":"m1"})";
const std::string kMajorReordered = R"({"severity":"major","keys":{"b":"2","a":"1"},"trigger":"x","rule":"r","topic":"t","device-id":"d1","group":"g","message":"m2"})";
const std::string kNormal = R"({"group":"g","device-id":"d1","topic":"t","rule":"r","trigger":"x","keys":{"a":"1","b":"2"},"severity":"normal"})";
const std::string kOther = R"({"group":"g","device-id":"d1","topic":"t","rule":"r","trigger":"x","keys":{"a":"1","b":"3"},"severity":"major"})";
}  // namespace

TEST_CASE("dedupe suppresses repeats within the window, whatever the member order inside keys") {
    FilterHarness h("dedupe", R"(window = "5m")");
    uint64_t before = h.ctx().metrics().dropped("duplicate").get();
    const int64_t t0 = 1000 * kSec;
    CHECK(h.run(at(t0, {kMajor, kMajorReordered, kOther, kMajor})) == std::vector<std::string>{kMajor, kOther});
    CHECK(h.run(at(t0 + 299 * kSec, {kMajor})).empty());
    CHECK(h.run(at(t0 + 300 * kSec, {kMajorReordered})) == std::vector<std::string>{kMajorReordered});
    CHECK(h.ctx().metrics().dropped("duplicate").get() - before == 3);
}

TEST_CASE("dedupe always passes a change of severity") {
    FilterHarness h("dedupe", R"(window = "5m")");
    CHECK(h.run(at(kSec, {kMajor, kNormal, kMajor, kMajor, kNormal})) == std::vector<std::string>{kMajor, kNormal, kMajor, kNormal});
}

TEST_CASE("dedupe adds repeat_count to the next event that passes") {
    FilterHarness h("dedupe", "window = \"10s\"\nrepeat_count_field = \"repeat_count\"");
    CHECK(h.run(at(kSec, {kMajor, kMajor, kMajor})) == std::vector<std::string>{kMajor});
    auto out = h.run(at(kSec * 2, {kNormal}));
    REQUIRE(out.size() == 1);
    CHECK(out[0] == kNormal.substr(0, kNormal.size() - 1) + R"(,"repeat_count":2})");
    CHECK(h.run(at(kSec * 3, {kMajor})) == std::vector<std::string>{kMajor});  // nothing suppressed since: no member
}

TEST_CASE("dedupe forgets the least recently seen alarm when full") {
    FilterHarness h("dedupe", "window = \"1h\"\nmax_entries = 2\nfields = [\"device-id\"]");
    auto ev = [](int d) { return R"({"device-id":"d)" + std::to_string(d) + R"("})"; };
    CHECK(h.run(at(kSec, {ev(1), ev(2), ev(1)})).size() == 2);  // d1 seen again: most recent
    CHECK(h.run(at(kSec, {ev(3)})).size() == 1);                // evicts d2
    CHECK(h.run(at(kSec, {ev(1)})).empty());                    // d1 still known
    CHECK(h.run(at(kSec, {ev(2)})).size() == 1);                // d2 was forgotten
}

TEST_CASE("dedupe on the HealthBot samples: a repeated corpus passes only the flapping alarm") {
    FilterHarness h("dedupe", "");
    auto ex = healthbot_examples();
    CHECK(h.run(at(kSec, ex)).size() == ex.size());
    // ex[0] and ex[1] are one alarm going major then normal: each repeat is a change of severity.
    CHECK(h.run(at(2 * kSec, ex)) == std::vector<std::string>{ex[0], ex[1]});
}
