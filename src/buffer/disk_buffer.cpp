#include "buffer/disk_buffer.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <mutex>
#include <stdexcept>
#include <sys/file.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "ack.h"
#include "buffer/crc32c.h"
#include "buffer/record.h"
#include "log.h"
#include "options.h"

namespace hbf::buffer {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool parse_sync(const std::string& text, SyncMode& mode, std::chrono::nanoseconds& interval) {
    if (text == "batch") {
        mode = SyncMode::batch;
        return true;
    }
    if (text == "none") {
        mode = SyncMode::none;
        return true;
    }
    auto d = parse_duration(text);
    if (!d || d->count() <= 0) return false;
    mode = SyncMode::interval;
    interval = *d;
    return true;
}

BufferMetrics::BufferMetrics(const std::string& s, const std::string& t)
    : events(MetricsRegistry::global().gauge("hbf_buffer_events", "Events in the disk buffer, written and not yet settled by the output.", {{"stage", s}, {"type", t}})),
      bytes(MetricsRegistry::global().gauge("hbf_buffer_bytes", "Bytes of the disk buffer's segment files.", {{"stage", s}, {"type", t}})),
      max_bytes(MetricsRegistry::global().gauge("hbf_buffer_max_bytes", "The disk buffer's max_size.", {{"stage", s}, {"type", t}})),
      oldest_age_ms(MetricsRegistry::global().gauge("hbf_buffer_oldest_age_seconds", "Age of the oldest unsettled event in the disk buffer.", {{"stage", s}, {"type", t}}, 1000)),
      written_events(MetricsRegistry::global().counter("hbf_buffer_written_events_total", "Events written to the disk buffer.", {{"stage", s}, {"type", t}})),
      read_events(MetricsRegistry::global().counter("hbf_buffer_read_events_total", "Events read from the disk buffer and handed to the output.", {{"stage", s}, {"type", t}})),
      dropped_events(MetricsRegistry::global().counter("hbf_buffer_dropped_events_total", "Events dropped because the disk buffer was full (when_full = drop_newest).", {{"stage", s}, {"type", t}})),
      failed_events(MetricsRegistry::global().counter("hbf_buffer_failed_events_total", "Events the output failed for good (the peer refused them), removed from the disk buffer.", {{"stage", s}, {"type", t}})),
      replayed_events(MetricsRegistry::global().counter("hbf_buffer_replayed_events_total", "Events handed to the output again after a restart: possible duplicates.", {{"stage", s}, {"type", t}})),
      corrupted_records(MetricsRegistry::global().counter("hbf_buffer_corrupted_records_total", "Damaged disk buffer records skipped.", {{"stage", s}, {"type", t}})),
      syncs(MetricsRegistry::global().counter("hbf_buffer_syncs_total", "fdatasync calls made by the disk buffer.", {{"stage", s}, {"type", t}})),
      write_errors(MetricsRegistry::global().counter("hbf_buffer_write_errors_total", "Failed writes to the disk buffer (a full disk, an I/O error).", {{"stage", s}, {"type", t}})) {}

namespace {

constexpr uint32_t kStateMagic = 0x54534248;  // "HBST"
constexpr auto kWriterTick = std::chrono::milliseconds(100);
constexpr auto kMaxRetryPause = std::chrono::seconds(30);

// The settled position, in two alternating slots: a torn write spoils at most the slot being
// written, and the other still holds the previous position.
struct StateSlot {
    uint32_t magic;
    uint32_t crc;
    uint64_t counter;
    uint64_t settled_seq;  // the first record not settled
    uint64_t read_seq;     // the first record never handed out (replays are counted below it)
};
static_assert(sizeof(StateSlot) == 32);

std::string seg_name(uint64_t first_seq) { return fmt::format("{:020}.seg", first_seq); }

int pwrite_all(int fd, const char* p, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, off_t(off));
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        p += w;
        n -= size_t(w);
        off += uint64_t(w);
    }
    return 0;
}

struct Segment {
    uint64_t first_seq = 0;
    uint64_t size = 0;         // readable up to here: whole records only
    uint64_t end_seq = 0;      // the seq after the last record within `size`
    int64_t first_received_ns = 0;
    std::vector<std::pair<uint64_t, uint64_t>> bad;  // damaged ranges found at open, skipped without recounting
};

struct Inflight {
    enum State : uint8_t { out, retry, settled };
    uint64_t seq;
    uint64_t seg;   // first_seq of its segment
    uint64_t off;
    uint32_t events;
    State state;
    uint8_t tries;
    int64_t received_ns;
    Clock::time_point due;
};

}  // namespace

struct DiskBuffer::Impl : std::enable_shared_from_this<Impl> {
    Impl(DiskBufferOptions opts, std::shared_ptr<spdlog::logger> l, const BufferMetrics& mm) : o(std::move(opts)), log(std::move(l)), m(mm) {
        segment_bytes = o.segment_bytes ? o.segment_bytes : std::clamp<uint64_t>(o.max_bytes / 8, 64u << 10, 64u << 20);
    }

    DiskBufferOptions o;
    std::shared_ptr<spdlog::logger> log;
    BufferMetrics m;  // references into the registry: a copy stays valid
    uint64_t segment_bytes;
    int lock_fd = -1, state_fd = -1;

    mutable std::mutex mu;
    std::condition_variable writer_cv, reader_cv, space_cv;
    std::deque<Segment> segs;  // oldest first; the last one is being written
    std::vector<BatchPtr> pending;
    uint64_t pending_bytes = 0;
    uint64_t pending_events = 0;
    bool writer_idle = false;            // the writer waits for work: a producer wakes it
    uint64_t inflight_events = 0;        // events of records handed out and not settled
    uint64_t next_seq = 1;     // the next record the writer writes
    uint64_t read_seq = 1;     // the first record not handed out
    uint64_t settled_seq = 1;  // the first record not settled
    uint64_t replay_below = 0; // records below this were handed out before the last restart
    std::deque<Inflight> inflight;  // handed out and not settled, by seq
    size_t retries_waiting = 0;
    uint64_t unsettled_events = 0;
    bool closing = false, closed = false;
    std::string error;
    uint64_t state_counter = 0, p_settled = 0, p_read = 0;
    uint64_t kept = 0;

    std::atomic<uint64_t> disk_bytes{0}, pend_bytes{0};
    std::atomic<bool> failing{false};

    // Under write_m: the writer thread, or (sync = none or an interval) a producer writing what
    // is pending itself.
    std::mutex write_m;
    std::vector<BatchPtr> lead_work;
    int sync_error = 0;  // an fdatasync that failed since the last group was released
    std::thread writer;
    int wfd = -1;
    uint64_t wsize = 0;
    std::string staging;
    bool dirty = false;  // written and not synced
    Clock::time_point last_sync = Clock::now();

    // Consumer only.
    int rfd = -1;
    uint64_t rseg = 0, roff = 0;
    std::vector<std::pair<uint64_t, uint64_t>> rbad;
    BatchPtr scratch = Batch::make();
    struct Read { uint64_t seq, seg, off; uint32_t events; int64_t received_ns; };
    std::vector<Read> reads;
    std::vector<Inflight*> due_now;

    RateLimit rl_write, rl_drop, rl_corrupt, rl_failed;

    std::string path(uint64_t first) const { return (fs::path(o.dir) / seg_name(first)).string(); }

    // ---- open ----

    [[noreturn]] void fail_open(const std::string& what) { throw std::runtime_error(fmt::format("disk buffer {}: {}", o.dir, what)); }

    void open() {
        std::error_code ec;
        fs::create_directories(o.dir, ec);
        if (ec) fail_open(fmt::format("cannot create the directory: {}", ec.message()));
        std::string lp = (fs::path(o.dir) / "lock").string();
        lock_fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock_fd < 0) fail_open(fmt::format("cannot open {}: {}", lp, std::strerror(errno)));
        if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
            fail_open(fmt::format("in use by another process ({} is locked); two hbforward processes cannot share a data_dir", lp));
        std::string sp = (fs::path(o.dir) / "state").string();
        state_fd = ::open(sp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (state_fd < 0) fail_open(fmt::format("cannot open {}: {}", sp, std::strerror(errno)));
        load_state();

        std::vector<uint64_t> firsts;
        for (const auto& e : fs::directory_iterator(o.dir, ec)) {
            std::string n = e.path().filename().string();
            if (n.size() != 24 || n.substr(20) != ".seg" || n.find_first_not_of("0123456789") != 20) continue;
            firsts.push_back(std::stoull(n.substr(0, 20)));
        }
        if (ec) fail_open(fmt::format("cannot list the directory: {}", ec.message()));
        std::sort(firsts.begin(), firsts.end());
        uint64_t max_seq = 0;
        for (size_t i = 0; i < firsts.size(); ++i) scan(firsts[i], i + 1 == firsts.size(), max_seq);
        next_seq = std::max({next_seq, settled_seq, max_seq + 1, uint64_t(1)});
        read_seq = settled_seq;
        rseg = segs.empty() ? next_seq : segs.front().first_seq;
        new_segment_or_throw();
        publish_gauges_locked();
        m.max_bytes.set(int64_t(o.max_bytes));
        if (unsettled_events)
            log->info("disk buffer {}: {} events ({} bytes) from before the restart to send", o.dir, unsettled_events, disk_bytes.load());
        writer = std::thread([this] { writer_loop(); });
    }

    void load_state() {
        StateSlot s[2];
        ssize_t n = ::pread(state_fd, s, sizeof s, 0);
        const StateSlot* best = nullptr;
        for (int i = 0; i < 2; ++i) {
            if (n < ssize_t((i + 1) * sizeof(StateSlot))) break;
            if (s[i].magic != kStateMagic || s[i].crc != crc32c(&s[i].counter, 24)) continue;
            if (!best || s[i].counter > best->counter) best = &s[i];
        }
        if (!best) return;
        state_counter = best->counter;
        settled_seq = p_settled = best->settled_seq;
        replay_below = p_read = best->read_seq;
    }

    // Reads a segment at open: counts what is unsettled, truncates a torn tail of the newest,
    // notes damage elsewhere. A segment with nothing unsettled is deleted.
    void scan(uint64_t first, bool newest, uint64_t& max_seq) {
        std::string p = path(first);
        int fd = ::open(p.c_str(), newest ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail_open(fmt::format("cannot open {}: {}", p, std::strerror(errno)));
        off_t end = ::lseek(fd, 0, SEEK_END);
        Segment s;
        s.first_seq = first;
        uint64_t off = 0, size = uint64_t(std::max<off_t>(end, 0)), prev = 0, unsettled = 0;
        while (off < size) {
            RecordHeader h;
            ReadStatus st = read_record(fd, off, size, *scratch, h);
            if (st == ReadStatus::ok && h.seq >= first && h.seq > prev) {
                if (prev == 0) s.first_received_ns = h.received_ns;
                prev = h.seq;
                if (h.seq >= settled_seq) {
                    unsettled_events += h.events;
                    ++unsettled;
                }
                off += kHeaderBytes + h.len;
                continue;
            }
            uint64_t next = next_valid_record(fd, off + 1, size, prev + 1, *scratch);
            if (next == size && newest) {
                if (::ftruncate(fd, off_t(off)) != 0) fail_open(fmt::format("cannot truncate {}: {}", p, std::strerror(errno)));
                log->warn("disk buffer {}: {}: removed {} bytes of a record cut short at offset {} (a crash during a write)", o.dir, p,
                          size - off, off);
                size = off;
                break;
            }
            m.corrupted_records.add();
            log->error("disk buffer {}: {}: damaged record at offset {}: {} bytes skipped", o.dir, p, off, next - off);
            s.bad.emplace_back(off, next);
            off = next;
        }
        scratch->clear();
        ::close(fd);
        max_seq = std::max(max_seq, prev);
        if (unsettled == 0) {
            ::unlink(p.c_str());
            return;
        }
        s.size = size;
        s.end_seq = prev + 1;
        disk_bytes += size;
        segs.push_back(std::move(s));
    }

    void new_segment_or_throw() {
        std::string err;
        if (!new_segment(err)) fail_open(err);
    }

    // Starts the segment the writer appends to; the old one (if any) is sealed.
    bool new_segment(std::string& err) {
        std::string p = path(next_seq);
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = fmt::format("cannot create {}: {}", p, std::strerror(errno));
            return false;
        }
        if (o.sync != SyncMode::none) sync_dir();
        if (wfd >= 0) {
            if (o.sync != SyncMode::none && dirty)
                if (int e = sync_fd(wfd); e && o.sync == SyncMode::batch) sync_error = e;  // reported by release_written()
            ::close(wfd);
        }
        wfd = fd;
        wsize = 0;
        dirty = false;
        std::lock_guard lk(mu);
        segs.push_back(Segment{next_seq, 0, next_seq, 0, {}});
        delete_settled_locked();
        return true;
    }

    void sync_dir() {
        int d = ::open(o.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            ::fsync(d);
            ::close(d);
        }
    }

    int sync_fd(int fd) {
        m.syncs.add();
        last_sync = Clock::now();
        return ::fdatasync(fd) == 0 ? 0 : errno;
    }

    // ---- producers ----

    enum class Admit { taken, full, closed };

    Admit admit(BatchPtr& b) {
        const uint64_t sz = record_bytes(*b);
        const uint64_t ev = b->size();
        {
            std::lock_guard lk(mu);
            if (closing) return Admit::closed;
            if (!error.empty()) return Admit::full;
            const bool empty = unsettled_events == 0 && pending.empty();
            if (!empty && (pending_bytes + sz > o.pending_bytes || disk_bytes.load() + pending_bytes + sz > o.max_bytes)) return Admit::full;
            pending.push_back(std::move(b));
            pending_bytes += sz;
            pending_events += ev;
            pend_bytes.store(pending_bytes, std::memory_order_relaxed);
            if (writer_idle && o.sync == SyncMode::batch) {
                writer_idle = false;
                writer_cv.notify_one();
            }
        }
        return Admit::taken;
    }

    // One attempt: taken (written soon, or with when_full = drop_newest dropped when full),
    // closed, or full.
    Admit offer(BatchPtr& b) {
        Admit a = admit(b);
        if (a == Admit::taken) {
            after_admit();
        } else if (a == Admit::full && o.when_full == WhenFull::drop_newest) {
            drop(b);
            a = Admit::taken;
        }
        return a;
    }

    void drop(BatchPtr& b) {
        m.dropped_events.add(b->size());
        log_limited(rl_drop, *log, spdlog::level::warn, "disk buffer {} is full ({} of max_size {} bytes{}): dropping new events (when_full = drop_newest)",
                    o.dir, disk_bytes.load() + pend_bytes.load(), o.max_bytes, failing.load() ? ", and writes fail" : "");
        b->mark(AckStatus::dropped, "disk buffer full");
        b.reset();
    }

    bool full() const {
        if (o.when_full == WhenFull::drop_newest) return false;  // push() takes the batch, dropping it when full
        if (failing.load(std::memory_order_relaxed)) return true;
        uint64_t p = pend_bytes.load(std::memory_order_relaxed);
        return p >= o.pending_bytes || disk_bytes.load(std::memory_order_relaxed) + p >= o.max_bytes;
    }

    // After a batch was admitted. With sync = "batch" the writer thread writes and syncs it: one
    // fdatasync covers every batch admitted while the previous one ran (group commit), and the
    // batches' acks settle after it, on the writer's thread, so the producer (the webhook's I/O
    // thread) never waits for the disk. With sync = "none" or an interval there is no sync to
    // wait for: the producer writes what is pending itself (a page-cache write costs less than
    // waking a thread), unless a write is under way, whose writer then takes this batch too.
    void after_admit() {
        if (o.sync == SyncMode::batch) return;
        for (;;) {
            {
                std::unique_lock wl(write_m, std::try_to_lock);
                if (!wl.owns_lock()) return;  // its holder looks at `pending` again after unlocking
                if (failing.load()) return;   // the writer retries, paced
                {
                    std::lock_guard lk(mu);
                    lead_work.swap(pending);
                }
                if (!lead_work.empty()) write_group(lead_work);
            }
            std::lock_guard lk(mu);
            if (pending.empty() || closing) return;
        }
    }

    // ---- writer ----

    // The writer thread: with sync = "batch" it writes and syncs everything pending as one group;
    // in every mode it retries after a failed write, syncs with sync = <interval>, keeps the
    // gauges fresh, and writes what is left at close.
    void writer_loop() {
        std::vector<BatchPtr> work;
        auto pause = std::chrono::milliseconds(0);
        for (;;) {
            bool stop;
            {
                std::unique_lock lk(mu);
                auto wait = pause.count() ? std::chrono::duration_cast<std::chrono::nanoseconds>(pause) : std::chrono::nanoseconds(kWriterTick);
                if (o.sync == SyncMode::interval) wait = std::min(wait, o.sync_interval);
                // With sync = "batch" a producer wakes the writer; otherwise a producer that found
                // the writer writing left its batch in `pending` for it (after_admit()).
                const bool eager = o.sync == SyncMode::batch && pause.count() == 0;
                if (!(pause.count() == 0 && !pending.empty()) && !closing) {
                    writer_idle = eager;
                    writer_cv.wait_for(lk, wait, [&] { return closing || (eager && !pending.empty()); });
                    writer_idle = false;
                }
                stop = closing;
            }
            bool gave_up = false;
            {
                std::lock_guard wl(write_m);
                {
                    std::lock_guard lk(mu);
                    work.swap(pending);
                }
                if (!work.empty()) {
                    if (write_group(work)) {
                        pause = std::chrono::milliseconds(0);
                    } else {
                        pause = std::clamp(pause * 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
                        if (stop) {
                            fail_work(work);
                            gave_up = true;
                        }
                    }
                }
                if (o.sync == SyncMode::interval && dirty && Clock::now() - last_sync >= o.sync_interval) {
                    sync_fd(wfd);
                    dirty = false;
                }
            }
            tick_gauges();
            if (gave_up) break;
            if (stop && work.empty()) {
                std::lock_guard lk(mu);
                if (pending.empty()) break;
            }
        }
        std::lock_guard wl(write_m);
        if (o.sync != SyncMode::none && dirty) sync_fd(wfd);
        dirty = false;
    }

    // Writes the batches, one write() per segment touched, then (sync = "batch") one fdatasync,
    // and settles them upstream. Returns false when a write fails: the batches written before it
    // are settled, the others are back in `pending`, at its front.
    bool write_group(std::vector<BatchPtr>& work) {
        size_t i = 0;
        while (i < work.size()) {
            if (wsize >= segment_bytes) {
                std::string err;
                if (!new_segment(err)) {
                    release_written(work, i);
                    write_failed(err, work, i);
                    return false;
                }
            }
            Staged s = stage_records(work, i);
            int err = o.inject_write_error ? o.inject_write_error() : 0;
            if (!err) err = pwrite_all(wfd, staging.data(), staging.size(), wsize);
            if (err) {
                write_error(err, work, i);
                return false;
            }
            publish_written(s);
            i += s.records;
        }
        release_written(work, work.size());
        work.clear();
        return true;
    }

    struct Staged {
        size_t records = 0;
        uint64_t events = 0, admitted = 0;  // admitted: their record_bytes, counted in pending_bytes
    };

    // Encodes work[i, ...) into `staging`: as many batches as the current segment holds, at least one.
    Staged stage_records(const std::vector<BatchPtr>& work, size_t i) {
        staging.clear();
        Staged s;
        for (size_t j = i; j < work.size(); ++j) {
            uint64_t sz = record_bytes(*work[j]);
            if (j > i && wsize + staging.size() + sz > segment_bytes) break;
            if (staging.empty()) {
                std::lock_guard lk(mu);
                if (segs.back().first_received_ns == 0) segs.back().first_received_ns = work[j]->received_ns;
            }
            append_record(staging, *work[j], next_seq + (j - i));
            s.events += work[j]->size();
            s.admitted += sz;
            ++s.records;
        }
        return s;
    }

    // A write of work[i, ...) failed with errno `err`: what was written before is settled, the
    // rest goes back to `pending`.
    void write_error(int err, std::vector<BatchPtr>& work, size_t i) {
        if (::ftruncate(wfd, off_t(wsize)) != 0) {}  // a torn record past wsize is overwritten by the next write anyway
        release_written(work, i);
        write_failed(fmt::format("cannot write {}: {}", path(segs_back_first()), std::strerror(err)), work, i);
        // Seal the segment: once the output settles what it holds, it is deleted, which is
        // how a full disk gets room back (a segment being written is never deleted).
        std::string ignored;
        if (wsize > 0) new_segment(ignored);
    }

    // The staged records are in the segment: readers may have them, and a failing buffer has
    // recovered.
    void publish_written(const Staged& s) {
        dirty = o.sync != SyncMode::none;
        wsize += staging.size();
        bool recovered = false;
        {
            std::lock_guard lk(mu);
            segs.back().size = wsize;
            next_seq += s.records;
            segs.back().end_seq = next_seq;
            unsettled_events += s.events;
            pending_events -= std::min(pending_events, s.events);
            pending_bytes -= s.admitted;
            pend_bytes.store(pending_bytes, std::memory_order_relaxed);
            disk_bytes += staging.size();
            if (!error.empty()) {
                recovered = true;
                error.clear();
                failing.store(false);
            }
            publish_gauges_locked();
        }
        if (recovered) {
            log->info("disk buffer {}: writes succeed again", o.dir);
            if (o.on_error) o.on_error("");
        }
        reader_cv.notify_one();
        space_cv.notify_all();
        m.written_events.add(s.events);
    }

    // Settles work[0, n) upstream: written, and with sync = "batch" synced first. A failed
    // fdatasync leaves the records in the buffer (the output may still send them) but reports the
    // batches failed upstream: nothing is acknowledged that a power loss could take back.
    void release_written(std::vector<BatchPtr>& work, size_t n) {
        if (n == 0) return;
        if (o.sync == SyncMode::batch && dirty) {
            if (int e = sync_fd(wfd)) sync_error = e;
            dirty = false;
        }
        if (sync_error) {
            std::string why = fmt::format("disk buffer {}: fdatasync failed: {}", o.dir, std::strerror(sync_error));
            m.write_errors.add();
            log_limited(rl_write, *log, spdlog::level::err, "{}; the batches it covered are reported failed upstream", why);
            for (size_t k = 0; k < n; ++k) {
                work[k]->mark(AckStatus::failed, why);
                work[k].reset();
            }
            sync_error = 0;
            return;
        }
        for (size_t k = 0; k < n; ++k) {
            work[k]->mark(AckStatus::delivered, "");
            work[k].reset();  // settles the batch upstream: it is on disk
        }
    }

    uint64_t segs_back_first() {
        std::lock_guard lk(mu);
        return segs.back().first_seq;
    }

    void write_failed(const std::string& why, std::vector<BatchPtr>& work, size_t from) {
        m.write_errors.add();
        log_limited(rl_write, *log, spdlog::level::err, "disk buffer {}: {}; holding new events back until a write succeeds", o.dir, why);
        if (o.on_error) o.on_error(why);
        std::lock_guard lk(mu);
        error = why;
        failing.store(true);
        // Back at the front of the queue, in order; they stay counted in pending_bytes.
        std::vector<BatchPtr> rest;
        rest.reserve(work.size() - from + pending.size());
        for (size_t k = from; k < work.size(); ++k) rest.push_back(std::move(work[k]));
        for (auto& b : pending) rest.push_back(std::move(b));
        pending.swap(rest);
        work.clear();
    }

    // At close, batches that could not be written are reported failed upstream.
    void fail_work(std::vector<BatchPtr>& work) {
        std::string why;
        {
            std::lock_guard lk(mu);
            for (auto& b : pending) work.push_back(std::move(b));
            pending.clear();
            pending_bytes = 0;
            pending_events = 0;
            pend_bytes.store(0);
            why = "disk buffer could not write the events: " + error;
        }
        for (auto& b : work) {
            b->mark(AckStatus::failed, why);
            b.reset();
        }
        work.clear();
    }

    void publish_gauges_locked() {
        m.events.set(int64_t(unsettled_events));
        m.bytes.set(int64_t(disk_bytes.load()));
    }

    void tick_gauges() {
        std::lock_guard lk(mu);
        int64_t oldest = 0;
        if (!inflight.empty()) oldest = inflight.front().received_ns;
        else if (read_seq < next_seq)
            for (const auto& s : segs)
                if (s.size > 0 && s.first_received_ns) { oldest = s.first_received_ns; break; }
        m.oldest_age_ms.set(oldest ? std::max<int64_t>(0, (now_ns() - oldest) / 1000000) : 0);
        publish_gauges_locked();
    }

    // ---- settling ----

    // The output's outcome for a record: a failure the output marked final (the peer refused the
    // events) removes it like a delivery, counted and logged; any other failure is retried.
    void settle(uint64_t seq, AckStatus s, bool final = false, const std::string& why = {}) {
        if (s == AckStatus::failed && final) {
            uint32_t events = 0;
            {
                std::lock_guard lk(mu);
                auto it = std::lower_bound(inflight.begin(), inflight.end(), seq, [](const Inflight& f, uint64_t v) { return f.seq < v; });
                if (closed || it == inflight.end() || it->seq != seq || it->state == Inflight::settled) return;
                events = it->events;
            }
            m.failed_events.add(events);
            log_limited(rl_failed, *log, spdlog::level::err, "disk buffer {}: {} events the output failed for good removed from the buffer: {}",
                        o.dir, events, why.empty() ? std::string("no reason given") : why);
            s = AckStatus::dropped;  // settled: removed like a delivered record
        }
        std::lock_guard lk(mu);
        if (closed) return;
        auto it = std::lower_bound(inflight.begin(), inflight.end(), seq, [](const Inflight& f, uint64_t v) { return f.seq < v; });
        if (it == inflight.end() || it->seq != seq || it->state == Inflight::settled) return;
        if (s == AckStatus::failed) {
            // Not "failed for good": a peer that timed out or a shutdown. Hand it out again later.
            if (it->state != Inflight::retry) {
                it->state = Inflight::retry;
                ++retries_waiting;
            }
            auto pause = o.retry_after * (1 << std::min<int>(it->tries, 5));
            it->due = Clock::now() + std::min<Clock::duration>(std::chrono::duration_cast<Clock::duration>(pause), kMaxRetryPause);
            if (it->tries < 255) ++it->tries;
            reader_cv.notify_one();
            return;
        }
        if (it->state == Inflight::retry) --retries_waiting;
        it->state = Inflight::settled;
        inflight_events -= std::min<uint64_t>(inflight_events, it->events);
        unsettled_events -= std::min<uint64_t>(unsettled_events, it->events);
        if (it == inflight.begin()) {
            while (!inflight.empty() && inflight.front().state == Inflight::settled) inflight.pop_front();
            settled_seq = inflight.empty() ? read_seq : inflight.front().seq;
            if (inflight.empty() && read_seq == next_seq) unsettled_events = 0;  // damaged records skipped while reading are gone too
            delete_settled_locked();
            persist_locked();
        }
        publish_gauges_locked();
    }

    // Deletes sealed segments whose records are all settled.
    void delete_settled_locked() {
        while (segs.size() > 1 && segs[1].first_seq <= settled_seq) {
            std::string p = path(segs.front().first_seq);
            if (::unlink(p.c_str()) != 0 && errno != ENOENT) log->warn("disk buffer {}: cannot delete {}: {}", o.dir, p, std::strerror(errno));
            disk_bytes -= std::min(disk_bytes.load(), segs.front().size);
            segs.pop_front();
        }
        space_cv.notify_all();
    }

    void persist_locked() {
        if (state_fd < 0 || (settled_seq == p_settled && read_seq == p_read)) return;
        StateSlot s{kStateMagic, 0, ++state_counter, settled_seq, read_seq};
        s.crc = crc32c(&s.counter, 24);
        if (pwrite_all(state_fd, reinterpret_cast<const char*>(&s), sizeof s, (state_counter % 2) * sizeof s) == 0) {
            p_settled = settled_seq;
            p_read = read_seq;
        }
    }

    // ---- the consumer ----

    // The first segment at or after `first`, with its published size and whether one follows.
    bool view_locked(uint64_t first, Segment*& seg, bool& has_next, uint64_t& next_first) {
        for (size_t i = 0; i < segs.size(); ++i) {
            if (segs[i].first_seq < first) continue;
            seg = &segs[i];
            has_next = i + 1 < segs.size();
            next_first = has_next ? segs[i + 1].first_seq : 0;
            return true;
        }
        return false;
    }

    bool unread_locked() const { return read_seq < next_seq; }

    // The consumer's next records: retries that are due first, then records never handed out,
    // up to n, waiting up to `timeout` for either.
    size_t pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) {
        if (!wait_for_records(n, Clock::now() + timeout)) return 0;
        reads.clear();
        size_t k = reread_due(out);
        const size_t retried = k;
        uint64_t next = 0;
        {
            std::lock_guard lk(mu);
            next = read_seq;
        }
        k = read_new(out, k, n, next);
        note_handed_out(retried, next);
        if (k == 0) return 0;
        attach_settle_acks(out, k);
        return k;
    }

    // Waits until a retry is due, a record is unread, or the deadline; the due retries (at most
    // n) are in `due_now`, marked out. False when the buffer is closing.
    bool wait_for_records(size_t n, Clock::time_point deadline) {
        due_now.clear();
        std::unique_lock lk(mu);
        for (;;) {
            if (closing) return false;
            auto now = Clock::now();
            auto wake = deadline;
            if (retries_waiting)
                for (auto& f : inflight)
                    if (f.state == Inflight::retry) {
                        if (f.due <= now && due_now.size() < n) due_now.push_back(&f);
                        else wake = std::min(wake, f.due);
                    }
            if (!due_now.empty() || unread_locked() || now >= deadline) break;
            reader_cv.wait_until(lk, wake);
        }
        for (auto* f : due_now) {
            f->state = Inflight::out;
            --retries_waiting;
        }
        return true;
    }

    // Reads the retries in `due_now` again into out[0, k); one that cannot be read is dropped.
    size_t reread_due(BatchPtr* out) {
        size_t k = 0;
        for (auto* f : due_now) {  // entries stay put: only settle() erases them, and they are not settled
            BatchPtr b = Batch::make();
            if (reread(*f, *b)) {
                reads.push_back({f->seq, f->seg, f->off, f->events, f->received_ns});
                out[k++] = std::move(b);
            } else {
                settle(f->seq, AckStatus::dropped);
            }
        }
        return k;
    }

    // The segment the consumer reads, as the writer has published it.
    struct ReadView {
        uint64_t end = 0, end_seq = 0;  // readable size, the seq after its last record
        bool has_next = false;
        uint64_t next_first = 0;
    };

    // Points rfd at the first segment at or after rseg (opening it when it changed). False when
    // there is none.
    bool view_read_segment(ReadView& v) {
        std::lock_guard lk(mu);
        Segment* seg = nullptr;
        if (!view_locked(rseg, seg, v.has_next, v.next_first)) return false;
        if (seg->first_seq != rseg || rfd < 0) {
            if (rfd >= 0) ::close(rfd);
            rseg = seg->first_seq;
            roff = 0;
            rbad = seg->bad;
            rfd = ::open(path(rseg).c_str(), O_RDONLY | O_CLOEXEC);
        }
        v.end = seg->size;
        v.end_seq = seg->end_seq;
        return true;
    }

    // Moves the consumer to the segment after the one it reads; false when there is none.
    bool next_read_segment(const ReadView& v) {
        if (!v.has_next) return false;
        if (rfd >= 0) ::close(rfd);
        rfd = -1;
        rseg = v.next_first;
        return true;
    }

    // Reads records at or after `next` (moved past what it reads) into out[k, n), across
    // segments, skipping damaged ones. Returns the new k.
    size_t read_new(BatchPtr* out, size_t k, size_t n, uint64_t& next) {
        while (k < n) {
            ReadView v;
            if (!view_read_segment(v)) break;
            if (rfd < 0) {
                log->error("disk buffer {}: cannot open {}: {}; skipping it", o.dir, path(rseg), std::strerror(errno));
                if (!next_read_segment(v)) break;
                continue;
            }
            if (roff >= v.end) {
                next = std::max(next, v.end_seq);  // past damaged records too
                if (!next_read_segment(v)) break;
                continue;
            }
            BatchPtr b = Batch::make();
            RecordHeader h;
            ReadStatus st = read_record(rfd, roff, v.end, *b, h);
            if (st == ReadStatus::ok && h.seq >= rseg) {
                const uint64_t at = roff;
                roff += kHeaderBytes + h.len;
                if (h.seq < next) continue;  // settled before the restart, or already handed out
                next = h.seq + 1;
                reads.push_back({h.seq, rseg, at, h.events, h.received_ns});
                out[k++] = std::move(b);
                continue;
            }
            skip_damaged(v.end, next);
        }
        return k;
    }

    // Moves roff past a damaged record: to the end of a range found at open, or to the next
    // record that reads whole.
    void skip_damaged(uint64_t end, uint64_t next) {
        auto known = std::find_if(rbad.begin(), rbad.end(), [&](auto& r) { return r.first == roff; });
        if (known != rbad.end()) {
            roff = known->second;
            return;
        }
        uint64_t skip_to = next_valid_record(rfd, roff + 1, end, next, *scratch);
        m.corrupted_records.add();
        log_limited(rl_corrupt, *log, spdlog::level::err, "disk buffer {}: {}: damaged record at offset {}: {} bytes skipped", o.dir,
                    path(rseg), roff, skip_to - roff);
        roff = skip_to;
    }

    // Records the new reads (reads[retried, end)) as in flight and the read position as `next`;
    // with nothing in flight, what was read past is settled.
    void note_handed_out(size_t retried, uint64_t next) {
        uint64_t replayed = 0;
        {
            std::lock_guard lk(mu);
            for (size_t i = retried; i < reads.size(); ++i) {
                const auto& r = reads[i];
                inflight.push_back({r.seq, r.seg, r.off, r.events, Inflight::out, 0, r.received_ns, {}});
                inflight_events += r.events;
                if (r.seq < replay_below) replayed += r.events;
            }
            read_seq = std::max(read_seq, next);
            if (inflight.empty() && read_seq > settled_seq) {
                settled_seq = read_seq;
                delete_settled_locked();
            }
            persist_locked();
        }
        if (replayed) m.replayed_events.add(replayed);
    }

    // Each batch handed out settles its record when the output is done with it.
    void attach_settle_acks(BatchPtr* out, size_t k) {
        uint64_t events = 0;
        for (size_t i = 0; i < k; ++i) {
            events += out[i]->size();
            uint64_t seq = reads[i].seq;
            out[i]->acks.push_back(
                make_outcome_ack([self = shared_from_this(), seq](const AckOutcome& r) { self->settle(seq, r.status, r.final, r.reason); }));
        }
        m.read_events.add(events);
    }

    // Reads a record handed out before, for a retry.
    bool reread(const Inflight& f, Batch& b) {
        int fd = f.seg == rseg && rfd >= 0 ? rfd : ::open(path(f.seg).c_str(), O_RDONLY | O_CLOEXEC);
        bool ok = false;
        if (fd >= 0) {
            RecordHeader h;
            ok = read_record(fd, f.off, UINT64_MAX / 2, b, h) == ReadStatus::ok && h.seq == f.seq;
            if (fd != rfd) ::close(fd);
        }
        if (!ok) {
            m.corrupted_records.add();
            log_limited(rl_corrupt, *log, spdlog::level::err, "disk buffer {}: {}: record at offset {} can no longer be read for a retry; skipped",
                        o.dir, path(f.seg), f.off);
        }
        return ok;
    }

    // ---- close ----

    uint64_t close() {
        {
            std::lock_guard lk(mu);
            if (closing) return kept;
            closing = true;
        }
        writer_cv.notify_all();
        reader_cv.notify_all();
        space_cv.notify_all();
        if (writer.joinable()) writer.join();
        std::lock_guard lk(mu);
        persist_locked();
        closed = true;
        if (o.sync != SyncMode::none && state_fd >= 0) ::fdatasync(state_fd);
        for (int* fd : {&wfd, &rfd, &state_fd, &lock_fd})
            if (*fd >= 0) {
                ::close(*fd);
                *fd = -1;
            }
        kept = unsettled_events;
        if (kept == 0 && inflight.empty()) {  // nothing to keep: leave an empty directory behind
            for (const auto& sg : segs) ::unlink(path(sg.first_seq).c_str());
            segs.clear();
            disk_bytes = 0;
        }
        return kept;
    }
};

DiskBuffer::DiskBuffer(DiskBufferOptions opts, std::shared_ptr<spdlog::logger> log, const BufferMetrics& metrics)
    : impl_(std::make_shared<Impl>(std::move(opts), std::move(log), metrics)) {
    try {
        impl_->open();
    } catch (...) {
        for (int fd : {impl_->wfd, impl_->state_fd, impl_->lock_fd})
            if (fd >= 0) ::close(fd);
        throw;
    }
}

DiskBuffer::~DiskBuffer() { close(); }

bool DiskBuffer::push(BatchPtr& b, const std::atomic<bool>& abort) {
    if (!b || b->empty()) return true;
    for (;;) {
        Impl::Admit a = impl_->offer(b);
        if (a != Impl::Admit::full) return a == Impl::Admit::taken;
        if (abort.load(std::memory_order_relaxed)) return false;
        std::unique_lock lk(impl_->mu);
        impl_->space_cv.wait_for(lk, std::chrono::milliseconds(5));
    }
}

bool DiskBuffer::try_push(BatchPtr& b) {
    if (!b || b->empty()) return true;
    return impl_->offer(b) == Impl::Admit::taken;
}

bool DiskBuffer::full() const { return impl_->full(); }

size_t DiskBuffer::pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) { return impl_->pop(out, n, timeout); }

uint64_t DiskBuffer::close() { return impl_->close(); }

uint64_t DiskBuffer::events() const {
    std::lock_guard lk(impl_->mu);
    return impl_->unsettled_events;
}

uint64_t DiskBuffer::bytes() const { return impl_->disk_bytes.load(); }

uint64_t DiskBuffer::waiting_events() const {
    std::lock_guard lk(impl_->mu);
    return impl_->pending_events + (impl_->unsettled_events - std::min(impl_->unsettled_events, impl_->inflight_events));
}

uint64_t DiskBuffer::pending_events() const {
    std::lock_guard lk(impl_->mu);
    return impl_->pending_events;
}

uint64_t DiskBuffer::max_bytes() const { return impl_->o.max_bytes; }

std::string DiskBuffer::error() const {
    std::lock_guard lk(impl_->mu);
    return impl_->error;
}

const std::string& DiskBuffer::dir() const { return impl_->o.dir; }

}  // namespace hbf::buffer
