// A batch: the unit that crosses threads.
//
// Events are JSON objects kept as text in one buffer, each followed by '\n', so a dense batch is
// already NDJSON and a file output writes it with one call. `events` holds each event's offset and
// length (without the newline). The buffer always keeps SIMDJSON_PADDING bytes of spare capacity
// past its end, so simdjson On-Demand parses any event in place, without a copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ack.h"

namespace hbf {

struct EventRef {
    uint32_t off;
    uint32_t len;
};

class Batch;
struct BatchRecycler {
    void operator()(Batch* b) const noexcept;
};
using BatchPtr = std::unique_ptr<Batch, BatchRecycler>;

class Batch {
public:
    static constexpr size_t kPadding = 64;  // >= SIMDJSON_PADDING

    // From a per-process pool: buffers keep their capacity between uses.
    static BatchPtr make();

    size_t size() const { return events.size(); }
    bool empty() const { return events.empty(); }
    size_t bytes() const { return buf.size(); }
    std::string_view event(size_t i) const { return {buf.data() + events[i].off, events[i].len}; }

    // Appends one event's text and its newline.
    void append(std::string_view text) {
        reserve_more(text.size() + 1);
        events.push_back({static_cast<uint32_t>(buf.size()), static_cast<uint32_t>(text.size())});
        buf.append(text);
        buf.push_back('\n');
    }
    // Makes room for `n` more bytes plus the parsing padding.
    void reserve_more(size_t n) {
        if (buf.capacity() < buf.size() + n + kPadding) buf.reserve((buf.size() + n + kPadding) * 3 / 2);
    }
    // Starts an event written piecewise into buf; finish_event() closes it.
    void begin_event() { reserve_more(0); pending_off_ = buf.size(); }
    void finish_event() {
        events.push_back({static_cast<uint32_t>(pending_off_), static_cast<uint32_t>(buf.size() - pending_off_)});
        buf.push_back('\n');
        reserve_more(0);
    }
    void cancel_event() { buf.resize(pending_off_); }

    // True when the events cover the buffer back to back, in order (one write() for a file).
    bool dense() const;
    // Bytes available after the event for simdjson: the rest of the allocation.
    size_t capacity_after(size_t i) const { return buf.capacity() - events[i].off; }

    // A copy for a second consumer (fan-out): its own buffer, a clone of every ack hold.
    BatchPtr clone() const;
    // Moves the ack holds and timestamps of `from` into this batch (a filter that rebuilt it).
    void take_acks_from(Batch& from);
    // Records an outcome for every hold and settles them: an output marks what it wrote
    // delivered, a filter marks what it discarded dropped. A batch released without a mark
    // reports failed (see ack.h).
    void mark(AckStatus s, const std::string& reason = {});
    // Marks every hold failed for good: the peer refused the events, sending them again would
    // not help (a disk buffer removes them instead of retrying).
    void mark_failed_for_good(const std::string& reason);
    // Settles and removes the holds that ask only for the batch to be queued (AckLevel::accepted):
    // a queue calls it once it took the batch. Cheap when there are none.
    void settle_accepted();

    void clear();

    std::string buf;
    std::vector<EventRef> events;
    std::vector<AckRef> acks;
    int64_t received_ns = 0;  // wall clock when the input took it (enrich's received_at)
    // Every event is a JSON object already validated completely and written compact (the http
    // input sets it): the json filter passes such a batch on without parsing it again. A stage
    // that rewrites events into a new batch leaves it false; clear() resets it.
    bool compact_json = false;

private:
    size_t pending_off_ = 0;
};

int64_t now_ns();       // CLOCK_REALTIME
int64_t mono_ns();      // CLOCK_MONOTONIC

}  // namespace hbf
