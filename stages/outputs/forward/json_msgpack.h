// JSON text -> msgpack, read with simdjson On-Demand and written with msgpuck (no DOM).
//
// Objects become maps and arrays arrays; a container's element count is not known until its
// end, so a one-byte header is written first and widened in place when it holds more than 15.
// Integers keep their type (int64 or uint64); a number too large for 64 bits is written as a
// double; strings are unescaped.
#pragma once

#include <simdjson.h>
#include <string>

namespace hbf::forward {

// Appends the msgpack form of `v`. False (with `out` partially written) on invalid JSON.
bool json_to_msgpack(simdjson::ondemand::value v, std::string& out);
// The same for a whole document, which must be an object.
bool json_object_to_msgpack(simdjson::ondemand::document& doc, std::string& out);

}  // namespace hbf::forward
