// Forward protocol times: EventTime (msgpack ext type 0: big-endian seconds and nanoseconds)
// and RFC 3339 text with nanoseconds, as the time_field of an event.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hbf::forward {

struct EventTime {
    int64_t sec = 0;
    uint32_t nsec = 0;
};

// Appends "2026-11-29T14:46:52.123456789Z".
void append_rfc3339(std::string& out, EventTime t);
// Parses RFC 3339 ("2026-11-29T14:46:52Z", "...52.5+02:00"); false when it is not one.
bool parse_rfc3339(std::string_view s, EventTime& t);
// Writes the 10 bytes of an EventTime as msgpack fixext 8 (0xd7 0x00 sec nsec).
char* encode_event_time(char* p, EventTime t);

}  // namespace hbf::forward
