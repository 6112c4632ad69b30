// libFuzzer target: the condition language of select/route. The input's first line is the
// condition; the rest, if any, is an event it is evaluated on (default: a HealthBot notification).
#include <cstdint>
#include <string>

#include "../../stages/filters/common/condition.h"

using namespace hbf::filters;

namespace {
const std::string kEvent =
    R"({"device-id": "mx304-pe1.fra", "group": "edge-pe", "keys": {"_instance_id": "[\"pe-intf\"]", "interface-name": "et-0/0/3"}, )"
    R"("message": "caf\u00e9 \"q\" \\", "severity": "major", "rtt": 48.5, "hops": [{"rtt": 3}, {"rtt": 41}], "up": false, "note": null})";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    size_t nl = in.find('\n');
    std::string_view text = in.substr(0, nl);
    std::string event = nl == std::string_view::npos ? kEvent : std::string(in.substr(nl + 1));
    FieldReader reader;
    try {
        Condition c(text, reader);
        simdjson::ondemand::parser p;
        size_t len = event.size();
        event.reserve(len + simdjson::SIMDJSON_PADDING);
        reader.read(p, event.data(), len, event.capacity());
        (void)c.eval(reader);
    } catch (const ConditionError&) {
    }
    return 0;
}
