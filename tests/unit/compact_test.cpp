// stages/filters/common/compact.h: dropping events from a batch in place.
#include <catch2/catch.hpp>

#include "../../stages/filters/common/compact.h"
#include "helpers.h"

using namespace hbf;

TEST_CASE("compact keeps the chosen events in order without moving their text and counts the rest") {
    BatchPtr b = test::batch({R"({"n":0})", R"({"n":1})", R"({"n":2})", R"({"n":3})"});
    const std::string text = b->buf;
    Counter dropped;
    std::vector<size_t> asked;
    CHECK(filters::compact(*b, dropped, "why", [&](size_t i) {
        asked.push_back(i);
        return i % 2 == 1;
    }));
    CHECK(asked == std::vector<size_t>{0, 1, 2, 3});
    CHECK(test::texts(*b) == std::vector<std::string>{R"({"n":1})", R"({"n":3})"});
    CHECK(b->buf == text);
    CHECK(dropped.get() == 2);
}

TEST_CASE("compact settles a batch it empties as dropped, with the reason") {
    AckStatus st = AckStatus::delivered;
    std::string reason;
    BatchPtr b = test::batch({"{}", "{}"});
    {
        AckRef root = make_ack([&](AckStatus s, const std::string& r) { st = s, reason = r; });
        b->acks.push_back(root.clone());
    }
    Counter dropped;
    CHECK_FALSE(filters::compact(*b, dropped, "filtered out", [](size_t) { return false; }));
    CHECK(dropped.get() == 2);
    b.reset();
    CHECK(st == AckStatus::dropped);
    CHECK(reason == "filtered out");
}

TEST_CASE("compact passes over an empty batch without settling it") {
    AckStatus st = AckStatus::failed;
    BatchPtr b = Batch::make();
    {
        AckRef root = make_ack([&](AckStatus s, const std::string&) { st = s; });
        b->acks.push_back(root.clone());
    }
    Counter dropped;
    CHECK_FALSE(filters::compact(*b, dropped, "why", [](size_t) { return true; }));
    CHECK(dropped.get() == 0);
    CHECK_FALSE(b->acks[0].settled());  // compact leaves the hold unsettled
    // The worst status wins: had compact marked the batch dropped, delivered would not show.
    b->mark(AckStatus::delivered);
    b.reset();
    CHECK(st == AckStatus::delivered);
}
