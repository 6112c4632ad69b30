// The Forward protocol's frames (Fluentd's Forward protocol v1) -> events in a batch.
//
// A frame is one msgpack object that MsgpackScanner found complete:
//   Message                  [tag, time, record, option?]
//   Forward                  [tag, [[time, record], ...], option?]
//   PackedForward            [tag, bin|str holding concatenated [time, record] entries, option?]
//   CompressedPackedForward  the same with option compressed = "gzip" (one or more gzip members)
//   heartbeat                nil
// `time` is an integer, a float, an EventTime (ext type 0), or Fluent Bit's [time, {metadata}].
// Options read: chunk (answered by the server once the events are delivered), compressed;
// size and anything else (Fluent Bit's fluent_signal) are ignored.
// Each record (a map) becomes one JSON object with tag_field, time_field and metadata_field
// first; a record key of the same name as one of these is left out. A frame is all or nothing:
// on any error the batch is rolled back to where it was before the frame.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "../http/body.h"
#include "batch.h"
#include "forward/event_time.h"
#include "forward/scan.h"
#include "to_json.h"

namespace hbf::forward {

struct DecoderOptions {
    std::string tag_field, time_field, metadata_field;  // "" = off
    JsonStyle style;
    size_t max_frame = 64 << 20;  // also the limit on a frame's decompressed entries
};

struct Frame {
    enum class Kind { events, heartbeat, error } kind = Kind::events;
    size_t events = 0;
    bool has_chunk = false;
    std::string chunk;
    const char* error = "";
    std::string_view tag;
};

class ForwardDecoder {
public:
    explicit ForwardDecoder(DecoderOptions opts);
    // [p, p+n) is one complete scanned object. The returned frame is valid until the next call.
    const Frame& decode(const char* p, size_t n, Batch& out);

private:
    bool fail(const char* why);
    bool read_option(const char* p);
    bool entries(const char* p, bool message, Batch& out);
    bool entries_packed(const char* p, size_t n, Batch& out);
    bool entry(const char*& p, Batch& out);
    bool event(const EventTime& t, const char* meta, const char*& record, Batch& out);

    DecoderOptions o_;
    std::string tag_key_, time_key_, meta_key_;  // "tag": with quotes and colon
    Frame f_;
    bool gzip_ = false;
    std::string tag_json_, inflated_;
    http::Inflater inflater_;
    MsgpackScanner inner_;
};

}  // namespace hbf::forward
