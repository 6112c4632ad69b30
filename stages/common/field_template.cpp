#include "field_template.h"

#include <stdexcept>

namespace hbf {

namespace {
[[noreturn]] void bad(std::string_view text, size_t at, const std::string& what) {
    throw std::invalid_argument("template \"" + std::string(text) + "\", character " + std::to_string(at + 1) + ": " + what);
}

std::string pointer_of(std::string_view field, std::string_view text, size_t at) {
    std::string p;
    size_t start = 0;
    for (;;) {
        size_t dot = field.find('.', start);
        std::string_view name = field.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (name.empty()) bad(text, at, "empty field name in {" + std::string(field) + "}");
        p.push_back('/');
        for (char c : name) {
            if (c == '~') p += "~0";
            else if (c == '/') p += "~1";
            else p.push_back(c);
        }
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return p;
}
}  // namespace

FieldTemplate::FieldTemplate(std::string_view text) : source_(text) {
    Piece cur;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '}' ) {
            if (i + 1 < text.size() && text[i + 1] == '}') {
                cur.literal.push_back('}');
                ++i;
                continue;
            }
            bad(text, i, "a lone '}' (write \"}}\" for a literal brace)");
        }
        if (c != '{') {
            cur.literal.push_back(c);
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '{') {
            cur.literal.push_back('{');
            ++i;
            continue;
        }
        size_t close = text.find('}', i + 1);
        if (close == std::string_view::npos) bad(text, i, "'{' is never closed");
        std::string_view body = text.substr(i + 1, close - i - 1);
        if (body.find('{') != std::string_view::npos) bad(text, i, "'{' inside a field");
        size_t bar = body.find('|');
        cur.field = std::string(body.substr(0, bar));
        if (bar != std::string_view::npos) {
            cur.has_fallback = true;
            cur.fallback = std::string(body.substr(bar + 1));
        }
        if (cur.field.empty()) bad(text, i, "empty field name");
        cur.pointer = pointer_of(cur.field, text, i);
        pieces_.push_back(std::move(cur));
        cur = Piece{};
        ++fields_;
        i = close;
    }
    if (!cur.literal.empty() || pieces_.empty()) pieces_.push_back(std::move(cur));
    if (fields_ == 0) literal_ = pieces_.front().literal;
}

bool FieldTemplate::render(simdjson::ondemand::document& doc, std::string& out, std::string_view* missing) const {
    using namespace simdjson;
    for (const auto& p : pieces_) {
        out += p.literal;
        if (p.field.empty()) continue;
        // at_pointer rewinds the document, so fields may come in any order.
        ondemand::value v;
        ondemand::json_type t{};
        bool found = doc.at_pointer(p.pointer).get(v) == SUCCESS && v.type().get(t) == SUCCESS;
        if (found) {
            switch (t) {
                case ondemand::json_type::string: {
                    std::string_view s;
                    if (v.get_string().get(s) == SUCCESS) { out += s; continue; }
                    break;
                }
                case ondemand::json_type::number:
                case ondemand::json_type::boolean: {
                    std::string_view raw = v.raw_json_token();
                    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\t' || raw.back() == '\r' ||
                                            raw.back() == ',' || raw.back() == '}' || raw.back() == ']'))
                        raw.remove_suffix(1);
                    out += raw;
                    continue;
                }
                default: break;
            }
        }
        if (!p.has_fallback) {
            if (missing) *missing = p.field;
            return false;
        }
        out += p.fallback;
    }
    return true;
}

}  // namespace hbf
