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

TEST_CASE("a failure is final only when every failed hold marked it final") {
    struct Outcome {
        int calls = 0;
        AckStatus status = AckStatus::delivered;
        bool final = false;
    };
    auto run = [](bool first_final, bool second_final) {
        Outcome o;
        {
            AckRef root = make_outcome_ack([&](const AckOutcome& r) { ++o.calls, o.status = r.status, o.final = r.final; });
            BatchPtr a = test::batch({"{}"});
            a->acks.push_back(root.clone());
            BatchPtr b = a->clone();
            if (first_final) a->mark_failed_for_good("HTTP 400");
            else a->mark(AckStatus::failed, "timed out");
            if (second_final) b->mark_failed_for_good("HTTP 413");
            else b->mark(AckStatus::delivered);
        }
        return o;
    };
    Outcome both = run(true, true);
    CHECK(both.calls == 1);
    CHECK(both.status == AckStatus::failed);
    CHECK(both.final);
    CHECK(run(true, false).final);            // the other copy was delivered
    CHECK_FALSE(run(false, true).final);      // a retryable failure beside a final one: retry
    CHECK_FALSE(run(false, false).final);
    Outcome unsettled;
    {
        AckRef root = make_outcome_ack([&](const AckOutcome& r) { ++unsettled.calls, unsettled.status = r.status, unsettled.final = r.final; });
        BatchPtr a = test::batch({"{}"});
        a->acks.push_back(root.clone());
        BatchPtr b = a->clone();
        a->mark_failed_for_good("HTTP 400");
    }  // b let go of without a mark: retryable
    CHECK(unsettled.status == AckStatus::failed);
    CHECK_FALSE(unsettled.final);
}

TEST_CASE("an accepted-level hold settles when a queue takes the batch; a delivered-level one travels on") {
    Seen accepted, delivered;
    BatchQueue q(100, 1 << 20);
    {
        AckRef a = make_ack(accepted.cb(), AckLevel::accepted);
        AckRef d = make_ack(delivered.cb());
        BatchPtr b = test::batch({"{}", "{}"});
        b->acks.push_back(a.clone());
        b->acks.push_back(d.clone());
        std::atomic<bool> no_abort{false};
        REQUIRE(q.push(b, no_abort));
    }
    CHECK(accepted.calls == 1);
    CHECK(accepted.status == AckStatus::delivered);
    CHECK(delivered.calls == 0);
    BatchPtr out[1];
    REQUIRE(q.pop(out, 1, std::chrono::milliseconds(10)) == 1);
    CHECK(out[0]->acks.size() == 1);
    out[0]->mark(AckStatus::delivered);
    out[0].reset();
    CHECK(delivered.calls == 1);
    CHECK(delivered.status == AckStatus::delivered);
}
