#include "field_reader.h"

#include "json_util.h"

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

bool FieldReader::walk_object(ondemand::object o, const Node& n) {
    for (auto field : o) {
        std::string_view k;
        if (field.unescaped_key().get(k)) return true;  // broken text: stop, what was found stays
        for (const auto& kid : n.kids) {
            if (kid->seg.is_index() || kid->seg.name != k) continue;
            ondemand::value v;
            if (field.value().get(v)) return true;
            if (take(v, *kid)) return true;
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
            ondemand::value v;
            if (el.get(v)) return true;
            if (take(v, *kid)) return true;
            break;
        }
        ++i;
    }
    return false;
}

bool FieldReader::take(ondemand::value v, const Node& n) {
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
                    if (raw_value(v).get(out->raw)) return true;
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
    out->raw = v.raw_json_token();
    while (!out->raw.empty() && (out->raw.back() == ' ' || out->raw.back() == '\n' || out->raw.back() == '\r' || out->raw.back() == '\t'))
        out->raw.remove_suffix(1);
    switch (t) {
        case ondemand::json_type::string:
            if (v.get_string().get(out->str)) return true;
            out->kind = K::string;
            break;
        case ondemand::json_type::number:
            if (v.get_double().get(out->num)) return true;
            out->kind = K::number;
            break;
        case ondemand::json_type::boolean:
            if (v.get_bool().get(out->b)) return true;
            out->kind = K::boolean;
            break;
        default: {
            bool isnull = false;
            if (v.is_null().get(isnull) || !isnull) return true;
            out->kind = K::null;
        }
    }
    ++found_;
    return found_ == paths_.size();
}

}  // namespace hbf::filters
