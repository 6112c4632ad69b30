// output "file": appends NDJSON to a file whose path may hold strftime patterns (daily files).
//
// A batch's acks settle once its bytes are written to the file (in the kernel's page cache);
// the file is fsync'ed every fsync_interval (on a thread of its own, background_sync.h), when the
// path rolls over, and on close. fsync_interval = 0 fsyncs before every batch is released.
//
// A write that fails (a full disk, a directory that cannot be made, a permission) is retried,
// as backpressure, until it succeeds: the output's queue fills and the inputs slow down, and
// /health answers "degraded" with the reason meanwhile. A failed attempt is cut back off the
// file (ftruncate to the size before it), so a retried batch is never written twice, in part or
// whole. Only the shutdown timeout (or a reload that removed the stage) ends the retries; the
// batch then reports failed.
//
// A file renamed or removed underneath it (logrotate's `create` mode) is noticed before the next
// write (one stat per write: the batches of one pop from the queue are one write) or within a
// second when idle, and a new one is opened at the path.
// That stat of the path also gives the size a failed write is cut back to: no fstat per batch.
// With `rotate`, the output rotates the file itself (rotation.h).
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "background_sync.h"
#include "fileio.h"
#include "option_schema.h"
#include "registry.h"
#include "rotation.h"

namespace hbf::stages {
namespace {

using Clock = std::chrono::steady_clock;

struct FileOutOptions {
    std::string path;
    Duration fsync_interval = std::chrono::seconds(1);
    std::string mode = "0644";
    bool create_dirs = false;
    const toml::table* rotate = nullptr;
    std::vector<Resource> resources(const StagePlace&) const { return {{Resource::Kind::file, path}}; }
};

struct RotateOptions {
    Size max_size{0};
    Duration max_age{0};
    int64_t keep = 10;
    std::string compress = "none";
};

const OptionSchema<RotateOptions> kRotateSchema{
    {"max_size", &RotateOptions::max_size, "Rotate when the file reaches this size, e.g. \"100MiB\"; 0 = no limit.", shown{"none"}},
    {"max_age", &RotateOptions::max_age, "Rotate a non-empty file this old, e.g. \"1h\"; 0 = no limit.", shown{"none"}},
    {"keep", &RotateOptions::keep, "Rotated files kept (the active file not counted); older ones are deleted.", at_least{1}},
    {"compress", &RotateOptions::compress, "Compress rotated files in the background.", one_of{"none", "gzip", "zstd"}},
};

const OptionSchema<FileOutOptions> kFileSchema{
    {"path", &FileOutOptions::path, "File to append NDJSON to; strftime patterns (UTC) roll it, e.g. \"out-%Y-%m-%d.ndjson\".", required{}},
    {"fsync_interval", &FileOutOptions::fsync_interval, "How often written data is fsync'ed; 0 = before each batch is acknowledged."},
    {"mode", &FileOutOptions::mode, "Permissions of a new file (octal)."},
    {"create_dirs", &FileOutOptions::create_dirs, "Create missing parent directories; otherwise a missing directory is an error."},
    {"rotate", &FileOutOptions::rotate,
     "Rotate the file itself: { max_size = \"100MiB\", max_age = \"1h\", keep = 10, compress = \"gzip\" | \"zstd\" | \"none\" }."},
};

// The `rotate = { ... }` table, checked like a stage's own table; problems are the stage's.
file::RotatePolicy rotate_policy(const toml::table& t, const StageConfig& c) {
    Location loc = c.where("rotate");
    std::string what = c.name() + ".rotate";
    std::vector<Diagnostic> diags;
    check_table(t, kRotateSchema.specs(), what, loc.file, loc, {}, diags);
    StageConfig sub(what, "rotate", &t, loc.file, loc);
    RotateOptions r = kRotateSchema.parse(sub);
    for (const auto& d : sub.problems()) diags.push_back(d);
    for (const auto& d : diags) c.problem_at(d.where, d.message);
    file::RotatePolicy p;
    p.max_size = r.max_size;
    p.max_age = r.max_age;
    p.keep = size_t(std::max<int64_t>(r.keep, 1));
    p.compress = r.compress;
    if (diags.empty() && !p.enabled()) c.problem("rotate", "rotate needs max_size or max_age, such as { max_size = \"100MiB\" }");
    return p;
}

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
        create_dirs_ = o.create_dirs;
        if (o.rotate) {
            file::RotatePolicy p = rotate_policy(*o.rotate, c);
            if (templated_) c.problem("rotate", "rotate cannot be combined with a strftime pattern in path (the pattern already rolls the file)");
            rotator_ = std::make_unique<file::Rotator>(path_tmpl_, p, [this](const std::string& e) { rotation_error(e); });
        }
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        open_for(now_path());  // fail at start, not on the first event
        if (fd_ < 0)
            throw std::runtime_error("cannot open " + cur_path_ + ": " + std::strerror(open_errno_) +
                                     (open_errno_ == ENOENT && !create_dirs_ ? " (create_dirs = true creates missing directories)" : ""));
        if (rotator_) rotator_->start();
        if (fsync_every_.count() > 0)
            syncer_ = std::make_unique<file::BackgroundSync>(
                ctx.name(), MetricsRegistry::global().counter("hbf_file_out_fsyncs_total",
                                                              "Periodic fsyncs of the file (every fsync_interval, on their own thread) that succeeded.",
                                                              {{"stage", ctx.name()}}));
    }

    bool writes_many() const override { return true; }
    void write(BatchPtr b) override { write_many(&b, 1); }

    // The batches of one pop: one stat of the path and one writev for all of them (issue 15 in
    // bench/README.md: a stat and a write per batch were most of this thread's time). The path
    // for now is computed once for them all: a strftime path that rolls over between two of
    // them rolls at the next write. With rotate, they are cut where the file becomes due, so it
    // rotates after the same batch as when they were written one by one.
    void write_many(BatchPtr* bs, size_t n) override {
        for (size_t i = 0; i < n;) {
            size_t end = rotation_cut(bs, i, n);
            write_together(bs + i, end - i);
            i = end;
        }
    }

    void tick() override {
        auto now = Clock::now();
        if (dirty_ && fd_ >= 0 && now >= next_sync_) sync_in_background(now);
        if (syncer_)
            if (int err = syncer_->take_error()) sync_failed(err);
        if (now >= next_check_) {  // idle: let go of a renamed file, rotate an old one
            next_check_ = now + std::chrono::seconds(1);
            reopen_if_moved();
            maybe_rotate();
        }
    }
    void flush(Clock::time_point) override { sync(); }
    void stop() override {
        sync();
        if (syncer_)  // after the fsync in progress, if any, whose error fd_ would not see again
            if (int err = syncer_->finish()) sync_failed(err);
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (rotator_) rotator_->stop();
    }

private:
    // Writes bs[0..n) with one attempt() each try, retried until it succeeds or the shutdown
    // timeout; each batch is marked delivered only after the write that covers it succeeded.
    void write_together(BatchPtr* bs, size_t n) {
        std::string why;
        Clock::time_point since{};
        auto backoff = std::chrono::milliseconds(50);
        for (;;) {
            int err = attempt(bs, n, why);
            if (!err) break;
            auto now = Clock::now();
            if (since == Clock::time_point{}) since = now;
            ctx_->metrics().errors.add();
            log_limited(rl_, ctx_->log(), spdlog::level::err, "{}; retrying until it succeeds", why);
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - since).count();
            ctx_->set_degraded(fmt::format("{} (retrying for {}s)", why, secs));
            if (ctx_->abort_flag().load()) {
                std::string failure = why + "; gave up at the shutdown timeout";
                size_t events = 0;
                for (size_t i = 0; i < n; ++i) events += bs[i]->size();
                ctx_->log().error("{}: {} events reported failed", failure, events);
                for (size_t i = 0; i < n; ++i) bs[i]->mark(AckStatus::failed, failure);
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
        dirty_ = syncer_ != nullptr;  // without one (fsync_interval = 0), attempt() fsync'ed the write
        size_t events = 0, bytes = 0;
        for (size_t i = 0; i < n; ++i) {
            events += bs[i]->size();
            bytes += bs[i]->bytes();
            bs[i]->mark(AckStatus::delivered);
        }
        ctx_->metrics().events_out.add(events);
        ctx_->metrics().bytes_out.add(bytes);
        maybe_rotate();
    }

    // Where a write of the batches from bs[i] ends: at n, or with rotate, after the batch that
    // makes the file due (counting the bytes each batch writes, as attempt() does).
    size_t rotation_cut(BatchPtr* bs, size_t i, size_t n) const {
        if (!rotator_) return n;
        uint64_t size = size_;
        for (; i < n; ++i) {
            for (const auto& e : bs[i]->events) size += e.len + 1;
            if (rotator_->due(size, born_)) return i + 1;
        }
        return n;
    }

    // One try at writing the batches bs[0..n); 0, or errno with `why` set. What a failed try
    // wrote is cut off again, all of it: a retry never writes a batch twice, in part or whole.
    int attempt(BatchPtr* bs, size_t n, std::string& why) {
        const std::string& p = now_path();
        struct stat st{};
        bool have_size = false;  // st is the open file's, taken just now
        if (fd_ < 0 || p != cur_path_) open_for(p);
        else have_size = !reopen_if_moved(st);
        if (fd_ < 0) {
            why = "cannot open " + cur_path_ + ": " + std::strerror(open_errno_);
            return open_errno_;
        }
        if (!have_size && ::fstat(fd_, &st) != 0) return fail_io(errno, why);
        uint64_t written = 0;
        int err = write_batches(fd_, bs, n, iov_, written);
        if (!err && fsync_every_.count() == 0) err = file::fsync_errno(fd_);
        if (!err) {
            size_ = uint64_t(st.st_size) + written;
            return 0;
        }
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

    // The path for now; valid until the next call (no allocation per batch).
    const std::string& now_path() {
        if (!templated_) return path_tmpl_;
        std::time_t t = std::time(nullptr);
        std::tm tm;
        gmtime_r(&t, &tm);
        char buf[4096];
        size_t n = std::strftime(buf, sizeof buf, path_tmpl_.c_str(), &tm);
        if (n) path_now_.assign(buf, n);
        else path_now_ = path_tmpl_;
        return path_now_;
    }

    void open_for(const std::string& p) {
        if (fd_ >= 0) {
            sync();
            ::close(fd_);
        }
        cur_path_ = p;
        if (create_dirs_) {
            std::error_code ec;
            auto parent = std::filesystem::path(p).parent_path();
            if (!parent.empty()) std::filesystem::create_directories(parent, ec);
        }
        fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, mode_);
        open_errno_ = fd_ < 0 ? errno : 0;
        if (fd_ < 0) return;
        end_last_line();
        struct stat st{};
        if (fd_ >= 0 && ::fstat(fd_, &st) == 0) {
            ino_ = st.st_ino;
            dev_ = st.st_dev;
            size_ = uint64_t(st.st_size);
            born_ = st.st_size == 0 ? std::chrono::system_clock::now() : birth_time(st);
        }
    }

    // A path that no longer names the open file (renamed, removed, replaced) gets a new file.
    // Returns true when it reopened (or the file is not open); false leaves in `st` the path's
    // stat, which is the open file's.
    bool reopen_if_moved(struct stat& st) {
        if (fd_ < 0) return true;
        if (!moved(st)) return false;
        ctx_->log().info("{} was renamed or removed: writing to a new file there", cur_path_);
        open_for(cur_path_);
        return true;
    }
    void reopen_if_moved() {
        struct stat st{};
        reopen_if_moved(st);
    }

    bool moved(struct stat& st) const {
        if (::stat(cur_path_.c_str(), &st) != 0) return true;
        return st.st_ino != ino_ || st.st_dev != dev_;
    }

    // When an existing file began: its birth time where the filesystem keeps one, else its
    // last change (a restart then counts max_age from the last write, never from the restart).
    std::chrono::system_clock::time_point birth_time(const struct stat& st) const {
        struct statx sx{};
        if (::statx(fd_, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
            return std::chrono::system_clock::time_point(std::chrono::seconds(sx.stx_btime.tv_sec));
        return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
    }

    void maybe_rotate() {
        if (!rotator_ || fd_ < 0 || !rotator_->due(size_, born_)) return;
        sync();
        ::close(fd_);
        fd_ = -1;
        if (int err = rotator_->rotate()) {
            ctx_->metrics().errors.add();
            log_limited(rot_rl_, ctx_->log(), spdlog::level::err, "cannot rotate {}: {}; writing on", cur_path_, std::strerror(err));
            born_ = std::chrono::system_clock::now();  // try again after max_age, not on every batch
        } else {
            ctx_->log().info("rotated {}", cur_path_);
        }
        open_for(cur_path_);
    }

    void rotation_error(const std::string& e) {  // from the rotator's thread
        if (!ctx_) return;
        ctx_->metrics().errors.add();
        ctx_->log().error("{}", e);
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

    // Before a roll-over, a rotation or a close: done when it returns. An fsync still running on
    // its own thread is waited for first, so that its failure is reported under this file's path,
    // not the next one's.
    void sync() {
        int err = syncer_ ? syncer_->wait() : 0;
        if (fd_ >= 0 && dirty_)
            if (int e = file::fsync_errno(fd_)) err = e;
        if (err) sync_failed(err);
        dirty_ = false;
        next_sync_ = Clock::now() + fsync_every_;
    }

    // Every fsync_interval: the writes go on meanwhile. When the one before has not finished,
    // the next try is at the next interval, and what was written since stays dirty.
    void sync_in_background(Clock::time_point now) {
        if (syncer_->start(fd_)) dirty_ = false;
        next_sync_ = now + fsync_every_;
    }

    void sync_failed(int err) {
        ctx_->metrics().errors.add();
        log_limited(sync_rl_, ctx_->log(), spdlog::level::err, "fsync of {} failed: {}", cur_path_, std::strerror(err));
    }

    std::string path_tmpl_, cur_path_, path_now_;
    bool templated_ = false;
    std::chrono::nanoseconds fsync_every_;
    int mode_ = 0644;
    int fd_ = -1, open_errno_ = 0;
    bool dirty_ = false;
    Clock::time_point next_sync_{};
    StageContext* ctx_ = nullptr;
    RateLimit rl_, sync_rl_, rot_rl_;
    bool create_dirs_ = false;
    ino_t ino_ = 0;
    dev_t dev_ = 0;
    uint64_t size_ = 0;
    std::chrono::system_clock::time_point born_{};
    Clock::time_point next_check_{};
    std::vector<iovec> iov_;  // write_batches()'s, kept between writes
    std::unique_ptr<file::BackgroundSync> syncer_;
    std::unique_ptr<file::Rotator> rotator_;  // last: its thread stops before the rest goes
};

HBF_REGISTER_OUTPUT("file", FileOut, kFileSchema, "Appends events as NDJSON to a file (daily files with strftime patterns); retries a failed write until it succeeds.");

}  // namespace
}  // namespace hbf::stages
