// output "file": appends NDJSON to a file whose path may hold strftime patterns (daily files).
//
// A batch's acks settle once its bytes are written to the file (in the kernel's page cache);
// the file is fsync'ed every fsync_interval, when the path rolls over, and on close.
// fsync_interval = 0 fsyncs before every batch is released.
//
// A write that fails (a full disk, a directory that cannot be made, a permission) is retried,
// as backpressure, until it succeeds: the output's queue fills and the inputs slow down, and
// /health answers "degraded" with the reason meanwhile. A failed attempt is cut back off the
// file (ftruncate to the size before it), so a retried batch is never written twice, in part or
// whole. Only the shutdown timeout (or a reload that removed the stage) ends the retries; the
// batch then reports failed.
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "fileio.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using Clock = std::chrono::steady_clock;

struct FileOutOptions {
    std::string path;
    Duration fsync_interval = std::chrono::seconds(1);
    std::string mode = "0644";
};

const OptionSchema<FileOutOptions> kFileSchema{
    {"path", &FileOutOptions::path, "File to append NDJSON to; strftime patterns (UTC) roll it, e.g. \"out-%Y-%m-%d.ndjson\".", required{}},
    {"fsync_interval", &FileOutOptions::fsync_interval, "How often written data is fsync'ed; 0 = before each batch is acknowledged."},
    {"mode", &FileOutOptions::mode, "Permissions of a new file (octal)."},
};

class FileOut final : public Output {
public:
    FileOut(const FileOutOptions& o, const StageConfig& c) : path_tmpl_(o.path) {
        if (path_tmpl_.empty()) c.problem("path", "path must not be empty");
        templated_ = path_tmpl_.find('%') != std::string::npos;
        fsync_every_ = o.fsync_interval;
        size_t used = 0;
        try {
            mode_ = int(std::stol(o.mode, &used, 8));
        } catch (const std::exception&) {
        }
        if (used == 0 || used != o.mode.size() || mode_ < 0 || mode_ > 07777)
            c.problem("mode", "mode must be octal permissions such as \"0644\", not \"" + o.mode + "\"");
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        open_for(now_path());  // fail at start, not on the first event
        if (fd_ < 0) throw std::runtime_error("cannot open " + cur_path_ + ": " + std::strerror(open_errno_));
    }

    void write(BatchPtr b) override {
        std::string why;
        Clock::time_point since{};
        auto backoff = std::chrono::milliseconds(50);
        for (;;) {
            int err = attempt(*b, why);
            if (!err) break;
            auto now = Clock::now();
            if (since == Clock::time_point{}) since = now;
            ctx_->metrics().errors.add();
            log_limited(rl_, ctx_->log(), spdlog::level::err, "{}; retrying until it succeeds", why);
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - since).count();
            ctx_->set_degraded(fmt::format("{} (retrying for {}s)", why, secs));
            if (ctx_->abort_flag().load()) {
                std::string failure = why + "; gave up at the shutdown timeout";
                ctx_->log().error("{}: {} events reported failed", failure, b->size());
                b->mark(AckStatus::failed, failure);
                ctx_->set_failed(failure);
                return;
            }
            for (auto until = now + backoff; Clock::now() < until && !ctx_->abort_flag().load();)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
        }
        if (since != Clock::time_point{}) {
            auto secs = std::chrono::duration<double>(Clock::now() - since).count();
            ctx_->log().info("writing to {} again after {:.1f}s of failures", cur_path_, secs);
            ctx_->clear_degraded();
        }
        dirty_ = true;
        ctx_->metrics().events_out.add(b->size());
        ctx_->metrics().bytes_out.add(b->bytes());
        b->mark(AckStatus::delivered);
    }

    void tick() override {
        if (dirty_ && fd_ >= 0 && Clock::now() >= next_sync_) sync();
    }
    void flush(Clock::time_point) override { sync(); }
    void stop() override {
        sync();
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    // One try at writing the whole batch; 0, or errno with `why` set. What a failed try wrote is
    // cut off again.
    int attempt(const Batch& b, std::string& why) {
        std::string p = now_path();
        if (fd_ < 0 || p != cur_path_) open_for(p);
        if (fd_ < 0) {
            why = "cannot open " + cur_path_ + ": " + std::strerror(open_errno_);
            return open_errno_;
        }
        struct stat st{};
        if (::fstat(fd_, &st) != 0) return fail_io(errno, why);
        int err = write_batch(fd_, b);
        if (!err && fsync_every_.count() == 0) err = ::fsync(fd_) == 0 ? 0 : errno;
        if (!err) return 0;
        if (::ftruncate(fd_, st.st_size) != 0) {
            // Cannot cut it off: reopen, and open_for() ends the partial line before appending.
            ::close(fd_);
            fd_ = -1;
        }
        return fail_io(err, why);
    }

    int fail_io(int err, std::string& why) {
        why = "write to " + cur_path_ + " failed: " + std::strerror(err);
        return err;
    }

    std::string now_path() const {
        if (!templated_) return path_tmpl_;
        std::time_t t = std::time(nullptr);
        std::tm tm;
        gmtime_r(&t, &tm);
        char buf[4096];
        size_t n = std::strftime(buf, sizeof buf, path_tmpl_.c_str(), &tm);
        return n ? std::string(buf, n) : path_tmpl_;
    }

    void open_for(const std::string& p) {
        if (fd_ >= 0) {
            sync();
            ::close(fd_);
        }
        cur_path_ = p;
        std::error_code ec;
        auto parent = std::filesystem::path(p).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ec);
        fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, mode_);
        open_errno_ = fd_ < 0 ? errno : 0;
        if (fd_ >= 0) end_last_line();
    }

    // A file whose last line has no newline (a crash, a write that could not be cut back) gets
    // one first, so the next event starts a line of its own.
    void end_last_line() {
        struct stat st{};
        char last = '\n';
        if (::fstat(fd_, &st) != 0 || st.st_size == 0 || ::pread(fd_, &last, 1, st.st_size - 1) != 1 || last == '\n') return;
        if (int err = write_all(fd_, "\n", 1)) {
            ::close(fd_);
            fd_ = -1;
            open_errno_ = err;
        }
    }

    void sync() {
        if (fd_ >= 0 && dirty_ && ::fsync(fd_) != 0) {
            ctx_->metrics().errors.add();
            log_limited(sync_rl_, ctx_->log(), spdlog::level::err, "fsync of {} failed: {}", cur_path_, std::strerror(errno));
        }
        dirty_ = false;
        next_sync_ = Clock::now() + fsync_every_;
    }

    std::string path_tmpl_, cur_path_;
    bool templated_ = false;
    std::chrono::nanoseconds fsync_every_;
    int mode_ = 0644;
    int fd_ = -1, open_errno_ = 0;
    bool dirty_ = false;
    Clock::time_point next_sync_{};
    StageContext* ctx_ = nullptr;
    RateLimit rl_, sync_rl_;
};

HBF_REGISTER_OUTPUT("file", FileOut, kFileSchema, "Appends events as NDJSON to a file (daily files with strftime patterns); retries a failed write until it succeeds.");

}  // namespace
}  // namespace hbf::stages
