#include "buffer/disk_queue.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

namespace hbf::buffer {

namespace {
// Directories open in this process: a reload that changes a disk-buffered output would start
// its new version beside the old one, which still holds the directory.
std::mutex g_open_m;
std::set<std::string> g_open;
std::map<std::string, int> g_data_dir_locks;  // data_dir -> its flock'ed `lock`, held until exit

// The directory is no longer open in this process: another version may open it.
void release_dir(const std::string& dir) {
    std::lock_guard lk(g_open_m);
    g_open.erase(dir);
}

// One process per data_dir: the first disk buffer this process opens takes <data_dir>/lock (an
// flock, released by the kernel when the process ends, kill -9 included) and writes its pid there,
// so the second process can name the first. Each buffer directory has its own lock as well.
void lock_data_dir(const std::string& data_dir) {
    namespace fs = std::filesystem;
    std::lock_guard lk(g_open_m);
    if (g_data_dir_locks.count(data_dir)) return;
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    const std::string lp = (fs::path(data_dir) / "lock").string();
    int fd = ec ? -1 : ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;  // an unusable data_dir: the buffer's own open() fails next, naming its directory
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {};
        ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
        ::close(fd);
        std::string who = "another process";
        if (n > 0) {
            std::string p(pid, size_t(n));
            p.erase(p.find_last_not_of(" \n") + 1);
            if (!p.empty() && p.find_first_not_of("0123456789") == std::string::npos) who = "another hbforward process (pid " + p + ")";
        }
        throw std::runtime_error(fmt::format("data_dir {} is in use by {}: {} is locked; two hbforward processes cannot share a data_dir "
                                             "(give each its own [service] data_dir)",
                                             data_dir, who, lp));
    }
    std::string mine = fmt::format("{}\n", ::getpid());
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, mine.data(), mine.size(), 0) < 0) {}  // the pid is a courtesy
    g_data_dir_locks[data_dir] = fd;
}
}  // namespace

DiskQueue::DiskQueue(DiskBufferOptions opts, StageContext& ctx, const std::atomic<bool>& stopping)
    : BatchQueue(std::numeric_limits<int64_t>::max(), int64_t(opts.max_bytes)), opts_(std::move(opts)), ctx_(ctx), stopping_(stopping) {
    opts_.on_error = [this](const std::string& why) {
        if (why.empty()) ctx_.clear_failed();
        else ctx_.set_failed("disk buffer: " + why);
    };
}

DiskQueue::~DiskQueue() { close(); }

void DiskQueue::open() {
    lock_data_dir(std::filesystem::path(opts_.dir).parent_path().parent_path().string());
    {
        std::lock_guard lk(g_open_m);
        if (!g_open.insert(opts_.dir).second)
            throw std::runtime_error(fmt::format("disk buffer {} is still held by the running version of this output (a memory-buffered "
                                                 "version sending what was left in it); reload again once it is sent, or restart hbforward",
                                                 opts_.dir));
    }
    try {
        buf_ = std::make_unique<DiskBuffer>(opts_, ctx_.logger(), BufferMetrics(ctx_.name(), ctx_.type()));
        open_.store(buf_.get());
    } catch (...) {
        release_dir(opts_.dir);
        throw;
    }
}

void DiskQueue::close() {
    if (!buf_ || closed_) return;
    closed_ = true;
    uint64_t kept = buf_->close();
    if (kept) {
        ctx_.log().info("disk buffer {}: kept {} events for the next start", opts_.dir, kept);
        // What the output could not deliver at shutdown is not lost: it is in the buffer.
        if (!ctx_.failure().empty() && buf_->error().empty()) {
            ctx_.log().info("not a failure with a disk buffer: {}", ctx_.failure());
            ctx_.clear_failed();
        }
    }
    release_dir(opts_.dir);
    // buf_ stays: describe_json() and the gauges may still be read; its files are closed.
}

bool DiskQueue::push(BatchPtr& b, const std::atomic<bool>& abort) {
    // Not open yet (a reload starts this version once the old one released the directory): wait
    // as for room, until it opens or the push is given up.
    DiskBuffer* buf = open_.load();
    while (!buf && !abort.load(std::memory_order_relaxed) && !sealed()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        buf = open_.load();
    }
    return buf && buf->push(b, abort);
}

size_t DiskQueue::pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) {
    if (!buf_ || draining_stopped()) {
        std::this_thread::sleep_for(std::min<std::chrono::microseconds>(timeout, std::chrono::milliseconds(2)));
        return 0;
    }
    return buf_->pop(out, n, timeout);
}

int64_t DiskQueue::events() const {
    DiskBuffer* buf = open_.load();
    if (!buf) return 0;
    return int64_t(draining_stopped() ? buf->pending_events() : buf->waiting_events());
}

int64_t DiskQueue::bytes() const {
    DiskBuffer* buf = open_.load();
    return buf ? int64_t(buf->bytes()) : 0;
}

bool DiskQueue::full() const {
    DiskBuffer* buf = open_.load();
    return !buf || buf->full();
}

std::string DiskQueue::describe_json() const {
    DiskBuffer* buf = open_.load();
    if (!buf) return "";
    const double oldest = double(BufferMetrics(ctx_.name(), ctx_.type()).oldest_age_ms.get()) / 1000;
    return fmt::format("\"buffer\":{{\"type\":\"disk\",\"dir\":{},\"events\":{},\"bytes\":{},\"max_bytes\":{},\"oldest_age_seconds\":{:.3f},"
                       "\"error\":{}}}",
                       json_quote(opts_.dir), buf->events(), buf->bytes(), buf->max_bytes(), oldest, json_quote(buf->error()));
}

bool has_segments(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir, ec))
        if (f.path().extension() == ".seg") return true;
    return false;
}

BacklogQueue::BacklogQueue(const ServiceConfig& service, std::string dir, StageContext& ctx, const std::atomic<bool>& stopping)
    : BatchQueue(service.queue_events, service.queue_bytes), dir_(std::move(dir)), ctx_(ctx), stopping_(stopping) {}

BacklogQueue::~BacklogQueue() { close(); }

// Fails the start as a disk buffer would when another process has the data_dir.
void BacklogQueue::open() {
    lock_data_dir(std::filesystem::path(dir_).parent_path().parent_path().string());
    try_open_backlog();
}

void BacklogQueue::try_open_backlog() {
    next_try_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    {
        std::lock_guard lk(g_open_m);
        if (g_open.count(dir_)) {  // the output's old disk-buffered version still drains it
            if (!std::exchange(held_logged_, true))
                ctx_.log().info("disk buffer {}: this output's buffer is memory now; it sends what is left in that directory once "
                                "its old version lets go of it",
                                dir_);
            return;
        }
        g_open.insert(dir_);
    }
    try {
        DiskBufferOptions o;
        o.dir = dir_;
        o.max_bytes = uint64_t(1) << 62;  // nothing is written to it
        o.sync = SyncMode::none;
        backlog_ = std::make_unique<DiskBuffer>(o, ctx_.logger(), BufferMetrics(ctx_.name(), ctx_.type()));
    } catch (const std::exception& e) {
        release_dir(dir_);
        log_limited(open_rl_, ctx_.log(), spdlog::level::err, "disk buffer {}: cannot open what is left in it: {} (retrying)", dir_,
                    e.what());
        next_try_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        return;
    }
    ctx_.log().info("disk buffer {}: this output's buffer is memory now; sending the {} events left in that directory first", dir_,
                    backlog_->events());
    open_.store(backlog_.get());
    if (backlog_->events() == 0) finish_backlog();
}

// Every record of the backlog settled: the directory goes.
void BacklogQueue::finish_backlog() {
    open_.store(nullptr);
    finished_ = true;
    uint64_t kept = backlog_->close();
    release_dir(dir_);
    if (kept) return;  // cannot happen while open: settled means none kept
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (ec) ctx_.log().warn("disk buffer {}: its backlog is sent but the directory could not be removed: {}", dir_, ec.message());
    else ctx_.log().info("disk buffer {}: what was left in it is sent; directory removed", dir_);
}

size_t BacklogQueue::pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) {
    if (!finished_) {
        const bool stopped = stopping_.load(std::memory_order_relaxed) && producers() == 0;
        if (!backlog_ && !stopped && std::chrono::steady_clock::now() >= next_try_) try_open_backlog();
        if (DiskBuffer* b = open_.load(); b && !stopped) {
            if (size_t got = b->pop(out, n, std::chrono::microseconds(0))) return got;
            if (b->events() == 0) finish_backlog();
        }
        // Back soon: records the output has in hand, or failed and waiting to be handed out again.
        if (!finished_) timeout = std::min<std::chrono::microseconds>(timeout, std::chrono::milliseconds(20));
    }
    return BatchQueue::pop(out, n, timeout);
}

void BacklogQueue::close() {
    DiskBuffer* b = open_.exchange(nullptr);
    if (!b) return;
    if (uint64_t kept = b->close()) ctx_.log().info("disk buffer {}: kept {} events for the next start", dir_, kept);
    release_dir(dir_);
}

std::string BacklogQueue::describe_json() const {
    DiskBuffer* b = open_.load();
    if (!b) return "";
    return fmt::format("\"buffer\":{{\"type\":\"memory\",\"backlog\":{{\"dir\":{},\"events\":{},\"bytes\":{}}}}}", json_quote(dir_),
                       b->events(), b->bytes());
}

void warn_unused_buffers(const PipelineConfig& cfg) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path root = fs::path(cfg.service.data_dir) / "buffer";
    for (const auto& d : fs::directory_iterator(root, ec)) {
        if (!d.is_directory(ec)) continue;
        std::string name = d.path().filename().string();
        const StageDecl* s = cfg.find(name);
        if (s && s->kind == StageKind::output) continue;  // its own buffer, or a backlog it drains
        uint64_t bytes = 0;
        for (const auto& f : fs::directory_iterator(d.path(), ec))
            if (f.path().extension() == ".seg") bytes += f.file_size(ec);
        if (bytes == 0) continue;
        spdlog::warn("disk buffer {} belongs to no output (was output '{}' renamed or removed?): its {} bytes of events are not sent; "
                     "give an output that name back, or delete the directory",
                     d.path().string(), name, bytes);
    }
}

std::unique_ptr<BatchQueue> make_queue(const ServiceConfig& service, const StageDecl& decl, StageContext& ctx,
                                       const std::atomic<bool>& stopping) {
    std::string dir = (std::filesystem::path(service.data_dir) / "buffer" / decl.name).string();
    if (!decl.buffer.disk) {
        if (decl.kind == StageKind::output && has_segments(dir)) return std::make_unique<BacklogQueue>(service, std::move(dir), ctx, stopping);
        return std::make_unique<BatchQueue>(service.queue_events, service.queue_bytes);
    }
    DiskBufferOptions o;
    o.dir = std::move(dir);
    o.max_bytes = decl.buffer.max_size;
    o.when_full = decl.buffer.when_full;
    o.sync = decl.buffer.sync;
    o.sync_interval = decl.buffer.sync_interval;
    o.pending_bytes = uint64_t(service.queue_bytes);
    return std::make_unique<DiskQueue>(std::move(o), ctx, stopping);
}

}  // namespace hbf::buffer
