// Field templates: text with event fields in braces, one syntax wherever a stage names fields in
// text: the Kafka output's topic and key ("healthbot.{severity}", "{keys.interface-name|none}"),
// the throttle filter's key ("{group}/{device-id}").
//
// Parsed once at start into literal pieces and field paths ({a.b} is member b of member a;
// "{{" and "}}" are literal braces). Per event, each field is read with simdjson On-Demand from
// the event's padded text: a string gives its unescaped text, a number or boolean its JSON text.
// A field that is absent, null, an object or an array takes the fallback after '|', if any.
#pragma once

#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>

namespace hbf {

class FieldTemplate {
public:
    // Throws std::invalid_argument saying what is wrong and at which character.
    explicit FieldTemplate(std::string_view text);
    FieldTemplate() = default;

    bool is_static() const { return fields_ == 0; }
    // The whole text of a static template.
    const std::string& literal() const { return literal_; }
    const std::string& source() const { return source_; }

    // Appends the rendered text to `out`. False when a field without fallback is missing; then
    // `missing` names it and `out` holds a partial rendering.
    bool render(simdjson::ondemand::document& doc, std::string& out, std::string_view* missing = nullptr) const;

    struct Piece {
        std::string literal;   // text before the field (or the whole tail)
        std::string field;     // as written: "keys.interface-name"; empty for a literal-only piece
        std::string pointer;   // JSON pointer: "/keys/interface-name"
        std::string fallback;
        bool has_fallback = false;
    };
    // The literal texts and fields in order, for a stage that reads the fields its own way.
    const std::vector<Piece>& pieces() const { return pieces_; }

private:
    std::vector<Piece> pieces_;
    size_t fields_ = 0;
    std::string literal_, source_;
};

}  // namespace hbf
