// filter "fields": renames, removes, keeps, sets, flattens and parses members, by splicing.
//
// The operations are merged into one trie over the event's paths at config time; each event is
// then walked once with simdjson On-Demand and rebuilt from its members' raw JSON: a member no
// operation touches is copied as is, objects no operation reaches inside are copied whole.
//
// Order of effect: remove and parse_json act on the input's members; rename and flatten move them
// (a destination member that already exists is replaced); set writes its values (creating
// intermediate objects); keep, last, filters the result's top-level names.
#include <algorithm>
#include <cstring>

#include "../common/config_util.h"
#include "../common/json_text.h"
#include "json_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::FieldPath;
using filters::PathSegment;
using namespace simdjson;

// A member name, or a prefix of one: unescaped (matched against the config) and as written in JSON.
struct Name {
    std::string_view text, json;
};

struct Rename {
    FieldPath from, to;
    std::string to_json;            // the destination's name escaped for JSON, without quotes
    Name to_name;                   // views of to's last name and to_json, set once renames_ is complete
    bool to_root_deferred = false;  // source nested, destination top-level: written at the end of the root
    uint64_t written = 0;           // event stamp when written
};

struct Node {
    std::string name;
    std::string json_name;  // name escaped for JSON, without quotes
    std::vector<std::unique_ptr<Node>> kids;
    Node* parent = nullptr;
    bool remove = false, parse_json = false, flatten = false;
    int rename = -1;       // source of renames_[rename]
    int set = -1;          // sets_[set] replaces or creates this member
    int claim = -1;        // destination of renames_[claim]: an existing member is replaced when the rename happens
    bool set_below = false;
    bool ops_below = false;  // some operation inside this member's value
    uint64_t seen = 0;

    Node* find(std::string_view k) const {
        for (const auto& c : kids)
            if (c->name == k) return c.get();
        return nullptr;
    }
};

struct Deferred {
    Name prefix, name;
    std::string_view value;         // raw JSON in the event, or in scratch_ when in_scratch
    size_t off = 0, len = 0;
    bool in_scratch = false;
};

struct Span {
    size_t start, end;
    bool had_comma;
    int rename;
};

struct FieldsOptions {
    StringMap rename;
    StringList remove, keep;
    JsonFields set;
    std::string flatten;
    std::string flatten_prefix = "{name}_";
    StringList parse_json;
};

const OptionSchema<FieldsOptions> kFieldsSchema{
    {"rename", &FieldsOptions::rename, "Old path = new path, e.g. { \"device-id\" = \"device\", \"keys._playbook_name\" = \"playbook\" }."},
    {"remove", &FieldsOptions::remove, "Paths of members to remove."},
    {"keep", &FieldsOptions::keep, "Top-level names of the result to keep; every other top-level member goes."},
    {"set", &FieldsOptions::set, "Path = value to write, e.g. { \"labels.env\" = \"prod\" }; intermediate objects are created."},
    {"flatten", &FieldsOptions::flatten, "Path of an object whose members move to the top level, prefixed."},
    {"flatten_prefix", &FieldsOptions::flatten_prefix, "Prefix of the flattened members' names ({name} is the object's name: keys_interface-name); \"\" = bare names."},
    {"parse_json", &FieldsOptions::parse_json, "Paths of string members holding JSON text, replaced by that JSON value."},
};

// "{name}" in a flatten prefix stands for the flattened object's name.
std::string expand_prefix(std::string prefix, const std::string& name) {
    for (size_t at = prefix.find("{name}"); at != std::string::npos; at = prefix.find("{name}", at + name.size()))
        prefix.replace(at, 6, name);
    return prefix;
}

class Fields final : public Filter {
public:
    Fields(const FieldsOptions& o, const StageConfig& c) {
        for (const auto& p : o.remove) {
            Node* n = node(c, "remove", p);
            n->remove = true;
        }
        for (const auto& p : o.parse_json) node(c, "parse_json", p)->parse_json = true;
        for (auto& [from, to] : o.rename) {
            Rename r{filters::path_option(c, "rename", from), filters::path_option(c, "rename", to), {}, {}};
            if (r.from.segments.back().is_index() || r.to.segments.back().is_index()) c.fail("rename", "rename works on object members, not array elements");
            bool same_parent = r.from.segments.size() == r.to.segments.size() &&
                               std::equal(r.from.segments.begin(), r.from.segments.end() - 1, r.to.segments.begin());
            if (!same_parent && r.to.segments.size() != 1)
                c.fail("rename", "rename '" + from + "' to '" + to + "': the destination must be top-level or beside the source");
            r.to_root_deferred = !same_parent;
            r.to_json = escaped(r.to.segments.back().name);
            int idx = int(renames_.size());
            Node* s = node(c, "rename", from);
            if (s->remove) c.fail("rename", "'" + from + "' is both renamed and removed");
            if (s->rename >= 0) c.fail("rename", "'" + from + "' is renamed twice");
            s->rename = idx;
            Node* d = node(c, "rename", to);
            d->claim = idx;
            renames_.push_back(std::move(r));
        }
        if (const std::string& f = o.flatten; !f.empty()) {
            Node* n = node(c, "flatten", f);
            if (n->rename >= 0 || n->remove) c.fail("flatten", "'" + f + "' is flattened and also renamed or removed");
            n->flatten = true;
            flatten_prefix_ = expand_prefix(o.flatten_prefix, n->name);
            flatten_prefix_json_ = escaped(flatten_prefix_);
            flatten_deferred_ = n->parent != &root_;
        }
        for (auto& [p, v] : o.set) {
            Node* n = node(c, "set", p);
            if (n->rename >= 0 || n->remove || n->flatten) c.fail("set", "'" + p + "' is set and also renamed, removed or flattened");
            n->set = int(sets_.size());
            sets_.push_back(v);
            for (Node* q = n->parent; q; q = q->parent) q->set_below = true;
        }
        for (const auto& k : o.keep) {
            if (k.find('.') != std::string::npos && k.front() != '"')
                c.fail("keep", "keep lists top-level names ('" + k + "' holds a dot)");
            keep_.push_back(k);
        }
        if (root_.kids.empty() && keep_.empty()) c.fail("remove", "fields has nothing to do: set rename, remove, keep, set, flatten or parse_json");
        mark_ops(root_);
        for (auto& r : renames_) r.to_name = {r.to.segments.back().name, r.to_json};
        scratch_.reserve(4096);
        deferred_.reserve(64);
        spans_.reserve(64);
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        bad_json_ = &ctx.metrics().errors;
    }

    void process(BatchPtr in, Emitter& out) override {
        BatchPtr o = Batch::make();
        o->reserve_more(in->bytes() + in->size() * 64);
        o->take_acks_from(*in);
        for (size_t i = 0; i < in->size(); ++i) {
            std::string_view ev = in->event(i);
            o->begin_event();
            if (!rewrite(ev, in->capacity_after(i), o->buf)) {
                o->cancel_event();
                o->append(ev);  // not an object, or broken: passed on untouched
                continue;
            }
            o->finish_event();
        }
        out.emit(std::move(o));
    }

private:
    Node* node(const StageConfig& c, const std::string& key, const std::string& text) {
        FieldPath p = filters::path_option(c, key, text);
        Node* n = &root_;
        for (const auto& s : p.segments) {
            if (s.is_index()) c.fail(key, "'" + text + "': fields works on object members, not array elements");
            Node* k = n->find(s.name);
            if (!k) {
                n->kids.push_back(std::make_unique<Node>());
                k = n->kids.back().get();
                k->name = s.name;
                k->json_name = escaped(s.name);
                k->parent = n;
            }
            n = k;
        }
        return n;
    }

    static bool mark_ops(Node& n) {
        bool any = false;
        for (auto& k : n.kids) {
            bool below = mark_ops(*k);
            k->ops_below = below;
            any = any || below || k->remove || k->parse_json || k->flatten || k->rename >= 0 || k->set >= 0 || k->claim >= 0;
        }
        return any;
    }

    bool kept(std::string_view prefix, std::string_view name) const {
        if (keep_.empty()) return true;
        for (const auto& k : keep_)
            if (k.size() == prefix.size() + name.size() && k.compare(0, prefix.size(), prefix) == 0 &&
                k.compare(prefix.size(), std::string::npos, name) == 0)
                return true;
        return false;
    }

    // s escaped for a JSON string, without the quotes (names from the config, escaped once).
    static std::string escaped(std::string_view s) {
        std::string q;
        append_json_string(q, s);
        return q.substr(1, q.size() - 2);
    }

    // A member's name as written in the event (escaped, without quotes) and unescaped. They are
    // the same view unless the name holds an escape; output copies the first, matching uses the second.
    // simdjson has checked the text: the closing quote is there.
    static error_code key_texts(ondemand::field& f, std::string_view& json, std::string_view& name) {
        const char* r = f.key().raw();
        const char* e = r;
        while (*e != '"' && *e != '\\') ++e;
        if (*e == '"') {
            json = name = std::string_view(r, size_t(e - r));
            return SUCCESS;
        }
        while (*e != '"') e += *e == '\\' ? 2 : 1;
        json = std::string_view(r, size_t(e - r));
        return f.unescaped_key().get(name);
    }

    // Writes `,"<prefix><name>":<value>` (no comma before the first member) in one resize: the
    // names arrive escaped (the event's own text, or escaped at config time), the value as JSON.
    [[gnu::always_inline]] static void put_member(std::string& out, bool& first, std::string_view prefix_json, std::string_view name_json,
                           std::string_view value = {}) {
        size_t at = out.size();
        size_t comma = first ? 0 : 1;
        out.resize(at + comma + prefix_json.size() + name_json.size() + 3 + value.size());
        char* d = out.data() + at;
        if (comma) *d++ = ',';
        first = false;
        *d++ = '"';
        if (!prefix_json.empty()) std::memcpy(d, prefix_json.data(), prefix_json.size());  // empty views may hold nullptr
        d += prefix_json.size();
        std::memcpy(d, name_json.data(), name_json.size());
        d += name_json.size();
        *d++ = '"';
        *d++ = ':';
        if (!value.empty()) std::memcpy(d, value.data(), value.size());
    }

    // A string member holding JSON text -> that JSON, compact. False (and nothing written) if it is not valid JSON.
    bool parsed_json(std::string_view s, std::string& out) { return filters::append_json_value_compact(out, s); }

    bool rewrite(std::string_view ev, size_t capacity, std::string& out) {
        ++stamp_;
        deferred_.clear();
        spans_.clear();
        scratch_.clear();
        ondemand::document doc;
        ondemand::object obj;
        if (parser_.iterate(ev.data(), ev.size(), capacity).get(doc) || doc.get_object().get(obj)) return false;
        out.push_back('{');
        bool first = true;
        if (!members(obj, root_, 0, out, first)) return false;
        out.push_back('}');
        return true;
    }

    // Writes one member whose value is `v`, handling the operations of node `k` (may be null).
    // `prefix` is non-empty for the members of a flattened object, written at the top level.
    bool member(const Name& key, ondemand::value& v, Node* k, int depth, std::string& out, bool& first, const Name& prefix) {
        bool top = depth == 0 || !prefix.text.empty();
        if (!k) {
            auto raw = raw_value(v);
            if (raw.error()) return false;
            if (top && !kept(prefix.text, key.text)) return true;
            put_member(out, first, prefix.json, key.json, raw.value_unsafe());
            return true;
        }
        k->seen = stamp_;
        if (k->remove) return true;
        if (k->set >= 0) {
            if (top && !kept(prefix.text, key.text)) return true;
            put_member(out, first, prefix.json, key.json, sets_[size_t(k->set)]);
            return true;
        }
        if (k->flatten) return flatten(key, v, *k, depth, out, first, prefix);
        const Name* renamed = &key;
        if (k->rename >= 0) {
            Rename& r = renames_[size_t(k->rename)];
            r.written = stamp_;
            if (r.to_root_deferred) return defer({}, r.to_name, v, k);
            renamed = &r.to_name;
        }
        if (top && !kept(prefix.text, renamed->text)) return true;
        if (k->parse_json || k->ops_below) {
            ondemand::json_type t;
            if (v.type().get(t)) return false;
            std::string_view s;
            if (k->parse_json && t == ondemand::json_type::string && v.get_string().get(s) == SUCCESS)
                return parse_json_member(key, s, out, first, prefix.json, renamed->json);
            ondemand::object so;
            if (k->ops_below && t == ondemand::json_type::object && v.get_object().get(so) == SUCCESS) {
                put_member(out, first, prefix.json, renamed->json);
                out.push_back('{');
                bool f2 = true;
                if (!members(so, *k, depth + 1, out, f2)) return false;
                out.push_back('}');
                return true;
            }
            if (k->ops_below && k->set_below) {  // a scalar where set needs an object: replaced
                put_member(out, first, prefix.json, renamed->json);
                create(*k, out);
                return true;
            }
        }
        auto raw = raw_value(v);
        if (raw.error()) return false;
        size_t start = out.size();
        bool had_comma = !first;
        put_member(out, first, prefix.json, renamed->json, raw.value_unsafe());
        if (k->claim >= 0 && k->rename < 0) spans_.push_back({start, out.size(), had_comma, k->claim});
        return true;
    }

    // `flatten`: the members of object `v` written at the top level under the flatten prefix, or
    // `v` left as it is when it is not an object.
    bool flatten(const Name& key, ondemand::value& v, Node& k, int depth, std::string& out, bool& first, const Name& prefix) {
        ondemand::object fo;
        if (v.get_object().get(fo)) return member(key, v, nullptr, depth, out, first, prefix);
        for (auto fr : fo) {
            Name fk;
            if (fr.error()) return false;
            ondemand::field& f = fr.value_unsafe();
            if (key_texts(f, fk.json, fk.text)) return false;
            ondemand::value& fv = f.value();
            Name fp{flatten_prefix_, flatten_prefix_json_};
            if (flatten_deferred_) {
                if (!defer(fp, fk, fv, k.find(fk.text))) return false;
            } else if (!member(fk, fv, k.find(fk.text), 0, out, first, fp)) {
                return false;
            }
        }
        return true;
    }

    // `parse_json`: the string `s` written as the JSON it holds, or as the string it is when that
    // is not JSON (counted and logged).
    bool parse_json_member(const Name& key, std::string_view s, std::string& out, bool& first, std::string_view prefix_json,
                           std::string_view name_json) {
        size_t mark = out.size();
        bool was_first = first;
        put_member(out, first, prefix_json, name_json);
        if (parsed_json(s, out)) return true;
        note_bad_json(key.text);
        out.resize(mark);
        first = was_first;
        put_member(out, first, prefix_json, name_json);
        append_json_string(out, s);
        return true;
    }

    // Keeps a member for the end of the top level (moved out of a nested object).
    bool defer(const Name& prefix, const Name& name, ondemand::value& v, Node* k) {
        Deferred d{prefix, name, {}, 0, 0, false};
        if (k && k->remove) return true;
        if (k && k->parse_json) {
            std::string_view s;
            ondemand::json_type t;
            if (v.type().get(t)) return false;
            if (t == ondemand::json_type::string && v.get_string().get(s) == SUCCESS) {
                d.off = scratch_.size();
                if (parsed_json(s, scratch_)) {
                    d.len = scratch_.size() - d.off;
                    d.in_scratch = true;
                    deferred_.push_back(d);
                    return true;
                }
                note_bad_json(name.text);
            }
        }
        if (raw_value(v).get(d.value)) return false;
        deferred_.push_back(d);
        return true;
    }

    bool members(ondemand::object o, Node& n, int depth, std::string& out, bool& first) {
        size_t span_base = spans_.size();
        for (auto fr : o) {
            // The field and the values are used in place, by reference: copying simdjson's small
            // structs right after simdjson wrote them stalls store forwarding (GCC copies them with
            // one vector load), which cost more than the rest of this loop.
            Name key;
            if (fr.error()) return false;
            ondemand::field& field = fr.value_unsafe();
            if (key_texts(field, key.json, key.text)) return false;
            ondemand::value& v = field.value();
            if (!member(key, v, n.find(key.text), depth, out, first, {})) return false;
        }
        if (depth == 0) {
            for (const auto& d : deferred_) {
                if (!kept(d.prefix.text, d.name.text)) continue;
                put_member(out, first, d.prefix.json, d.name.json,
                           d.in_scratch ? std::string_view(scratch_).substr(d.off, d.len) : d.value);
            }
        }
        // Members that set creates.
        for (auto& k : n.kids) {
            if (k->seen == stamp_ || (k->set < 0 && !k->set_below)) continue;
            if (depth == 0 && !kept({}, k->name)) continue;
            if (k->set >= 0) {
                put_member(out, first, {}, k->json_name, sets_[size_t(k->set)]);
            } else {
                put_member(out, first, {}, k->json_name);
                create(*k, out);
            }
        }
        // Existing members that a rename replaced, last first so the offsets hold.
        while (spans_.size() > span_base) {
            Span s = spans_.back();
            spans_.pop_back();
            if (renames_[size_t(s.rename)].written != stamp_) continue;
            out.erase(s.start, s.end - s.start);
            if (!s.had_comma && s.start < out.size() && out[s.start] == ',') out.erase(s.start, 1);
        }
        return true;
    }

    // An object holding the values that set puts below `n`.
    void create(const Node& n, std::string& out) {
        out.push_back('{');
        bool first = true;
        for (const auto& k : n.kids) {
            if (k->set < 0 && !k->set_below) continue;
            if (k->set >= 0) {
                put_member(out, first, {}, k->json_name, sets_[size_t(k->set)]);
            } else {
                put_member(out, first, {}, k->json_name);
                create(*k, out);
            }
        }
        out.push_back('}');
    }

    void note_bad_json(std::string_view key) {
        bad_json_->add();
        log_limited(rl_, ctx_->log(), spdlog::level::warn, "parse_json: member '{}' does not hold valid JSON text; left as a string", key);
    }

    Node root_;
    std::vector<Rename> renames_;
    std::vector<std::string> sets_;
    std::vector<std::string> keep_;
    std::string flatten_prefix_, flatten_prefix_json_;
    bool flatten_deferred_ = false;
    uint64_t stamp_ = 0;
    std::vector<Deferred> deferred_;
    std::vector<Span> spans_;
    std::string scratch_;
    ondemand::parser parser_;
    StageContext* ctx_ = nullptr;
    Counter* bad_json_ = nullptr;
    RateLimit rl_;
};

HBF_REGISTER_STATELESS_FILTER("fields", Fields, kFieldsSchema, "Renames, removes, keeps, sets, flattens and parses members of each event, by splicing.");

}  // namespace
}  // namespace hbf::stages
