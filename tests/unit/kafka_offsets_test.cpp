// The kafka input's per-partition offset tracking: acks settle out of order, only the end of the
// longest settled prefix is stored.
#include <catch2/catch.hpp>

#include "kafka/offsets.h"

using hbf::kafka::OffsetTracker;

TEST_CASE("offsets: out-of-order acks store only the highest contiguous offset") {
    OffsetTracker t;
    auto a = t.open(100);  // messages ..99
    auto b = t.open(250);  // 100..249
    auto c = t.open(260);  // 250..259
    CHECK(t.settle(c) == -1);  // 0..249 still open
    CHECK(t.settle(b) == -1);
    CHECK(t.open_batches() == 3);
    CHECK(t.settle(a) == 260);  // a settles the prefix a, b, c at once
    CHECK(t.open_batches() == 0);
}

TEST_CASE("offsets: in-order acks store each batch's end") {
    OffsetTracker t;
    auto a = t.open(10);
    auto b = t.open(20);
    CHECK(t.settle(a) == 10);
    auto c = t.open(30);
    CHECK(t.settle(b) == 20);
    CHECK(t.settle(c) == 30);
}

TEST_CASE("offsets: a gap in the middle holds back what follows it") {
    OffsetTracker t;
    auto a = t.open(10), b = t.open(20), c = t.open(30), d = t.open(40);
    CHECK(t.settle(a) == 10);
    CHECK(t.settle(c) == -1);
    CHECK(t.settle(d) == -1);
    CHECK(t.settle(b) == 40);
}

TEST_CASE("offsets: a settled or pre-revoke ticket stores nothing") {
    OffsetTracker t;
    auto a = t.open(10);
    CHECK(t.settle(a) == 10);
    CHECK(t.settle(a) == -1);  // settled twice
    auto b = t.open(20);
    t.reset();  // the partition was revoked; the new owner re-reads from the commit
    CHECK(t.settle(b) == -1);
    CHECK(t.open_batches() == 0);
    auto c = t.open(35);  // assigned again later
    CHECK(t.settle(c) == 35);
}
