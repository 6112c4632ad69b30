// libFuzzer target: the forward input's frame reading, as a connection sees it. The first byte
// picks how the rest is cut into reads (the scanner must resume across any cut) and the decoder
// options; the rest is the byte stream. Checked besides "no crash": a refused frame leaves the
// batch as it was, an accepted one adds exactly the counted events, each a valid JSON object;
// the handshake and ack parsers accept or refuse every complete object without reading past it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../../stages/inputs/forward/decoder.h"
#include "forward/handshake.h"
#include "json_util.h"

using namespace hbf;
using namespace hbf::forward;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    const std::string stream(reinterpret_cast<const char*>(data + 1), size - 1);
    DecoderOptions o;
    if (mode & 1) o.tag_field = "tag";
    if (mode & 2) o.time_field = "time";
    if (mode & 4) o.metadata_field = "meta";
    o.style.bin_base64 = mode & 8;
    o.max_frame = 1 << 16;
    static simdjson::ondemand::parser parser;
    ForwardDecoder dec(o);
    MsgpackScanner scanner(o.max_frame);
    BatchPtr b = Batch::make();
    const size_t step = (mode >> 4) + 1;  // bytes that arrive per read
    size_t start = 0, have = 0;
    while (have < stream.size()) {
        have = std::min(stream.size(), have + step);
        for (;;) {
            Scan s = scanner.scan(stream.data() + start, have - start);
            if (s == Scan::incomplete) break;
            if (s == Scan::error) return 0;  // the connection would close here
            const size_t n = scanner.size();
            // Copy the frame alone so that any read past its end is caught by ASan.
            std::string frame(stream.data() + start, n);
            const size_t events0 = b->size(), bytes0 = b->bytes();
            const Frame& f = dec.decode(frame.data(), n, *b);
            if (f.kind == Frame::Kind::error && (b->size() != events0 || b->bytes() != bytes0)) std::abort();
            if (f.kind == Frame::Kind::events && b->size() != events0 + f.events) std::abort();
            for (size_t i = events0; i < b->size(); ++i) {
                auto ev = b->event(i);
                if (!check_object(parser, ev.data(), ev.size(), b->capacity_after(i)).ok) std::abort();
            }
            Ping ping;
            std::string chunk;
            Helo helo;
            Pong pong;
            (void)parse_ping(frame.data(), ping);
            (void)parse_ack_reply(frame.data(), chunk);
            (void)parse_helo(frame.data(), helo);
            (void)parse_pong(frame.data(), pong);
            start += n;
            scanner.reset();
        }
    }
    return 0;
}
