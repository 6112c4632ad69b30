// output "file": appends NDJSON to a file whose path may hold strftime patterns (daily files).
//
// A batch's acks settle once its bytes are written to the file (in the kernel's page cache);
// the file is fsync'ed every fsync_interval, when the path rolls over, and on close.
// fsync_interval = 0 fsyncs before every batch is released.
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

#include "fileio.h"
#include "registry.h"

namespace hbf::stages {
namespace {

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
        if (templated_) {
            std::string p = now_path();
            if (p != cur_path_) open_for(p);
        }
        int err = fd_ < 0 ? open_errno_ : write_batch(fd_, *b);
        if (!err && fsync_every_.count() == 0) err = ::fsync(fd_) == 0 ? 0 : errno;
        if (err) {
            ctx_->metrics().errors.add();
            std::string why = "write to " + cur_path_ + " failed: " + std::strerror(err);
            log_limited(rl_, ctx_->log(), spdlog::level::err, "{}", why);
            b->mark(AckStatus::failed, why);
            ctx_->set_failed(why);
            if (fd_ >= 0) { ::close(fd_); fd_ = -1; }  // reopen on the next batch
            return;
        }
        dirty_ = true;
        ctx_->metrics().events_out.add(b->size());
        ctx_->metrics().bytes_out.add(b->bytes());
    }

    void tick() override {
        if (dirty_ && fd_ >= 0 && std::chrono::steady_clock::now() >= next_sync_) sync();
    }
    void flush(std::chrono::steady_clock::time_point) override { sync(); }
    void stop() override {
        sync();
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
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
        fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode_);
        open_errno_ = fd_ < 0 ? errno : 0;
        if (fd_ >= 0 && ctx_) ctx_->clear_failed();
    }

    void sync() {
        if (fd_ >= 0 && dirty_) ::fsync(fd_);
        dirty_ = false;
        next_sync_ = std::chrono::steady_clock::now() + fsync_every_;
    }

    std::string path_tmpl_, cur_path_;
    bool templated_ = false;
    std::chrono::nanoseconds fsync_every_;
    int mode_ = 0644;
    int fd_ = -1, open_errno_ = 0;
    bool dirty_ = false;
    std::chrono::steady_clock::time_point next_sync_{};
    StageContext* ctx_ = nullptr;
    RateLimit rl_;
};

HBF_REGISTER_OUTPUT("file", FileOut, kFileSchema, "Appends events as NDJSON to a file (daily files with strftime patterns).");

}  // namespace
}  // namespace hbf::stages
