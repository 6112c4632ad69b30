// Ack holds: nothing is taken for delivered unless a stage said so.
#include "helpers.h"

using namespace hbf;

namespace {
struct Seen {
    int calls = 0;
    AckStatus status = AckStatus::delivered;
    std::string why;
    AckState::Callback cb() {
        return [this](AckStatus s, const std::string& r) { ++calls, status = s, why = r; };
    }
};
}  // namespace

TEST_CASE("a hold released without a mark reports failed, never delivered") {
    Seen seen;
    {
        AckRef root = make_ack(seen.cb());
        BatchPtr b = test::batch({"{}"});
        b->acks.push_back(root.clone());
    }  // the batch dies unsettled, as when an exception unwinds through a stage
    CHECK(seen.calls == 1);
    CHECK(seen.status == AckStatus::failed);
    CHECK(seen.why == kNotSettled);
}

TEST_CASE("a hold marked delivered reports delivered; the creator's own hold is neutral") {
    Seen seen;
    {
        AckRef root = make_ack(seen.cb());
        BatchPtr b = test::batch({"{}"});
        b->acks.push_back(root.clone());
        root.reset();
        CHECK(seen.calls == 0);
        b->mark(AckStatus::delivered);
    }
    CHECK(seen.calls == 1);
    CHECK(seen.status == AckStatus::delivered);
}

TEST_CASE("a stage's own failure reason beats the 'not settled' of a hold unwound beside it") {
    Seen seen;
    AckRef root = make_ack(seen.cb());
    BatchPtr b = test::batch({"{}"});
    b->acks.push_back(root.clone());
    AckRef guard = b->acks[0].clone();
    root.reset();
    b.reset();  // unwound first: "not settled"
    std::string why = "filter 'f' failed: boom";
    guard.mark(AckStatus::failed, &why);
    guard.reset();
    CHECK(seen.status == AckStatus::failed);
    CHECK(seen.why == "filter 'f' failed: boom");
}

TEST_CASE("the reason reported is the one of the worst status") {
    Seen seen;
    AckRef root = make_ack(seen.cb());
    BatchPtr a = test::batch({"{}"});
    a->acks.push_back(root.clone());
    root.reset();
    BatchPtr c = a->clone();
    a->mark(AckStatus::dropped, "filtered out");
    a.reset();
    c->mark(AckStatus::failed, "broker said no");
    c.reset();
    CHECK(seen.status == AckStatus::failed);
    CHECK(seen.why == "broker said no");
}

TEST_CASE("a reopened hold must be settled again by the next stage") {
    Seen seen;
    {
        AckRef root = make_ack(seen.cb());
        BatchPtr b = test::batch({"{}", "{}"});
        b->acks.push_back(root.clone());
        b->mark(AckStatus::dropped, "one event filtered out");  // a filter's note, then the batch goes on
        for (auto& a : b->acks) a.reopen();
        CHECK_FALSE(b->acks[0].settled());
    }  // the next stage let it go without a word
    CHECK(seen.status == AckStatus::failed);
}
