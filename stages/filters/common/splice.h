// Adding members to an object event without parsing it, as enrich, lookup and dedupe do: copy
// the event's text up to its closing brace (or a copy of it without the members being replaced),
// append the new members, a comma first unless the object has none, then close it.
//
//   size_t close = object_close(ev);                 // npos: not an object, pass it on unchanged
//   MemberSplice s(out);                             // begins an event in batch `out`
//   s.head(ev.substr(0, close));                     // or copy_object_without(..., s.buf(), ...)
//   s.member("\"site\"", "\"AMS1\"");               // or s.members(R"("a":1,"b":2)")
//   s.finish(ev.substr(close));                      // the brace and whatever follows it
#pragma once

#include <simdjson.h>
#include <string>
#include <string_view>

#include "batch.h"
#include "json_util.h"

namespace hbf::filters {

// Where an object event's closing brace is: npos when the text does not start with '{' or has no '}'.
inline size_t object_close(std::string_view ev) {
    if (ev.empty() || ev.front() != '{') return std::string_view::npos;
    return ev.rfind('}');
}

class MemberSplice {
public:
    explicit MemberSplice(Batch& out) : out_(out) { out_.begin_event(); }
    MemberSplice(const MemberSplice&) = delete;
    MemberSplice& operator=(const MemberSplice&) = delete;

    // Where the object's head goes before the first member() or members().
    std::string& buf() { return out_.buf; }
    // Appends the object's head, its text up to the closing brace, and notes from that text
    // whether it has a member. separate() would look back in the output instead, reading bytes
    // just written by memmove's string instructions: that load waited for the copy to retire and
    // was 43% of enrich's time per webhook request (perf annotate).
    void head(std::string_view text) {
        out_.buf.append(text);
        has_member_ = holds_member(text);
        head_known_ = true;
    }
    // Appends "name":value; `quoted_name` and `value` are JSON text.
    void member(std::string_view quoted_name, std::string_view value) {
        separate();
        out_.buf.append(quoted_name);
        out_.buf.push_back(':');
        out_.buf.append(value);
    }
    // Appends members already written as JSON text: "a":1,"b":2.
    void members(std::string_view text) {
        separate();
        out_.buf.append(text);
    }
    // Appends `tail`, the text from the object's closing brace on, and ends the event.
    void finish(std::string_view tail) {
        out_.buf.append(tail);
        out_.finish_event();
    }

private:
    // Whether an object's head (its text up to the closing brace) holds a member: its last byte
    // before any whitespace is not the opening brace.
    static bool holds_member(std::string_view head) {
        size_t p = head.size();
        while (p > 0 && is_space(head[p - 1])) --p;
        return p > 0 && head[p - 1] != '{';
    }
    // A comma, unless the head holds no member yet (without head(), the output is looked at).
    void separate() {
        if (!has_member_ && !head_known_) has_member_ = holds_member(out_.buf);
        if (has_member_) out_.buf.push_back(',');
        has_member_ = true;
    }

    Batch& out_;
    bool has_member_ = false;
    bool head_known_ = false;  // head() set has_member_
};

// Appends to `out` "{" and every top-level member of the object event `ev` whose unescaped name
// `drop(name)` does not claim, without the closing brace: the head of an event whose members are
// being replaced. `ev` must be readable up to `capacity` bytes (Batch::capacity_after). Returns
// false, leaving `out` as it was, when `ev` is not a well-formed JSON object.
template <typename Drop>
bool copy_object_without(simdjson::ondemand::parser& parser, std::string_view ev, size_t capacity, std::string& out, Drop&& drop) {
    const size_t start = out.size();
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    if (parser.iterate(ev.data(), ev.size(), capacity).get(doc) || doc.get_object().get(obj)) return false;
    out.push_back('{');
    bool first = true;
    for (auto field : obj) {
        std::string_view name, raw;
        if (field.unescaped_key().get(name) || raw_value(field.value()).get(raw)) {
            out.resize(start);
            return false;
        }
        if (drop(name)) continue;
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, name);
        out.push_back(':');
        out.append(raw);
    }
    return true;
}

}  // namespace hbf::filters
