#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "buffer/crc32c.h"
#include "buffer/disk_buffer.h"
#include "buffer/record.h"
#include "helpers.h"
#include "log.h"

using namespace hbf;
using namespace hbf::buffer;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using test::TempDir;

DiskBufferOptions opts(const std::string& dir) {
    DiskBufferOptions o;
    o.dir = dir;
    o.max_bytes = 64u << 20;
    o.retry_after = 20ms;
    return o;
}

std::unique_ptr<DiskBuffer> open_buffer(const DiskBufferOptions& o, const std::string& stage) {
    return std::make_unique<DiskBuffer>(o, make_logger("buffer-test"), BufferMetrics(stage, "test"));
}

BatchPtr numbered(int from, int n) {
    BatchPtr b = Batch::make();
    for (int i = from; i < from + n; ++i) b->append("{\"seq\":" + std::to_string(i) + "}");
    return b;
}

// Pops until `want` batches came or two seconds passed.
std::vector<BatchPtr> pop_n(DiskBuffer& buf, size_t want) {
    std::vector<BatchPtr> got;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    BatchPtr out[32];
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
        size_t n = buf.pop(out, std::min<size_t>(32, want - got.size()), 50ms);
        for (size_t i = 0; i < n; ++i) got.push_back(std::move(out[i]));
    }
    return got;
}

std::vector<std::string> segments(const std::string& dir) {
    std::vector<std::string> s;
    for (auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".seg") s.push_back(e.path().string());
    std::sort(s.begin(), s.end());
    return s;
}

uint64_t metric(const std::string& name, const std::string& stage) {
    return MetricsRegistry::global().sum(name, "stage", stage);
}

bool wait_for(const std::function<bool()>& f) {
    for (int i = 0; i < 400 && !f(); ++i) std::this_thread::sleep_for(5ms);
    return f();
}

std::atomic<bool> kNoAbort{false};

}  // namespace

TEST_CASE("crc32c gives the standard check value and chains") {
    CHECK(crc32c("123456789", 9) == 0xE3069283u);
    CHECK(crc32c("", 0) == 0u);
    CHECK(crc32c("6789", 4, crc32c("12345", 5)) == 0xE3069283u);
}

TEST_CASE("a disk buffer hands back what was pushed, in padded batches, and settles acks upstream once written") {
    TempDir d;
    auto buf = open_buffer(opts(d.path), "db-roundtrip");
    std::atomic<int> upstream{0};  // the writer thread settles it
    std::atomic<AckStatus> st{AckStatus::failed};
    BatchPtr b = numbered(1, 3);
    b->received_ns = 12345;
    {
        AckRef root = make_ack([&](AckStatus s, const std::string&) { ++upstream; st = s; });
        b->acks.push_back(root.clone());
    }
    REQUIRE(buf->push(b, kNoAbort));
    CHECK_FALSE(b);
    REQUIRE(wait_for([&] { return upstream == 1; }));
    CHECK(st.load() == AckStatus::delivered);
    CHECK(metric("hbf_buffer_syncs_total", "db-roundtrip") >= 1);  // sync = batch

    auto got = pop_n(*buf, 1);
    REQUIRE(got.size() == 1);
    CHECK(test::texts(*got[0]) == std::vector<std::string>{"{\"seq\":1}", "{\"seq\":2}", "{\"seq\":3}"});
    CHECK(got[0]->dense());
    CHECK(got[0]->received_ns == 12345);
    CHECK(got[0]->capacity_after(2) >= got[0]->event(2).size() + Batch::kPadding);
    CHECK(buf->events() == 3);
    got.clear();  // the output settles it
    CHECK(buf->events() == 0);
    CHECK(metric("hbf_buffer_read_events_total", "db-roundtrip") == 3);
}

TEST_CASE("a disk buffer compacts a batch whose events do not cover its buffer") {
    TempDir d;
    auto buf = open_buffer(opts(d.path), "db-compact");
    BatchPtr b = numbered(1, 3);
    b->events.erase(b->events.begin() + 1);
    REQUIRE_FALSE(b->dense());
    REQUIRE(buf->push(b, kNoAbort));
    auto got = pop_n(*buf, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0]->buf == "{\"seq\":1}\n{\"seq\":3}\n");
    CHECK(got[0]->dense());
}

TEST_CASE("a disk buffer rotates segments and deletes each once all its records are settled") {
    TempDir d;
    auto o = opts(d.path);
    o.segment_bytes = 4096;
    o.sync = SyncMode::none;
    auto buf = open_buffer(o, "db-rotate");
    std::string big(900, 'x');
    for (int i = 0; i < 20; ++i) {
        BatchPtr b = Batch::make();
        b->append("{\"i\":" + std::to_string(i) + ",\"pad\":\"" + big + "\"}");
        REQUIRE(buf->push(b, kNoAbort));
    }
    REQUIRE(wait_for([&] { return buf->events() == 20; }));
    const size_t written = segments(d.path).size();
    CHECK(written >= 4);
    auto got = pop_n(*buf, 20);
    REQUIRE(got.size() == 20);
    for (int i = 0; i < 20; ++i) CHECK(got[size_t(i)]->event(0).starts_with("{\"i\":" + std::to_string(i) + ","));
    // Settling the last record first moves nothing: the first ones are still out.
    got.back().reset();
    CHECK(segments(d.path).size() == written);
    for (size_t i = 0; i + 1 < got.size(); ++i) got[i].reset();
    CHECK(segments(d.path).size() == 1);  // only the one being written stays
    CHECK(buf->events() == 0);
    CHECK(buf->bytes() < 4096 + 1000);
}

TEST_CASE("a disk buffer keeps unsettled records across a reopen and counts them as replayed") {
    TempDir d;
    auto o = opts(d.path);
    {
        auto buf = open_buffer(o, "db-reopen-1");
        for (int i = 0; i < 5; ++i) {
            BatchPtr b = numbered(i * 2, 2);
            REQUIRE(buf->push(b, kNoAbort));
        }
        auto got = pop_n(*buf, 4);  // the fifth is never handed out
        REQUIRE(got.size() == 4);
        got[0].reset();
        got[1].reset();
        got[3].reset();  // settled, but after the unsettled third: it stays until the position passes it
        CHECK(buf->close() == 4);
    }
    auto buf = open_buffer(o, "db-reopen-2");
    CHECK(buf->events() == 6);
    auto got = pop_n(*buf, 3);
    REQUIRE(got.size() == 3);
    CHECK(got[0]->event(0) == "{\"seq\":4}");
    CHECK(got[1]->event(0) == "{\"seq\":6}");
    CHECK(got[2]->event(0) == "{\"seq\":8}");
    CHECK(metric("hbf_buffer_replayed_events_total", "db-reopen-2") == 4);  // the third and fourth were out before
    got.clear();
    CHECK(buf->events() == 0);
}

TEST_CASE("a record cut short at the end of the newest segment is truncated at open, silently") {
    TempDir d;
    auto o = opts(d.path);
    std::string seg;
    uint64_t whole = 0;
    {
        auto buf = open_buffer(o, "db-torn-1");
        for (int i = 0; i < 3; ++i) {
            BatchPtr b = numbered(i, 1);
            REQUIRE(buf->push(b, kNoAbort));
        }
        REQUIRE(wait_for([&] { return buf->events() == 3; }));
        buf->close();
        seg = segments(d.path).back();
        whole = fs::file_size(seg);
    }
    {  // a crash in the middle of writing a fourth record
        BatchPtr b = numbered(3, 1);
        std::string rec;
        append_record(rec, *b, 4);
        std::ofstream f(seg, std::ios::app | std::ios::binary);
        f.write(rec.data(), std::streamsize(rec.size() - 5));
    }
    auto buf = open_buffer(o, "db-torn-2");
    CHECK(fs::file_size(seg) == whole);
    CHECK(metric("hbf_buffer_corrupted_records_total", "db-torn-2") == 0);
    auto got = pop_n(*buf, 3);
    REQUIRE(got.size() == 3);
    BatchPtr none[1];
    CHECK(buf->pop(none, 1, 50ms) == 0);
    CHECK(got[2]->event(0) == "{\"seq\":2}");
    // New records follow on: numbering carries on after the survivors.
    BatchPtr b = numbered(10, 1);
    REQUIRE(buf->push(b, kNoAbort));
    auto more = pop_n(*buf, 1);
    REQUIRE(more.size() == 1);
    CHECK(more[0]->event(0) == "{\"seq\":10}");
}

TEST_CASE("a damaged record in the middle is skipped, counted, and the rest is read") {
    TempDir d;
    auto o = opts(d.path);
    std::string seg;
    {
        auto buf = open_buffer(o, "db-flip-1");
        for (int i = 0; i < 3; ++i) {
            BatchPtr b = numbered(i * 10, 5);
            REQUIRE(buf->push(b, kNoAbort));
            REQUIRE(wait_for([&] { return buf->events() == uint64_t(i + 1) * 5; }));  // one record each
        }
        buf->close();
        seg = segments(d.path).back();
    }
    {  // flip bytes in the second record's text
        BatchPtr probe = numbered(0, 5);
        size_t one = record_bytes(*probe);
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(std::streamoff(one + kHeaderBytes + 5 * 8 + 3));
        f.write("\xff\xfe", 2);
    }
    auto buf = open_buffer(o, "db-flip-2");
    CHECK(metric("hbf_buffer_corrupted_records_total", "db-flip-2") == 1);
    CHECK(buf->events() == 10);
    auto got = pop_n(*buf, 2);
    REQUIRE(got.size() == 2);
    BatchPtr none[1];
    CHECK(buf->pop(none, 1, 50ms) == 0);
    CHECK(got[0]->event(0) == "{\"seq\":0}");
    CHECK(got[1]->event(0) == "{\"seq\":20}");
    CHECK(metric("hbf_buffer_corrupted_records_total", "db-flip-2") == 1);  // not counted again when read
    got.clear();
    CHECK(buf->events() == 0);
}

TEST_CASE("a damaged length field does not hide the records after it") {
    TempDir d;
    auto o = opts(d.path);
    std::string seg;
    {
        auto buf = open_buffer(o, "db-len-1");
        for (int i = 0; i < 3; ++i) {
            BatchPtr b = numbered(i, 1);
            REQUIRE(buf->push(b, kNoAbort));
            REQUIRE(wait_for([&] { return buf->events() == uint64_t(i + 1); }));
        }
        buf->close();
        seg = segments(d.path).back();
    }
    {
        BatchPtr probe = numbered(0, 1);
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8);  // the first record's length
        uint32_t huge = 1u << 29;
        f.write(reinterpret_cast<const char*>(&huge), 4);
    }
    auto buf = open_buffer(o, "db-len-2");
    auto got = pop_n(*buf, 2);
    REQUIRE(got.size() == 2);
    BatchPtr none[1];
    CHECK(buf->pop(none, 1, 50ms) == 0);
    CHECK(got[0]->event(0) == "{\"seq\":1}");
    CHECK(metric("hbf_buffer_corrupted_records_total", "db-len-2") == 1);
}

TEST_CASE("a failed write holds the batch back, reports the error and is backpressure, then succeeds") {
    TempDir d;
    auto o = opts(d.path);
    std::atomic<int> fail_with{ENOSPC};
    o.inject_write_error = [&] { return fail_with.load(); };
    auto buf = open_buffer(o, "db-enospc");
    std::atomic<int> upstream{0};
    BatchPtr b = numbered(1, 2);
    {
        AckRef root = make_ack([&](AckStatus, const std::string&) { ++upstream; });
        b->acks.push_back(root.clone());
    }
    REQUIRE(buf->push(b, kNoAbort));
    REQUIRE(wait_for([&] { return !buf->error().empty(); }));
    CHECK(buf->error().find("No space left on device") != std::string::npos);
    CHECK(buf->error().find(d.path) != std::string::npos);
    CHECK(buf->full());
    BatchPtr c = numbered(3, 1);
    CHECK_FALSE(buf->try_push(c));
    CHECK(c);
    CHECK(upstream.load() == 0);  // not acknowledged: it is not on disk
    CHECK(metric("hbf_buffer_write_errors_total", "db-enospc") >= 1);
    BatchPtr none[1];
    CHECK(buf->pop(none, 1, 10ms) == 0);

    fail_with = 0;  // space again
    REQUIRE(wait_for([&] { return upstream == 1; }));
    CHECK(buf->error().empty());
    CHECK_FALSE(buf->full());
    auto got = pop_n(*buf, 1);
    REQUIRE(got.size() == 1);
    CHECK(test::texts(*got[0]) == std::vector<std::string>{"{\"seq\":1}", "{\"seq\":2}"});
}

TEST_CASE("a batch that cannot be written by close is reported failed upstream") {
    TempDir d;
    auto o = opts(d.path);
    o.inject_write_error = [] { return EIO; };
    auto buf = open_buffer(o, "db-close-fail");
    std::atomic<AckStatus> st{AckStatus::delivered};
    BatchPtr b = numbered(1, 1);
    {
        AckRef root = make_ack([&](AckStatus s, const std::string&) { st = s; });
        b->acks.push_back(root.clone());
    }
    REQUIRE(buf->push(b, kNoAbort));
    REQUIRE(wait_for([&] { return !buf->error().empty(); }));
    buf->close();
    CHECK(st.load() == AckStatus::failed);
}

TEST_CASE("a full disk buffer drops new batches with when_full = drop_newest, counting every event") {
    TempDir d;
    auto o = opts(d.path);
    o.max_bytes = 200u << 10;
    o.segment_bytes = 64u << 10;
    o.when_full = WhenFull::drop_newest;
    auto buf = open_buffer(o, "db-drop");
    std::string pad(1000, 'y');
    std::atomic<uint64_t> dropped_acks{0};
    uint64_t pushed = 0;
    for (int i = 0; i < 400; ++i) {
        BatchPtr b = Batch::make();
        for (int k = 0; k < 3; ++k) b->append("{\"pad\":\"" + pad + "\"}");
        AckRef root = make_ack([&](AckStatus s, const std::string&) { if (s == AckStatus::dropped) dropped_acks += 3; });
        b->acks.push_back(root.clone());
        root.reset();
        CHECK_FALSE(buf->full());  // the webhook keeps answering 200
        REQUIRE(buf->try_push(b));
        pushed += 3;
        wait_for([&] { return buf->events() + dropped_acks == pushed; });
    }
    const uint64_t dropped = metric("hbf_buffer_dropped_events_total", "db-drop");
    CHECK(dropped > 0);
    CHECK(dropped == dropped_acks.load());
    CHECK(buf->events() + dropped == 1200);
    CHECK(buf->bytes() <= o.max_bytes);
}

TEST_CASE("a full disk buffer blocks producers with when_full = block until records settle") {
    TempDir d;
    auto o = opts(d.path);
    o.max_bytes = 64u << 10;
    o.segment_bytes = 16u << 10;
    o.sync = SyncMode::none;
    auto buf = open_buffer(o, "db-block");
    std::string pad(2000, 'z');
    auto make = [&] {
        BatchPtr b = Batch::make();
        b->append("{\"pad\":\"" + pad + "\"}");
        return b;
    };
    int taken = 0;
    for (; taken < 100; ++taken) {
        BatchPtr b = make();
        if (!buf->try_push(b)) break;
        wait_for([&] { return buf->events() == uint64_t(taken + 1); });
    }
    CHECK(taken < 40);
    BatchPtr refused = make();
    CHECK_FALSE(buf->try_push(refused));
    std::atomic<bool> done{false};
    std::thread producer([&] {
        BatchPtr b = make();
        buf->push(b, kNoAbort);
        done = true;
    });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(done);
    auto got = pop_n(*buf, size_t(taken));
    got.clear();  // settled: the sealed segments go, and with them the pressure
    producer.join();
    CHECK(done);
}

TEST_CASE("a record the output fails is handed out again; other outcomes remove it") {
    TempDir d;
    auto buf = open_buffer(opts(d.path), "db-retry");
    BatchPtr b = numbered(7, 1);
    REQUIRE(buf->push(b, kNoAbort));
    auto got = pop_n(*buf, 1);
    REQUIRE(got.size() == 1);
    got[0]->mark(AckStatus::failed, "broker timed out");
    got.clear();
    CHECK(buf->events() == 1);
    auto again = pop_n(*buf, 1);
    REQUIRE(again.size() == 1);
    CHECK(again[0]->event(0) == "{\"seq\":7}");
    again[0]->mark(AckStatus::dropped, "filtered");
    again.clear();
    CHECK(buf->events() == 0);
}

TEST_CASE("a second process cannot open a buffer directory in use") {
    TempDir d;
    auto buf = open_buffer(opts(d.path), "db-lock");
    try {
        open_buffer(opts(d.path), "db-lock-2");
        FAIL("the second open succeeded");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(d.path + "/lock is locked") != std::string::npos);
    }
}

TEST_CASE("a buffer directory that cannot be created fails with its path") {
    TempDir d;
    std::ofstream(d.path + "/file") << "x";
    try {
        open_buffer(opts(d.path + "/file/buffer/out"), "db-baddir");
        FAIL("opened a directory under a file");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(d.path + "/file/buffer/out") != std::string::npos);
        CHECK(std::string(e.what()).find("cannot create the directory") != std::string::npos);
    }
}

TEST_CASE("sync parses batch, none and a duration") {
    SyncMode m;
    std::chrono::nanoseconds iv{};
    CHECK(parse_sync("batch", m, iv));
    CHECK(m == SyncMode::batch);
    CHECK(parse_sync("none", m, iv));
    CHECK(m == SyncMode::none);
    CHECK(parse_sync("250ms", m, iv));
    CHECK(m == SyncMode::interval);
    CHECK(iv == 250ms);
    CHECK_FALSE(parse_sync("always", m, iv));
    CHECK_FALSE(parse_sync("0s", m, iv));
}

TEST_CASE("a record the output fails for good is removed and counted, not handed out again") {
    TempDir d;
    auto buf = open_buffer(opts(d.path), "db-final");
    BatchPtr b = numbered(1, 3);
    REQUIRE(buf->push(b, kNoAbort));
    auto got = pop_n(*buf, 1);
    REQUIRE(got.size() == 1);
    got[0]->mark_failed_for_good("POST http://x answered 400");
    got.clear();
    CHECK(buf->events() == 0);
    CHECK(metric("hbf_buffer_failed_events_total", "db-final") == 3);
    BatchPtr none[1];
    CHECK(buf->pop(none, 1, 100ms) == 0);  // retry_after is 20 ms: a retry would have come
    CHECK(segments(d.path).size() <= 1);
}

TEST_CASE("with sync = batch push returns before the write; the acks settle after the sync covering the batch") {
    TempDir d;
    auto o = opts(d.path);
    std::mutex gate;
    std::unique_lock held(gate);  // the writer waits here, before its write
    std::atomic<int> writes{0};
    o.inject_write_error = [&] {
        std::lock_guard lk(gate);
        ++writes;
        return 0;
    };
    auto buf = open_buffer(o, "db-group");
    std::atomic<int> settled{0};
    std::vector<AckRef> roots;
    for (int i = 0; i < 5; ++i) {
        BatchPtr b = numbered(i * 10, 2);
        AckRef root = make_ack([&](AckStatus s, const std::string&) { if (s == AckStatus::delivered) ++settled; });
        b->acks.push_back(root.clone());
        root.reset();
        REQUIRE(buf->push(b, kNoAbort));  // does not wait for the blocked writer
    }
    std::this_thread::sleep_for(50ms);
    CHECK(settled == 0);  // nothing acknowledged before it is on disk
    const uint64_t syncs_before = metric("hbf_buffer_syncs_total", "db-group");
    held.unlock();
    REQUIRE(wait_for([&] { return settled == 5; }));
    // The first batch woke the writer; the four pushed while it waited went in one more group.
    CHECK(writes <= 2);
    CHECK(metric("hbf_buffer_syncs_total", "db-group") - syncs_before <= 2);
    CHECK(pop_n(*buf, 5).size() == 5);
}
