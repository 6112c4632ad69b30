// The http output's request bodies: events from a batch's JSON text to ndjson, a JSON array,
// Elasticsearch bulk or Splunk HEC, then compressed. Nothing is parsed into a DOM: events are
// copied as they are, with framing around them (an action line, an HEC envelope). Only Splunk's
// time_field reads one field of each event, with simdjson On-Demand in place.
//
// One BodyBuilder per output, used by one thread; its buffers and compression contexts are
// reused, so building a body allocates nothing in steady state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace hbf::httpout {

enum class Format { ndjson, json_array, elasticsearch_bulk, splunk_hec };
enum class Compression { none, gzip, zstd };

bool parse_format(std::string_view s, Format& out);
bool parse_compression(std::string_view s, Compression& out);
const char* content_type(Format f);
const char* content_encoding(Compression c);  // nullptr for none

struct BodyOptions {
    Format format = Format::ndjson;
    std::string es_index = "hbforward";  // strftime pattern, expanded with the receive time in UTC
    std::string es_action = "index";     // index | create
    std::string hec_sourcetype, hec_index, hec_source, hec_host;
    std::string hec_time_field;          // "" = the receive time
};

// Appends events one at a time, then closes the body.
class BodyBuilder {
public:
    explicit BodyBuilder(BodyOptions o);
    ~BodyBuilder();
    BodyBuilder(const BodyBuilder&) = delete;
    BodyBuilder& operator=(const BodyBuilder&) = delete;

    // Starts a new body in `out` (cleared).
    void begin(std::string& out);
    // Appends one event. `capacity` is the readable size from ev.data() (simdjson padding) and
    // `received_ns` the batch's receive time (wall clock).
    void add(std::string& out, std::string_view ev, size_t capacity, int64_t received_ns);
    // Closes the body (a JSON array's bracket).
    void end(std::string& out);
    // Bytes of framing an event adds besides its text (an estimate for max_bytes).
    size_t overhead() const;

private:
    void es_action_line(std::string& out, int64_t received_ns);
    void hec_envelope(std::string& out, std::string_view ev, size_t capacity, int64_t received_ns);

    BodyOptions o_;
    bool first_ = true;
    int64_t index_second_ = INT64_MIN;  // the receive second es_line_ was expanded for
    std::string es_line_;               // {"index":{"_index":"..."}}\n
    std::string hec_static_;            // ,"sourcetype":"...",... (after the time)
    simdjson::ondemand::parser parser_;
};

// Reads the epoch time of a JSON value: a number (seconds; milliseconds or microseconds when it
// is too large to be seconds) or an RFC 3339 string. False when it is neither.
bool epoch_seconds(std::string_view json_value, double& out);
// RFC 3339 ("2026-11-29T14:00:00.5Z", "...+01:00") to epoch seconds.
bool parse_rfc3339(std::string_view s, double& out);

// Compresses into `out` (cleared) with a kept context; level 0 = gzip 1, zstd 3.
class Compressor {
public:
    Compressor(Compression c, int level);
    ~Compressor();
    Compressor(const Compressor&) = delete;
    Compressor& operator=(const Compressor&) = delete;
    Compression kind() const { return c_; }
    void compress(std::string_view in, std::string& out);

private:
    Compression c_;
    int level_;
    void* z_ = nullptr;     // z_stream
    void* zstd_ = nullptr;  // ZSTD_CCtx
};

}  // namespace hbf::httpout
