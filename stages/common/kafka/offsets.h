// The kafka input's offset tracking for one partition, apart from librdkafka so it can be tested
// alone. Batches take the partition's messages in order; their acks settle in any order. Each
// batch opens a segment ending at its last offset + 1; the offset to store is the end of the
// longest settled prefix, so an offset is stored only when it and everything before it settled.
// Not thread safe: the kafka input guards it with its tracker's mutex.
#pragma once

#include <cstdint>
#include <deque>

namespace hbf::kafka {

class OffsetTracker {
public:
    struct Ticket {
        uint64_t generation, seq;
    };

    // A batch holds this partition's messages up to next_offset - 1.
    Ticket open(int64_t next_offset) {
        segs_.push_back({next_seq_, next_offset, false});
        return {generation_, next_seq_++};
    }

    // The batch of `t` settled. Returns the offset to store now, or -1 while an earlier batch is
    // still open (or when the ticket is from before a reset, or settled already).
    int64_t settle(Ticket t) {
        if (t.generation != generation_ || segs_.empty() || t.seq < segs_.front().seq) return -1;
        size_t i = size_t(t.seq - segs_.front().seq);
        if (i >= segs_.size()) return -1;
        segs_[i].settled = true;
        int64_t store = -1;
        while (!segs_.empty() && segs_.front().settled) {
            store = segs_.front().next_offset;
            segs_.pop_front();
        }
        return store;
    }

    // The partition was revoked: tickets opened before no longer count.
    void reset() {
        ++generation_;
        segs_.clear();
    }

    size_t open_batches() const { return segs_.size(); }

private:
    struct Segment {
        uint64_t seq;
        int64_t next_offset;
        bool settled;
    };
    std::deque<Segment> segs_;
    uint64_t next_seq_ = 0, generation_ = 0;
};

}  // namespace hbf::kafka
