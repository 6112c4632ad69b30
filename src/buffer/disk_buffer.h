// A disk buffer: an output's input queue kept on disk, so accepted events survive kill -9, a
// restart and a long outage of the output's peer.
//
// Layout of its directory: `lock` (flock'ed while open: one process per buffer), `state` (the
// settled position), and segments `<first seq, 20 digits>.seg`, each an append-only run of
// records (record.h), one per batch.
//
// Threads: producers (any number) call push()/try_push(), which take the batch into memory and
// return without waiting for the disk. With sync = batch one writer thread takes everything
// pushed so far and group-commits it: one write() per segment touched and one fdatasync, then
// releases the batches, which settles their acks upstream (the webhook answers then); what is
// pushed during a sync waits for the next one. With sync = none or an interval a producer writes
// what is pending itself (no sync to wait for). One consumer
// calls pop(): batches read back from disk into pooled, padded Batch buffers, each carrying an
// ack hold whose release settles its record. A record settled `failed` is handed out again after
// a pause (a peer that timed out is not "failed for good"), unless the output marked the failure
// final (ack.h: the peer refused the events), which removes it, counted and logged, like any
// other outcome. The
// settled position (the first record not settled) is kept in `state`; a segment whose records
// are all settled is deleted.
//
// At open: a record cut short at the end of the newest segment (a crash mid-write) is truncated;
// a damaged record elsewhere is skipped, counted and logged with its file and offset.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "batch.h"
#include "metrics.h"

namespace hbf::buffer {

enum class WhenFull { block, drop_newest };
enum class SyncMode { batch, interval, none };

struct DiskBufferOptions {
    std::string dir;
    uint64_t max_bytes = 256u << 20;         // bytes of segment files plus what waits for the writer
    WhenFull when_full = WhenFull::block;
    SyncMode sync = SyncMode::batch;
    std::chrono::nanoseconds sync_interval{0};  // with SyncMode::interval
    uint64_t segment_bytes = 0;              // 0: max_bytes / 8, between 1 MiB and 64 MiB
    uint64_t pending_bytes = 8u << 20;       // most bytes waiting in memory for the writer
    std::chrono::nanoseconds retry_after = std::chrono::seconds(1);  // first pause before a failed record is handed out again
    // Called by the writer with the error when a write fails, and with "" when writes succeed again.
    std::function<void(const std::string&)> on_error;
    // Test hook: called before each write(); a non-zero errno fails that write as if the
    // kernel returned it (ENOSPC for a full disk).
    std::function<int()> inject_write_error;
};

// Parses "batch" | "none" | a duration ("100ms"); returns false on anything else.
bool parse_sync(const std::string& text, SyncMode& mode, std::chrono::nanoseconds& interval);

// hbf_buffer_* series, labelled {stage, type} like the other per-stage metrics.
struct BufferMetrics {
    BufferMetrics(const std::string& stage, const std::string& type);
    Gauge& events;          // events written and not yet settled
    Gauge& bytes;           // bytes of segment files on disk
    Gauge& max_bytes;
    Gauge& oldest_age_ms;   // shown in seconds
    Counter& written_events;
    Counter& read_events;
    Counter& dropped_events;    // when_full = drop_newest
    Counter& failed_events;     // failed for good by the output, removed
    Counter& replayed_events;   // handed out before a restart, handed out again after it
    Counter& corrupted_records;
    Counter& syncs;             // fdatasync calls
    Counter& write_errors;
};

class DiskBuffer {
public:
    // Creates the directory if needed, takes its lock and recovers what it holds. Throws
    // std::runtime_error naming the path when the directory cannot be used.
    DiskBuffer(DiskBufferOptions opts, std::shared_ptr<spdlog::logger> log, const BufferMetrics& metrics);
    // close()s if that was not done.
    ~DiskBuffer();
    DiskBuffer(const DiskBuffer&) = delete;
    DiskBuffer& operator=(const DiskBuffer&) = delete;

    // Producers. Both take the batch and return without waiting for the disk: its acks settle
    // once it is written (and, with sync = batch, synced), or `failed` if it cannot be written by
    // close(). push() blocks while the buffer is full (when_full = block) and returns false,
    // keeping the batch, only if `abort` becomes true. try_push() returns false at once when
    // full. With when_full = drop_newest both take the batch and, when full, drop it (counted, its
    // acks settle `dropped`).
    bool push(BatchPtr& b, const std::atomic<bool>& abort);
    bool try_push(BatchPtr& b);
    bool full() const;

    // The consumer: waits up to `timeout`, then returns how many batches were put in out[0..n).
    size_t pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout);

    // Writes what is pending, syncs (unless sync = none), keeps the rest for the next open.
    // Returns how many events stay in the buffer. Producers and pop() get nothing afterwards.
    uint64_t close();

    // Events written and not settled (including those handed out), and bytes on disk.
    uint64_t events() const;
    uint64_t bytes() const;
    uint64_t max_bytes() const;
    // Events not handed out yet: waiting for the writer, or on disk and unread.
    uint64_t waiting_events() const;
    // Events waiting for the writer.
    uint64_t pending_events() const;
    // The writer's last error ("" when writes succeed): a full disk, an I/O error.
    std::string error() const;
    const std::string& dir() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;  // settle callbacks hold it too: an output may outlive the buffer
};

}  // namespace hbf::buffer
