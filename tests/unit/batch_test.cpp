#include <atomic>
#include <thread>

#include "helpers.h"

using namespace hbf;

TEST_CASE("a batch keeps events as NDJSON text with padding for simdjson") {
    BatchPtr b = test::batch({"{\"a\":1}", "{\"b\":2}"});
    CHECK(b->size() == 2);
    CHECK(b->buf == "{\"a\":1}\n{\"b\":2}\n");
    CHECK(b->event(1) == "{\"b\":2}");
    CHECK(b->dense());
    CHECK(b->capacity_after(1) >= b->event(1).size() + Batch::kPadding);
    b->events.erase(b->events.begin());
    CHECK_FALSE(b->dense());
}

TEST_CASE("a batch's compact_json mark goes with its clones and not back to the pool") {
    BatchPtr b = test::batch({"{\"a\":1}"});
    CHECK_FALSE(b->compact_json);
    b->compact_json = true;
    CHECK(b->clone()->compact_json);
    b->clear();
    CHECK_FALSE(b->compact_json);
}

TEST_CASE("a thread takes back the batches it released last, newest first, and others reach the pool") {
    // Drain what this thread already holds, so that the next batches made are new.
    std::vector<BatchPtr> drain;
    for (int i = 0; i < 8; ++i) drain.push_back(Batch::make());
    BatchPtr a = Batch::make(), b = Batch::make();
    Batch* const pa = a.get();
    Batch* const pb = b.get();
    a->buf = "x\n";
    a.reset();
    b.reset();
    BatchPtr first = Batch::make(), second = Batch::make();
    CHECK(first.get() == pb);  // last released, first taken
    CHECK(second.get() == pa);
    CHECK(second->buf.empty());  // cleared on release
    // Released on another thread, a batch is not this thread's to take first; that thread's end
    // hands it to the shared pool, where any thread finds it.
    Batch* const pc = first.get();
    std::thread([&] { first.reset(); }).join();
    bool found = false;
    std::vector<BatchPtr> taken;
    for (int i = 0; i < 600 && !found; ++i) {
        taken.push_back(Batch::make());
        found = taken.back().get() == pc;
    }
    CHECK(found);
}

TEST_CASE("an ack settles once every holder released it, with the worst status") {
    std::vector<AckStatus> seen;
    std::string why;
    AckRef root = make_ack([&](AckStatus s, const std::string& r) { seen.push_back(s); why = r; });
    BatchPtr a = test::batch({"{}"});
    a->acks.push_back(root.clone());
    root.reset();
    BatchPtr c = a->clone();  // fan-out: a second holder
    CHECK(seen.empty());
    a.reset();
    CHECK(seen.empty());
    c->mark(AckStatus::failed, "broker said no");
    c.reset();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == AckStatus::failed);
    CHECK(why == "broker said no");
}

TEST_CASE("an ack with only delivered holders settles as delivered") {
    int calls = 0;
    AckStatus st = AckStatus::failed;
    {
        AckRef root = make_ack([&](AckStatus s, const std::string&) { ++calls; st = s; });
        BatchPtr a = test::batch({"{}"});
        a->acks.push_back(root.clone());
        BatchPtr c = a->clone();
        a->mark(AckStatus::delivered);
        c->mark(AckStatus::delivered);
    }
    CHECK(calls == 1);
    CHECK(st == AckStatus::delivered);
}

TEST_CASE("a full queue refuses a push that may not wait and blocks push until a consumer makes room") {
    BatchQueue q(4, 1 << 20);
    std::atomic<bool> abort{false}, no_wait{true};
    BatchPtr b1 = test::batch({"{}", "{}", "{}", "{}"});
    CHECK(q.push(b1, no_wait));
    BatchPtr b2 = test::batch({"{}"});
    CHECK_FALSE(q.push(b2, no_wait));
    CHECK(b2);  // the refused batch stays with the caller
    std::atomic<bool> pushed{false};
    std::thread producer([&] {
        q.push(b2, abort);
        pushed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(pushed.load());
    BatchPtr out[4];
    CHECK(q.pop(out, 4, std::chrono::milliseconds(100)) == 1);
    producer.join();
    CHECK(pushed.load());
    CHECK(q.events() == 1);
}

TEST_CASE("one batch larger than the budget is admitted into an empty queue") {
    BatchQueue q(2, 1 << 20);
    std::atomic<bool> no_wait{true};
    BatchPtr big = test::batch({"{}", "{}", "{}", "{}", "{}"});
    CHECK(q.push(big, no_wait));
}

TEST_CASE("the queue carries batches between threads without loss") {
    BatchQueue q(64, 1 << 20);
    std::atomic<bool> abort{false};
    constexpr int kBatches = 2000;
    std::thread producer([&] {
        for (int i = 0; i < kBatches; ++i) {
            BatchPtr b = test::batch({"{\"i\":" + std::to_string(i) + "}"});
            q.push(b, abort);
        }
    });
    int got = 0, last = -1;
    bool ordered = true;
    BatchPtr out[32];
    while (got < kBatches) {
        size_t n = q.pop(out, 32, std::chrono::milliseconds(200));
        for (size_t i = 0; i < n; ++i) {
            int v = std::stoi(std::string(out[i]->event(0).substr(5)));
            ordered = ordered && v == last + 1;
            last = v;
            ++got;
        }
        if (n == 0) break;
    }
    producer.join();
    CHECK(got == kBatches);
    CHECK(ordered);
}
