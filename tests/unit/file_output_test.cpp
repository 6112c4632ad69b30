// The file output takes the batches of one pop at once (one stat, one writev): they land in the
// file in order, byte for byte; a write that fails part-way is cut back and retried whole, so
// nothing is written twice; with rotate, the file rotates after the same batch as when the
// batches come one at a time.
#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

#include "../../stages/outputs/file/background_sync.h"
#include "fileio.h"
#include "helpers.h"

using namespace hbf;
using namespace std::chrono_literals;

namespace {

using test::TempDir;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file output built from its table's options through the registry, and started.
class FileOutput {
public:
    explicit FileOutput(const std::string& body) {
        cfg_ = test::config("[inputs.i]\ntype = \"stdin\"\n[outputs.o]\ntype = \"file\"\ninputs = [\"i\"]\n" + body);
        built_ = build_stages(*cfg_);
        INFO(cfg_->report());
        REQUIRE(cfg_->ok());
        for (auto& b : built_)
            if (b.output) out_ = b.output.get();
        REQUIRE(out_);
        ctx_ = std::make_unique<StageContext>("o", "file", "output");
        out_->start(*ctx_);
    }
    ~FileOutput() { out_->stop(); }
    Output& out() { return *out_; }
    StageContext& ctx() { return *ctx_; }

private:
    std::unique_ptr<PipelineConfig> cfg_;
    std::vector<BuiltStage> built_;
    Output* out_ = nullptr;
    std::unique_ptr<StageContext> ctx_;
};

// How the ack of each batch settled, by the batch's number.
struct Acks {
    std::vector<int> status = std::vector<int>(64, -1);
    BatchPtr attach(BatchPtr b, size_t i) {
        AckRef root = make_ack([this, i](AckStatus s, const std::string&) { status[i] = int(s); });
        b->acks.push_back(root.clone());
        return b;
    }
};

std::string event_text(size_t batch, size_t i, size_t pad) {
    return R"({"batch":)" + std::to_string(batch) + R"(,"i":)" + std::to_string(i) + R"(,"pad":")" + std::string(pad, 'x') + "\"}";
}

// A batch of `n` events; with `sparse`, every other event is dropped from its list (as a filter
// that drops events leaves it), so it is not dense and is written event by event.
BatchPtr make_batch(size_t batch, size_t n, bool sparse, size_t pad = 20) {
    BatchPtr b = Batch::make();
    for (size_t i = 0; i < n; ++i) b->append(event_text(batch, i, pad));
    if (sparse) {
        std::vector<EventRef> kept;
        for (size_t i = 0; i < b->events.size(); i += 2) kept.push_back(b->events[i]);
        b->events = kept;
    }
    return b;
}

// What the file must hold for these batches: each event and its newline, in order.
std::string expected(const BatchPtr* bs, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i)
        for (size_t e = 0; e < bs[i]->size(); ++e) out.append(bs[i]->event(e)).push_back('\n');
    return out;
}

}  // namespace

TEST_CASE("the file output writes the batches of one pop in order, byte for byte, and settles each delivered") {
    TempDir dir;
    const std::string path = dir.path + "/out.ndjson";
    FileOutput f("path = \"" + path + "\"\n");
    Acks acks;
    // Dense, sparse with more events than IOV_MAX (several writev rounds), empty, dense.
    BatchPtr bs[4] = {acks.attach(make_batch(0, 5, false), 0), acks.attach(make_batch(1, 2 * IOV_MAX + 301, true), 1),
                      acks.attach(Batch::make(), 2), acks.attach(make_batch(3, 7, false), 3)};
    REQUIRE_FALSE(bs[1]->dense());
    const std::string want = expected(bs, 4);
    size_t events = 0, bytes = 0;
    for (auto& b : bs) events += b->size(), bytes += b->bytes();
    REQUIRE(f.out().writes_many());
    f.out().write_many(bs, 4);
    for (auto& b : bs) b.reset();  // as the runtime does after the call
    CHECK(slurp(path) == want);
    for (size_t i = 0; i < 4; ++i) CHECK(acks.status[i] == int(AckStatus::delivered));
    CHECK(f.ctx().metrics().events_out.get() == events);
    CHECK(f.ctx().metrics().bytes_out.get() == bytes);
    // A second pop appends after the first.
    BatchPtr more[2] = {acks.attach(make_batch(4, 3, true), 4), acks.attach(make_batch(5, 2, false), 5)};
    const std::string want2 = want + expected(more, 2);
    f.out().write_many(more, 2);
    CHECK(slurp(path) == want2);
}

TEST_CASE("write_batches writes more batches than IOV_MAX in order, with a scratch vector it keeps") {
    TempDir dir;
    const std::string path = dir.path + "/many.ndjson";
    std::vector<BatchPtr> bs;
    for (size_t i = 0; i < IOV_MAX + 500; ++i) bs.push_back(make_batch(i, 1 + i % 3, i % 5 == 0));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    std::vector<iovec> iov;
    uint64_t written = 0;
    CHECK(write_batches(fd, bs.data(), bs.size(), iov, written) == 0);
    ::close(fd);
    CHECK(iov.size() <= size_t(IOV_MAX));
    const std::string want = expected(bs.data(), bs.size());
    CHECK(slurp(path) == want);
    CHECK(written == want.size());
}

TEST_CASE("a write of several batches that fails part-way is cut back, retried whole, and lands once") {
    TempDir dir;
    const std::string path = dir.path + "/out.ndjson";
    FileOutput f("path = \"" + path + "\"\n");
    Acks acks;
    BatchPtr first[1] = {acks.attach(make_batch(0, 3, false), 0)};
    f.out().write_many(first, 1);
    first[0].reset();
    const auto before = std::filesystem::file_size(path);
    BatchPtr bs[3] = {acks.attach(make_batch(1, 10, false, 100), 1), acks.attach(make_batch(2, 30, true, 100), 2),
                      acks.attach(make_batch(3, 10, false, 100), 3)};
    const std::string want = slurp(path) + expected(bs, 3);

    // The file may grow by 1000 bytes only: the writev writes part of the batches, then fails
    // with EFBIG (SIGXFSZ ignored), until the limit is lifted.
    rlimit old{};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_sig = std::signal(SIGXFSZ, SIG_IGN);
    rlimit low = old;
    low.rlim_cur = before + 1000;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &low) == 0);
    std::uintmax_t size_while_failing = 0;
    std::string degraded;
    std::thread lift([&] {
        for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(2ms))
            if (!(degraded = f.ctx().degraded()).empty()) break;
        std::this_thread::sleep_for(100ms);  // at least one more failed try
        size_while_failing = std::filesystem::file_size(path);
        setrlimit(RLIMIT_FSIZE, &old);
    });
    f.out().write_many(bs, 3);
    lift.join();
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_sig);
    for (auto& b : bs) b.reset();

    INFO(degraded);
    CHECK(degraded.find("File too large") != std::string::npos);
    CHECK(size_while_failing == before);  // what a failed try wrote was cut off again
    CHECK(slurp(path) == want);           // then everything once, in order
    CHECK(f.ctx().degraded().empty());
    CHECK(f.ctx().metrics().errors.get() >= 2);
    for (size_t i = 0; i < 4; ++i) CHECK(acks.status[i] == int(AckStatus::delivered));
}

TEST_CASE("with rotate, batches written at once rotate the file after the same batch as one at a time") {
    // The same twelve batches through two outputs: one call for all, and one call per batch.
    auto run = [](bool together) {
        TempDir dir;
        const std::string path = dir.path + "/out.ndjson";
        {
            FileOutput f("path = \"" + path + "\"\nrotate = { max_size = \"4KiB\", keep = 100 }\n");
            BatchPtr bs[12];
            for (size_t i = 0; i < 12; ++i) bs[i] = make_batch(i, 10, i % 2 == 1, 80);
            if (together) f.out().write_many(bs, 12);
            else
                for (auto& b : bs) f.out().write_many(&b, 1);
        }
        std::vector<std::string> files;
        for (const auto& e : std::filesystem::directory_iterator(dir.path)) files.push_back(e.path().string());
        std::sort(files.begin(), files.end());  // out.ndjson, then out.ndjson.<time>... oldest first
        std::vector<std::string> contents;
        for (size_t i = 1; i < files.size(); ++i) contents.push_back(slurp(files[i]));
        contents.push_back(slurp(files[0]));
        return contents;
    };
    auto one_at_a_time = run(false);
    auto together = run(true);
    REQUIRE(one_at_a_time.size() >= 3);
    CHECK(together == one_at_a_time);
}

TEST_CASE("the background fsync counts what succeeded and reports a failure to the output's thread") {
    Counter done;
    {
        stages::file::BackgroundSync s("t", done);
        auto dir = std::filesystem::temp_directory_path() / ("hbf-bgsync-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        int fd = ::open((dir / "f").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(write_all(fd, "x\n", 2) == 0);
        CHECK(s.start(fd));
        ::close(fd);  // the fsync goes on through its own duplicate
        for (int i = 0; i < 500 && done.v.load() == 0; ++i) std::this_thread::sleep_for(10ms);
        CHECK(done.v.load() == 1);
        CHECK(s.take_error() == 0);
        // wait() returns once the fsync in progress has finished, with its error.
        fd = ::open((dir / "f").c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
        REQUIRE(fd >= 0);
        REQUIRE(write_all(fd, "y\n", 2) == 0);
        CHECK(s.start(fd));
        ::close(fd);
        CHECK(s.wait() == 0);
        CHECK(done.v.load() == 2);
        CHECK(s.start(-1));
        CHECK(s.wait() == EBADF);
        CHECK(s.wait() == 0);  // nothing in progress: at once
        // A descriptor that is not open cannot be synced: the error comes back once, nothing is counted.
        for (int i = 0; i < 500 && !s.start(-1); ++i) std::this_thread::sleep_for(10ms);
        CHECK(s.take_error() == EBADF);
        CHECK(s.take_error() == 0);
        CHECK(done.v.load() == 2);
        // An error not yet taken comes back from finish(), which ends the thread: no more starts.
        CHECK(s.start(-1));
        CHECK(s.finish() == EBADF);
        CHECK_FALSE(s.start(-1));
        std::filesystem::remove_all(dir);
    }
}
