// input "file": reads NDJSON files named by a path or glob.
//
// Without follow, each file is read once from the start and the input ends. With follow = true
// it tails the files like `tail -F`: new files matching the glob are picked up, a rotated file
// (new inode at the path) is read to its end before the new one is opened, a truncated file is
// read again from the start. Positions are remembered in <data_dir>/file-<stage>.checkpoint and
// only advance once the events up to them were acknowledged by every output (at-least-once).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <glob.h>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "lines.h"
#include "registry.h"

namespace hbf::stages {
namespace {

// Offsets acknowledged in order: settled batches at the front advance `committed`.
struct Tracker {
    std::mutex m;
    std::deque<std::pair<uint64_t, bool>> pending;  // end offset, settled
    uint64_t base = 0;                               // index of pending.front()
    uint64_t committed = 0;

    uint64_t add(uint64_t end) {
        std::lock_guard lk(m);
        pending.emplace_back(end, false);
        return base + pending.size() - 1;
    }
    void settle(uint64_t idx) {
        std::lock_guard lk(m);
        pending[idx - base].second = true;
        while (!pending.empty() && pending.front().second) {
            committed = pending.front().first;
            pending.pop_front();
            ++base;
        }
    }
    uint64_t get() {
        std::lock_guard lk(m);
        return committed;
    }
};

struct Tailed {
    std::string path;
    int fd = -1;
    ino_t ino = 0;
    uint64_t offset = 0;  // bytes consumed from the file (complete lines + carry)
    std::unique_ptr<LineSplitter> lines;
    std::shared_ptr<Tracker> tracker = std::make_shared<Tracker>();
};

struct FileInOptions {
    std::string path;
    bool follow = false;
    std::string read_from = "beginning";
    Duration poll_interval = std::chrono::milliseconds(250);
    Size max_line = Size(1 << 20);
    // The files it reads and, when it follows them, its checkpoint (see above).
    std::vector<Resource> resources(const StagePlace& at) const {
        std::vector<Resource> out{{Resource::Kind::file, path}};
        if (follow) out.push_back({Resource::Kind::file, at.data_dir + "/file-" + at.name + ".checkpoint"});
        return out;
    }
};

const OptionSchema<FileInOptions> kFileInSchema{
    {"path", &FileInOptions::path, "File or glob of NDJSON files, e.g. \"/var/log/hb/*.ndjson\".", required{}},
    {"follow", &FileInOptions::follow, "Keep reading as files grow, across rotation, with a checkpoint; false = read once and end."},
    {"read_from", &FileInOptions::read_from, "With follow, where to start a file seen for the first time: beginning | end.",
     one_of{"beginning", "end"}},
    {"poll_interval", &FileInOptions::poll_interval, "With follow, how often to look for new data and files."},
    {"max_line", &FileInOptions::max_line, "Longest accepted line; longer ones are dropped and counted."},
};

class FileIn final : public Input {
public:
    FileIn(const FileInOptions& o, const StageConfig& c)
        : pattern_(o.path), follow_(o.follow), max_line_(o.max_line), poll_(o.poll_interval), read_from_end_(o.read_from == "end") {
        if (pattern_.empty()) c.problem("path", "path must name a file or a glob");
    }

    void start(StageContext& ctx) override {
        ckpt_path_ = ctx.data_dir + "/file-" + ctx.name() + ".checkpoint";
        if (follow_) load_checkpoint();
    }

    void run(StageContext& ctx, Emitter& out) override {
        ctx_ = &ctx;
        undelivered_ = &MetricsRegistry::global().counter(
            "hbf_file_undelivered_batches_total", "Batches read by a following file input that an output reported failed.",
            {{"stage", ctx.name()}});
        bool first_scan = true;
        auto last_ckpt = std::chrono::steady_clock::now();
        for (;;) {
            for (const auto& p : expand()) {
                if (!files_.count(p)) open_file(p, first_scan);
            }
            first_scan = false;
            bool progressed = false;
            for (auto& [p, f] : files_) {
                if (ctx.stopping()) break;
                progressed |= drain(f, out);
                if (follow_) check_rotation(f, out);
            }
            if (!follow_ || ctx.stopping()) break;
            if (std::chrono::steady_clock::now() - last_ckpt > std::chrono::seconds(1)) {
                save_checkpoint();
                last_ckpt = std::chrono::steady_clock::now();
            }
            if (!progressed) {
                auto until = std::chrono::steady_clock::now() + poll_;
                while (!ctx.stopping() && std::chrono::steady_clock::now() < until)
                    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(poll_, std::chrono::milliseconds(50)));
            }
        }
        for (auto& [p, f] : files_) {
            if (follow_) continue;
            if (f.fd >= 0 && ctx.stopping()) {  // stopped before the end: no checkpoint, so say where
                struct stat st{};
                if (::fstat(f.fd, &st) == 0 && f.offset < uint64_t(st.st_size)) {
                    ctx.log().info("stopped reading {} at byte {} of {}: without follow there is no checkpoint, "
                                   "a restart reads it from the start", f.path, f.offset - f.lines->pending(), st.st_size);
                    continue;
                }
            }
            BatchPtr b = Batch::make();  // the last line may lack its newline
            f.lines->finish(*b);
            emit(f, std::move(b), f.offset, out);
        }
        if (follow_) {
            // Give in-flight batches a moment to settle so the checkpoint is current.
            save_checkpoint();
        }
        for (auto& [p, f] : files_)
            if (f.fd >= 0) ::close(f.fd);
        ctx.log().info("file input finished after {} events", total_);
    }

    ~FileIn() override {
        if (follow_ && ctx_) save_checkpoint();
    }

private:
    std::vector<std::string> expand() const {
        std::vector<std::string> out;
        glob_t g{};
        if (::glob(pattern_.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
        globfree(&g);
        std::sort(out.begin(), out.end());
        return out;
    }

    void open_file(const std::string& p, bool first_scan) {
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            log_limited(rl_, ctx_->log(), spdlog::level::warn, "cannot open {}: {}", p, std::strerror(errno));
            return;
        }
        struct stat st{};
        ::fstat(fd, &st);
        Tailed t;
        t.path = p;
        t.fd = fd;
        t.ino = st.st_ino;
        t.lines = std::make_unique<LineSplitter>(max_line_);
        if (auto it = saved_.find(p); it != saved_.end() && it->second.first == st.st_ino && it->second.second <= uint64_t(st.st_size)) {
            t.offset = it->second.second;
            ctx_->log().info("resuming {} at byte {}", p, t.offset);
        } else if (follow_ && read_from_end_ && first_scan) {
            t.offset = uint64_t(st.st_size);
        }
        t.tracker->committed = t.offset;
        ::lseek(fd, off_t(t.offset), SEEK_SET);
        files_.emplace(p, std::move(t));
    }

    void emit(Tailed& f, BatchPtr b, uint64_t end_offset, Emitter& out) {
        if (b->empty()) return;
        if (follow_) {
            uint64_t idx = f.tracker->add(end_offset);
            std::shared_ptr<Tracker> tr = f.tracker;
            // A failed batch still advances the checkpoint (else one failure would stop it for good),
            // but is counted and logged: registry counters live as long as the process.
            Counter* undelivered = undelivered_;
            std::string stage = ctx_->name();
            AckRef ack = make_ack([tr, idx, undelivered, stage](AckStatus st, const std::string& why) {
                if (st == AckStatus::failed) {
                    undelivered->add();
                    static RateLimit rl;
                    log_limited(rl, *spdlog::default_logger(), spdlog::level::warn,
                                "[{}] a batch read from the file was not delivered ({}); the checkpoint moves past it", stage, why);
                }
                tr->settle(idx);
            });
            b->acks.push_back(ack.clone());
        }
        total_ += b->size();
        ctx_->metrics().events_in.add(b->size());
        ctx_->metrics().bytes_in.add(b->bytes());
        out.emit(std::move(b));
    }

    // Reads what the file has; true if anything was read. Reads go straight into the batch's
    // buffer and its lines become events where they lie (lines.h).
    bool drain(Tailed& f, Emitter& out) {
        if (f.fd < 0) return false;
        bool any = false;
        BatchPtr b = Batch::make();
        f.lines->begin(*b);
        for (;;) {
            if (ctx_->stopping()) break;
            const ssize_t n = ::read(f.fd, f.lines->room(*b, kRead), kRead);
            const bool interrupted = n < 0 && errno == EINTR;
            if (size_t d = f.lines->commit(*b, n > 0 ? size_t(n) : 0)) {
                ctx_->metrics().dropped("line_too_long").add(d);
                log_limited(rl_, ctx_->log(), spdlog::level::warn, "{}: dropped {} line(s) longer than max_line", f.path, d);
            }
            if (interrupted) continue;
            if (n <= 0) break;
            any = true;
            f.offset += uint64_t(n);
            if (b->size() >= ctx_->batch_events || b->bytes() >= (1u << 20)) {
                f.lines->end(*b);
                emit(f, std::move(b), f.offset - f.lines->pending(), out);
                b = Batch::make();
                f.lines->begin(*b);
            }
        }
        f.lines->end(*b);
        emit(f, std::move(b), f.offset - f.lines->pending(), out);
        return any;
    }

    void check_rotation(Tailed& f, Emitter& out) {
        struct stat st{};
        if (::stat(f.path.c_str(), &st) != 0) return;  // gone for now; keep reading the old fd
        if (st.st_ino != f.ino) {
            drain(f, out);  // finish the rotated file
            BatchPtr b = Batch::make();
            f.lines->finish(*b);
            emit(f, std::move(b), f.offset, out);
            ::close(f.fd);
            int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
            f.fd = fd;
            f.ino = st.st_ino;
            f.offset = 0;
            f.tracker = std::make_shared<Tracker>();
            ctx_->log().info("{} was rotated; reading the new file", f.path);
        } else if (uint64_t(st.st_size) < f.offset) {
            ::lseek(f.fd, 0, SEEK_SET);
            f.offset = 0;
            f.lines->reset();
            f.tracker = std::make_shared<Tracker>();
            ctx_->log().info("{} was truncated; reading it from the start", f.path);
        }
    }

    void load_checkpoint() {
        std::ifstream in(ckpt_path_);
        uint64_t ino, off;
        std::string path;
        while (in >> ino >> off && std::getline(in >> std::ws, path)) saved_[path] = {ino, off};
    }

    void save_checkpoint() {
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(ckpt_path_).parent_path(), ec);
        std::string tmp = ckpt_path_ + ".tmp";
        {
            std::ofstream o(tmp, std::ios::trunc);
            for (auto& [p, f] : files_) o << f.ino << ' ' << f.tracker->get() << ' ' << p << '\n';
            if (!o) return;
        }
        std::filesystem::rename(tmp, ckpt_path_, ec);
    }

    std::string pattern_;
    bool follow_;
    size_t max_line_;
    std::chrono::nanoseconds poll_;
    bool read_from_end_;
    std::string ckpt_path_;
    std::map<std::string, std::pair<uint64_t, uint64_t>> saved_;
    std::map<std::string, Tailed> files_;
    // 128 KiB a read, as cat reads. (When reads went to a buffer of their own, this size kept it
    // in the core's L2: the kernel's copy cost a third of what it cost into a 1 MiB one.)
    static constexpr size_t kRead = 128 << 10;
    StageContext* ctx_ = nullptr;
    Counter* undelivered_ = nullptr;
    uint64_t total_ = 0;
    RateLimit rl_;
};

HBF_REGISTER_INPUT("file", FileIn, kFileInSchema, "Reads NDJSON files (path or glob); follow = true tails them with a checkpoint.");

}  // namespace
}  // namespace hbf::stages
