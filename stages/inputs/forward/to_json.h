// msgpack -> JSON text, written straight into an event buffer (no intermediate DOM).
//
// Only for objects MsgpackScanner accepted (complete, bounded, at most 64 levels deep), so the
// recursion and msgpuck's unchecked decoders are safe. Choices, documented in the README:
// strings with invalid UTF-8 get U+FFFD for each bad sequence; bin is written as a string
// (Fluentd and Fluent Bit read it so; old clients send text as bin) or, with binary = "base64",
// as base64; integers exactly (uint64 too); floats in their shortest round-trip form, NaN and
// infinities as null; an EventTime extension as RFC 3339 text, any other extension as the
// base64 of its data; map keys that are not strings as the JSON text of the key, quoted.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hbf::forward {

struct JsonStyle {
    bool bin_base64 = false;
};

// Writes the value at p as JSON and advances p past it. in_key: the value is (part of) a map key
// that is not a string; a map or array key inside it is then written as "[map]" / "[array]".
void write_json(const char*& p, std::string& out, const JsonStyle& style, bool in_key = false);
// Writes a map key at p as a JSON string (a key that is not a string: its JSON text, quoted).
void write_json_key(const char*& p, std::string& out, const JsonStyle& style, bool in_key = false);
// Writes s as a JSON string literal (quotes, escapes, invalid UTF-8 replaced).
void write_json_string(std::string& out, const char* s, size_t n);
void write_base64(std::string& out, const char* s, size_t n);
// True when the msgpack value at p is a string or bin equal to `s` (p is not advanced).
bool msgpack_str_equals(const char* p, std::string_view s);

}  // namespace hbf::forward
