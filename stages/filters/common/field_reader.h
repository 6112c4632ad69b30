// Reads a fixed set of field paths from an event in one forward pass (simdjson On-Demand).
//
// The paths are merged into a trie at config time; per event the reader walks the object once,
// descending only into members some path goes through, and stops as soon as every path was found.
// Values are views: strings without escapes and everything else as JSON text inside the event,
// strings with escapes unescaped into the parser's buffer. They stay valid until the parser
// iterates another document (and the event text stays).
#pragma once

#include <cstdint>
#include <memory>
#include <simdjson.h>
#include <string_view>
#include <vector>

#include "field_path.h"

namespace hbf::filters {

struct FieldValue {
    enum class Kind : uint8_t { missing, null, boolean, number, string, object, array };
    Kind kind = Kind::missing;
    bool b = false;
    double num = 0;
    std::string_view str;  // unescaped, for strings
    std::string_view raw;  // JSON text for scalars, objects and arrays (empty for an object/array a longer path goes through)
    uint64_t hash = 0;     // with hash_objects(): an object's hash, independent of member order (raw stays empty)
    bool present() const { return kind != Kind::missing; }
};

class FieldReader {
public:
    // Returns the slot of `p` (the same slot for a path added twice).
    size_t add(const FieldPath& p);
    size_t size() const { return paths_.size(); }
    const FieldPath& path(size_t slot) const { return paths_[slot]; }

    // Resolves every path in the event text [p, p+len) with `capacity` readable bytes from p.
    // Returns false when the text is not a JSON object (all values are then missing).
    bool read(simdjson::ondemand::parser& parser, const char* p, size_t len, size_t capacity);
    const FieldValue& value(size_t slot) const { return values_[slot]; }
    // Objects are hashed during the pass instead of kept as text (dedupe's identity of `keys`).
    void hash_objects(bool on) { hash_objects_ = on; }

    // A member's name without unescaping when it holds no escape (the common case): a view into
    // the event. Falls back to simdjson's unescaping otherwise.
    static simdjson::error_code key_of(simdjson::ondemand::field& f, std::string_view& out);

private:
    struct Node {
        PathSegment seg;
        int slot = -1;
        std::vector<std::unique_ptr<Node>> kids;
        bool has_index_kids = false;
    };
    bool walk_object(simdjson::ondemand::object o, const Node& n);
    bool walk_array(simdjson::ondemand::array a, const Node& n);
    // Records a value for the node's slot and descends; returns true when every path is resolved.
    bool take(simdjson::ondemand::value& v, const Node& n);
    bool take_scalar(simdjson::ondemand::value& v, simdjson::ondemand::json_type t, FieldValue& out);
    bool hash_object(simdjson::ondemand::value& v, uint64_t& h);

    Node root_;
    std::vector<FieldPath> paths_;
    std::vector<FieldValue> values_;
    size_t found_ = 0;
    bool hash_objects_ = false;
};

}  // namespace hbf::filters
