// The syslog input's message parser: one RFC 5424 or RFC 3164 (BSD) message to one JSON event.
//
// The format is detected per message: "<PRI>1 " is RFC 5424, any other "<PRI>" is RFC 3164.
// The event is written straight into the batch's buffer (no intermediate strings):
//   {"facility":"local4","severity":"notice","timestamp":"2026-11-29T15:00:00.123+01:00",
//    "hostname":"mx1","app_name":"rpd","procid":"1234","msgid":"SNMP_TRAP_LINK_DOWN",
//    "structured_data":{"junos@2636.1.1.1.2.57":{"snmp-interface-index":"545"}},"message":"..."}
// Fields a message does not carry (5424's "-") are left out. A message without a valid PRI, or
// whose 5424 header is malformed, becomes {"message": <raw text>, "parse_error": "..."}.
// Text that is not valid UTF-8 has its bad bytes replaced by U+FFFD, so every event is valid JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "batch.h"

namespace hbf::syslog {

struct ParserOptions {
    // RFC 3164 timestamps carry neither zone nor year: read them in this zone.
    bool local_zone = true;      // the forwarder's local zone (TZ)
    int32_t fixed_offset_s = 0;  // when !local_zone: seconds east of UTC
};

// Parses "+01:00", "-05:30", "UTC", "Z" or "local" (the process's zone). False otherwise.
bool parse_timezone(std::string_view s, ParserOptions& o);

class Parser {
public:
    explicit Parser(ParserOptions o = {}) : o_(o) {}

    // Appends one event for `msg` (framing removed). `received_ns` (wall clock) supplies RFC 3164's
    // year. Returns false when the message could not be parsed (the event then carries parse_error).
    bool parse(std::string_view msg, int64_t received_ns, Batch& out);

    // The parse error of the last message that failed.
    const char* last_error() const { return error_; }

private:
    bool parse_5424(std::string_view s, int pri, Batch& out);
    bool parse_3164(std::string_view s, int pri, int64_t received_ns, Batch& out);
    // Appends the timestamp of an RFC 3164 message (its own, else the receive time); returns the
    // position after it.
    size_t put_timestamp_3164(std::string_view s, int64_t received_ns, std::string& b);
    void pri_fields(std::string& b, int pri);
    void raw_event(std::string_view msg, const char* why, Batch& out);
    // Seconds east of UTC for a local civil time, cached per hour.
    int32_t local_offset(int year, int month, int day, int hour);

    ParserOptions o_;
    const char* error_ = "";
    std::string scratch_;
    int64_t cached_hour_key_ = -1;
    int32_t cached_offset_ = 0;
};

// Appends s as a JSON string (quotes included), escaping as JSON requires and replacing bytes that
// are not UTF-8 with U+FFFD.
void append_json_text(std::string& out, std::string_view s);

}  // namespace hbf::syslog
