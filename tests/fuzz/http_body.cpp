// libFuzzer target: the http input's body parser (object, array, NDJSON; gzip/zlib decoding).
// The first byte picks the format, the encoding and the spliced members; the rest is the body.
// Checked besides "no crash": a refused body leaves the batch as it was, an accepted one holds
// exactly the counted events, each a JSON object; and the DOM pass that validates (ObjectChecker)
// gives the On-Demand walk's verdict, offset and message on the whole body, as the one pass of
// append_compact_if_valid gives its verdict and append_compact's text.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../../stages/inputs/http/body.h"

using namespace hbf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    static http::BodyParsers parsers;
    static http::Inflater inflater;
    static std::string inflated;

    std::string padded;
    const char* p = body.data();
    size_t len = body.size();
    if (mode & 2) {
        if (inflater.inflate(body, 1 << 20, inflated) != 0) return 0;
        p = inflated.data();
        len = inflated.size();
        if (inflated.capacity() < len + simdjson::SIMDJSON_PADDING) std::abort();  // inflate's contract
    } else {
        padded.reserve(len + simdjson::SIMDJSON_PADDING);
        padded.assign(body);
        p = padded.data();
    }
    const size_t cap = len + simdjson::SIMDJSON_PADDING;
    const auto fmt = (mode & 1) ? http::BodyFormat::ndjson : http::BodyFormat::json;
    const std::string_view extra = (mode & 4) ? std::string_view(",\"path\":\"/hb\"") : std::string_view();

    static ObjectChecker fast;
    static simdjson::ondemand::parser walk;
    const JsonCheck fc = fast.check(p, len, cap), wc = check_object(walk, p, len, cap);
    if (fc.ok != wc.ok || fc.offset != wc.offset || std::strcmp(fc.message, wc.message) != 0) std::abort();
    // The one pass (stage 1 and a walk of its indexes) gives the same verdict and append_compact's text.
    static std::string one, two;
    one.assign("x");
    two.assign("x");
    const JsonCheck oc = fast.append_compact_if_valid(one, p, len, cap);
    if (oc.ok != wc.ok || oc.offset != wc.offset || std::strcmp(oc.message, wc.message) != 0) std::abort();
    if (wc.ok) append_compact(two, std::string_view(p, len));
    if (one != two) std::abort();

    BatchPtr b = Batch::make();
    b->append(R"({"before":1})");
    http::BodyResult r = http::append_events(parsers, p, len, cap, fmt, extra, *b);
    if (!r.ok) {
        if (b->size() != 1 || b->event(0) != R"({"before":1})") std::abort();  // not rolled back
        if (r.offset > len) std::abort();
        return 0;
    }
    if (b->size() != 1 + r.events) std::abort();
    for (size_t i = 1; i < b->size(); ++i) {
        std::string_view e = b->event(i);
        if (e.size() < 2 || e.front() != '{' || e.back() != '}') std::abort();
    }
    return 0;
}
