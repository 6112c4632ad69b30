#include "json_msgpack.h"

#include <msgpuck.h>

namespace hbf::forward {
namespace {

using namespace simdjson;

void put_count(std::string& out, size_t at, uint32_t n, bool map) {
    if (n <= 15) {
        out[at] = char((map ? 0x80 : 0x90) | n);
        return;
    }
    char hdr[5];
    char* e = map ? mp_encode_map(hdr, n) : mp_encode_array(hdr, n);
    out.replace(at, 1, hdr, size_t(e - hdr));
}

void put_str(std::string& out, std::string_view s) {
    char hdr[5];
    out.append(hdr, size_t(mp_encode_strl(hdr, uint32_t(s.size())) - hdr));
    out.append(s);
}

// A map or an array of what `put` writes for each member: the header is a placeholder until the
// count is known. False when a member does not convert.
template <class Members, class Put>
bool container_to(Members& members, std::string& out, bool map, Put&& put) {
    const size_t at = out.size();
    out.push_back('\0');
    uint32_t n = 0;
    for (auto m : members) {
        if (!put(m)) return false;
        ++n;
    }
    put_count(out, at, n, map);
    return true;
}

bool object_to(ondemand::object obj, std::string& out) {
    return container_to(obj, out, true, [&out](auto& field) {
        std::string_view key;
        if (field.unescaped_key().get(key) != SUCCESS) return false;
        put_str(out, key);
        ondemand::value v;
        return field.value().get(v) == SUCCESS && json_to_msgpack(v, out);
    });
}

bool array_to(ondemand::array arr, std::string& out) {
    return container_to(arr, out, false, [&out](auto& el) {
        ondemand::value v;
        return el.get(v) == SUCCESS && json_to_msgpack(v, out);
    });
}

}  // namespace

bool json_to_msgpack(ondemand::value v, std::string& out) {
    ondemand::json_type t;
    if (v.type().get(t) != SUCCESS) return false;
    char buf[9];
    switch (t) {
        case ondemand::json_type::object: {
            ondemand::object o;
            return v.get_object().get(o) == SUCCESS && object_to(o, out);
        }
        case ondemand::json_type::array: {
            ondemand::array a;
            return v.get_array().get(a) == SUCCESS && array_to(a, out);
        }
        case ondemand::json_type::string: {
            std::string_view s;
            if (v.get_string().get(s) != SUCCESS) return false;
            put_str(out, s);
            return true;
        }
        case ondemand::json_type::boolean: {
            bool b;
            if (v.get_bool().get(b) != SUCCESS) return false;
            out.push_back(char(b ? 0xc3 : 0xc2));
            return true;
        }
        case ondemand::json_type::null:
            if (!v.is_null()) return false;
            out.push_back(char(0xc0));
            return true;
        case ondemand::json_type::number: {
            ondemand::number num;
            if (v.get_number().get(num) != SUCCESS) {
                double d;  // beyond 64 bits: as a double
                if (v.get_double().get(d) != SUCCESS) return false;
                out.append(buf, size_t(mp_encode_double(buf, d) - buf));
                return true;
            }
            switch (num.get_number_type()) {
                case ondemand::number_type::signed_integer: {
                    int64_t i = num.get_int64();
                    char* e = i >= 0 ? mp_encode_uint(buf, uint64_t(i)) : mp_encode_int(buf, i);
                    out.append(buf, size_t(e - buf));
                    return true;
                }
                case ondemand::number_type::unsigned_integer:
                    out.append(buf, size_t(mp_encode_uint(buf, num.get_uint64()) - buf));
                    return true;
                default:
                    out.append(buf, size_t(mp_encode_double(buf, num.as_double()) - buf));
                    return true;
            }
        }
    }
    return false;
}

bool json_object_to_msgpack(ondemand::document& doc, std::string& out) {
    ondemand::object o;
    if (doc.get_object().get(o) != SUCCESS) return false;
    return object_to(o, out);
}

}  // namespace hbf::forward
