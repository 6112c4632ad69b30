#include "field_reader.h"

#include <cstring>
#include <functional>

#include "json_util.h"
#include "hash.h"

namespace hbf::filters {

using namespace simdjson;

size_t FieldReader::add(const FieldPath& p) {
    for (size_t i = 0; i < paths_.size(); ++i)
        if (paths_[i] == p) return i;
    Node* n = &root_;
    for (const auto& s : p.segments) {
        Node* next = nullptr;
        for (auto& k : n->kids)
            if (k->seg == s) next = k.get();
        if (!next) {
            n->kids.push_back(std::make_unique<Node>());
            next = n->kids.back().get();
            next->seg = s;
            if (s.is_index()) n->has_index_kids = true;
        }
        n = next;
    }
    n->slot = int(paths_.size());
    paths_.push_back(p);
    values_.emplace_back();
    return paths_.size() - 1;
}

bool FieldReader::read(ondemand::parser& parser, const char* p, size_t len, size_t capacity) {
    for (auto& v : values_) v = FieldValue{};
    found_ = 0;
    ondemand::document doc;
    ondemand::object obj;
    if (parser.iterate(p, len, capacity).get(doc) || doc.get_object().get(obj)) return false;
    walk_object(obj, root_);
    return true;
}

error_code FieldReader::key_of(ondemand::field& f, std::string_view& out) {
    const char* r = f.key().raw();
    const char* e = r;
    while (*e != '"' && *e != '\\') ++e;  // simdjson checked the key: it is closed; names are short, a loop beats memchr
    if (*e == '"') {
        out = std::string_view(r, size_t(e - r));
        return SUCCESS;
    }
    return f.unescaped_key().get(out);
}

namespace {
uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
uint64_t hash_sv(std::string_view s) { return hash_text(s); }

// A string value's text: a view into the event when it holds no escape (the common case, and no
// copy through simdjson's unescaping), else unescaped by simdjson.
error_code string_of(ondemand::value& v, std::string_view& out) {
    std::string_view tok = v.raw_json_token();  // "...", then maybe whitespace up to the next token
    while (tok.size() > 2 && (tok.back() == ' ' || tok.back() == '\n' || tok.back() == '\r' || tok.back() == '\t')) tok.remove_suffix(1);
    if (tok.size() >= 2 && tok.front() == '"' && tok.back() == '"') {
        std::string_view body = tok.substr(1, tok.size() - 2);  // the token ends at its closing quote: simdjson checked it
        if (!std::memchr(body.data(), '\\', body.size())) {
            out = body;
            return SUCCESS;
        }
    }
    return v.get_string().get(out);
}
}  // namespace

bool FieldReader::walk_object(ondemand::object o, const Node& n) {
    for (auto field_r : o) {
        // The field is used in place: copying simdjson's small structs right after simdjson wrote
        // them stalls store forwarding (GCC copies them with one vector load).
        if (field_r.error()) return true;
        ondemand::field& field = field_r.value_unsafe();
        std::string_view k;
        if (key_of(field, k)) return true;  // broken text: stop, what was found stays
        for (const auto& kid : n.kids) {
            if (kid->seg.is_index() || kid->seg.name != k) continue;
            if (take(field.value(), *kid)) return true;
            break;
        }
    }
    return false;
}

bool FieldReader::walk_array(ondemand::array a, const Node& n) {
    long i = 0;
    for (auto el : a) {
        for (const auto& kid : n.kids) {
            if (kid->seg.index != i) continue;
            if (el.error()) return true;
            if (take(el.value_unsafe(), *kid)) return true;
            break;
        }
        ++i;
    }
    return false;
}

// Sum of the members' hashes: member order does not matter. Strings count unescaped.
bool FieldReader::hash_object(ondemand::value& v, uint64_t& h) {
    ondemand::object o;
    if (v.get_object().get(o)) return true;
    h = 0x6f626a;
    for (auto fr : o) {
        std::string_view k, s;
        if (fr.error()) return true;
        ondemand::field& f = fr.value_unsafe();
        if (key_of(f, k)) return true;
        ondemand::value& mv = f.value();
        ondemand::json_type t;
        if (mv.type().get(t)) return true;
        uint64_t vh;
        if (t == ondemand::json_type::string) {
            if (string_of(mv, s)) return true;
            vh = hash_sv(s);
        } else {
            if (raw_value(mv).get(s)) return true;
            vh = hash_sv(s) ^ 0x5a5a;
        }
        h += mix(hash_sv(k) * 31 + vh);
    }
    return false;
}

bool FieldReader::take(ondemand::value& v, const Node& n) {
    FieldValue* out = n.slot >= 0 ? &values_[size_t(n.slot)] : nullptr;
    if (out && out->present()) return false;  // a repeated member: the first one counts
    ondemand::json_type t;
    if (v.type().get(t)) return true;
    using K = FieldValue::Kind;
    switch (t) {
        case ondemand::json_type::object: {
            if (n.kids.empty() || n.has_index_kids) {
                if (out) {
                    out->kind = K::object;
                    if (hash_objects_) {
                        if (hash_object(v, out->hash)) return true;
                    } else if (raw_value(v).get(out->raw)) {
                        return true;
                    }
                    ++found_;
                }
                return found_ == paths_.size();
            }
            if (out) out->kind = K::object, ++found_;
            ondemand::object o;
            if (v.get_object().get(o)) return true;
            if (walk_object(o, n)) return true;
            return found_ == paths_.size();
        }
        case ondemand::json_type::array: {
            if (!n.has_index_kids) {
                if (out) {
                    out->kind = K::array;
                    if (raw_value(v).get(out->raw)) return true;
                    ++found_;
                }
                return found_ == paths_.size();
            }
            if (out) out->kind = K::array, ++found_;
            ondemand::array a;
            if (v.get_array().get(a)) return true;
            if (walk_array(a, n)) return true;
            return found_ == paths_.size();
        }
        default: break;
    }
    if (!out) return false;  // a scalar where the path wanted to go deeper
    if (take_scalar(v, t, *out)) return true;
    ++found_;
    return found_ == paths_.size();
}

// A string, number, boolean or null into `out`, with its JSON text; true when it cannot be read.
bool FieldReader::take_scalar(ondemand::value& v, ondemand::json_type t, FieldValue& out) {
    using K = FieldValue::Kind;
    out.raw = v.raw_json_token();
    while (!out.raw.empty() && is_space(out.raw.back())) out.raw.remove_suffix(1);
    switch (t) {
        case ondemand::json_type::string:
            if (string_of(v, out.str)) return true;
            out.kind = K::string;
            return false;
        case ondemand::json_type::number:
            if (v.get_double().get(out.num)) return true;
            out.kind = K::number;
            return false;
        case ondemand::json_type::boolean:
            if (v.get_bool().get(out.b)) return true;
            out.kind = K::boolean;
            return false;
        default: {
            bool isnull = false;
            if (v.is_null().get(isnull) || !isnull) return true;
            out.kind = K::null;
            return false;
        }
    }
}

}  // namespace hbf::filters
