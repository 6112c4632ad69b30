// The queue in front of an output: memory (BatchQueue) or, with `buffer = { type = "disk" }`, a
// DiskQueue over a DiskBuffer in <data_dir>/buffer/<output name>/.
//
// The runtime sees only BatchQueue: it open()s the queue before the output starts, pops from it
// on the output's thread and close()s it after the output flushed. A disk queue differs where it
// matters: a pushed batch's acks settle once it is on disk (so upstream acknowledgements mean "on
// disk"), after push() returned; a batch popped from it settles its record only when the output releases it; and once
// the runtime is stopping and its upstream stages finished, it hands out nothing more: what the
// output has not settled stays on disk for the next start instead of waiting for a peer.
#pragma once

#include <atomic>
#include <memory>

#include "buffer/disk_buffer.h"
#include "config.h"
#include "queue.h"
#include "stage.h"

namespace hbf::buffer {

class DiskQueue final : public BatchQueue {
public:
    DiskQueue(DiskBufferOptions opts, StageContext& ctx, const std::atomic<bool>& stopping);
    ~DiskQueue() override;

    void open() override;
    void close() override;
    bool on_disk() const override { return true; }
    bool push(BatchPtr& b, const std::atomic<bool>& abort) override;
    size_t pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) override;
    // Events not yet handed to the output; bytes of the buffer's files.
    int64_t events() const override;
    int64_t bytes() const override;
    bool full() const override;
    std::string describe_json() const override;

private:
    bool draining_stopped() const { return stopping_.load(std::memory_order_relaxed) && producers() == 0; }

    DiskBufferOptions opts_;
    StageContext& ctx_;
    const std::atomic<bool>& stopping_;
    std::unique_ptr<DiskBuffer> buf_;
    // buf_ once open() made it, for the producers' threads: a reload may wire an output's new
    // version before its old version let go of the directory and it could open().
    std::atomic<DiskBuffer*> open_{nullptr};
    bool closed_ = false;
};

// A memory-buffered output's queue when its directory <data_dir>/buffer/<output name>/ still
// holds segments: the output's buffer was set back to memory, by a reload or between two runs.
// New events queue in memory as usual; pop() hands out the backlog first, oldest first, beside
// them, and once every record of it is settled the directory is removed. Until the output's old
// disk-buffered version let go of the directory (a reload: it drains to its peer for up to the
// shutdown timeout first), pop() retries opening it. At shutdown what is left stays on disk, as
// in a disk buffer. events(), full() and the queue's budget count the memory part only.
class BacklogQueue final : public BatchQueue {
public:
    BacklogQueue(const ServiceConfig& service, std::string dir, StageContext& ctx, const std::atomic<bool>& stopping);
    ~BacklogQueue() override;

    void open() override;
    void close() override;
    bool on_disk() const override { return true; }
    size_t pop(BatchPtr* out, size_t n, std::chrono::microseconds timeout) override;
    std::string describe_json() const override;

private:
    void try_open_backlog();
    void finish_backlog();

    std::string dir_;
    StageContext& ctx_;
    const std::atomic<bool>& stopping_;
    std::unique_ptr<DiskBuffer> backlog_;       // the consumer's; kept after close for describe_json()
    std::atomic<DiskBuffer*> open_{nullptr};    // backlog_ while it is open and being drained
    std::atomic<bool> finished_{false};
    std::chrono::steady_clock::time_point next_try_{};
    bool held_logged_ = false;
    RateLimit open_rl_;
};

// True when `dir` holds segment files (a disk buffer with records, or an empty open one).
bool has_segments(const std::string& dir);

// Warns about each directory under <data_dir>/buffer/ that holds segments but belongs to no
// output of `cfg` (a renamed or removed output): its events are not sent. A memory-buffered
// output of that name drains it (BacklogQueue).
void warn_unused_buffers(const PipelineConfig& cfg);

// The queue an output (or filter) declared: memory unless its `buffer` says disk.
std::unique_ptr<BatchQueue> make_queue(const ServiceConfig& service, const StageDecl& decl, StageContext& ctx,
                                       const std::atomic<bool>& stopping);

}  // namespace hbf::buffer
