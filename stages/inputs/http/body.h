// The http input's body handling: from a request body to events appended to a batch.
//
// A body is one JSON object, a JSON array of objects, or NDJSON (one object a line). It is
// validated completely before anything is kept: on any error the batch is rolled back to where
// it was and the error carries the byte offset in the (decoded) body. Each valid event is
// appended compacted, with `extra` (",\"path\":\"/hb\"" and the like) spliced before its brace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <simdjson.h>
#include <zlib.h>

#include "batch.h"
#include "json_util.h"

namespace hbf::http {

enum class BodyFormat { json, ndjson };

// application/x-ndjson (and its aliases) -> ndjson; anything else is read as JSON.
BodyFormat format_of(std::string_view content_type);

enum class Encoding { identity, gzip, unsupported };
Encoding encoding_of(std::string_view content_encoding);

struct BodyResult {
    bool ok = true;
    size_t events = 0;
    size_t offset = 0;       // of the error, in the body
    const char* message = "";
};

// Two parsers: one walks an array, the other checks each element in place.
struct BodyParsers {
    simdjson::ondemand::parser outer;
    ObjectChecker inner;
};

// [p, p+len) must be readable up to p + capacity (capacity >= len + SIMDJSON_PADDING).
BodyResult append_events(BodyParsers& ps, const char* p, size_t len, size_t capacity, BodyFormat fmt,
                         std::string_view extra, Batch& out);

// Decompresses gzip or zlib data into out (which keeps SIMDJSON_PADDING spare capacity).
// Returns 0 on success, 1 when the result would exceed `limit`, 2 for corrupt data.
class Inflater {
public:
    Inflater();
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;
    int inflate(std::string_view in, size_t limit, std::string& out);

private:
    z_stream zs_{};
};

// "user:pass" -> base64, for comparing Basic credentials without decoding them.
std::string base64(std::string_view s);

// Case-insensitive ASCII comparison.
bool iequals(std::string_view a, std::string_view b);

}  // namespace hbf::http
