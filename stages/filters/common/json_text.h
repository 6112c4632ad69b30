// Validating JSON text held in a string member (fields' parse_json) in the same pass that copies it.
//
// simdjson needs a padded copy and has a per-document setup cost that dominates on the short texts
// HealthBot puts in its keys ("[\"edge-intf\"]"); this recursive-descent pass checks RFC 8259's
// grammar while it writes the compact form, so the text is read once.
#pragma once

#include <string>
#include <string_view>

namespace hbf::filters {

// Appends `s`, exactly one JSON value with optional whitespace around and between its tokens, without
// that whitespace. Returns false (and leaves `out` as it was) when `s` is not one valid JSON value:
// a broken token, a control character or a bad escape in a string, an unpaired surrogate escape,
// trailing content, or nesting deeper than 256. `s` must be valid UTF-8 (strings simdjson unescaped are).
bool append_json_value_compact(std::string& out, std::string_view s);

}  // namespace hbf::filters
