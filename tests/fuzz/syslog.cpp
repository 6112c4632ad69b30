// libFuzzer target: the syslog input's TCP framer and message parser (stages/inputs/syslog/).
// The first byte picks how the rest is fed: as one message (a UDP datagram), or as a TCP stream
// cut into two reads at a point it gives. Checked besides "no crash": the framer uses no byte
// it was not given, every message becomes exactly one event, and every event is one valid JSON
// object (whatever bytes came in: bad UTF-8, control characters, broken structured data).
#include <cstdint>
#include <cstdlib>
#include <string>

#include <simdjson.h>

#include "../../stages/inputs/syslog/framing.h"
#include "../../stages/inputs/syslog/parser.h"

using namespace hbf;

namespace {
simdjson::dom::parser json;
syslog::Parser parser(syslog::ParserOptions{false, 3600});

void parse_one(std::string_view m, Batch& b) {
    size_t before = b.size();
    parser.parse(m, 1795960800LL * 1000000000, b);
    if (b.size() != before + 1) std::abort();
    std::string ev(b.event(before));
    simdjson::dom::element e;
    if (json.parse(ev).get(e) != simdjson::SUCCESS || !e.is_object()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    BatchPtr b = Batch::make();
    if (mode & 1) {
        parse_one(rest, *b);
        return 0;
    }
    syslog::Framer framer(64 + (mode >> 2) * 16);
    size_t cut = rest.empty() ? 0 : (size_t(mode) * 7919) % (rest.size() + 1);
    std::string held(rest.substr(0, cut));
    auto feed = [&](bool eof) {
        size_t used = framer.feed(held.data(), held.size(), eof, [&](std::string_view m) {
            if (m.data() < held.data() || m.data() + m.size() > held.data() + held.size()) std::abort();
            parse_one(m, *b);
        }, [](const char*) {});
        if (used > held.size()) std::abort();
        held.erase(0, used);
    };
    feed(false);
    held.append(rest.substr(cut));
    feed(true);
    return 0;
}
