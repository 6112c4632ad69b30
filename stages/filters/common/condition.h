// The condition language of select, route and friends, parsed once at start:
//
//   .severity == "major"                      .severity in ["major", "critical"]
//   .keys."interface-name" =~ "^ge-"          exists(.device-id)
//   .hops[0].rtt >= 40 && !(.group == "lab")
//
// Operators: == != (any JSON scalar), < <= > >= (numbers), =~ !~ (RE2, linear time), in [list],
// exists(path), && || ! and parentheses. A comparison with a missing field, or with a value of
// another type, is false (and its != is true). Field values come from a shared FieldReader, so
// every condition of a stage reads each event in one pass.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "field_reader.h"

namespace re2 {
class RE2;
}

namespace hbf::filters {

struct ConditionError : std::runtime_error {
    ConditionError(size_t col, const std::string& msg)
        : std::runtime_error("column " + std::to_string(col) + ": " + msg), column(col) {}
    size_t column;  // 1-based
};

class Condition {
public:
    // Throws ConditionError. Field paths are registered in `reader`, which must outlive this.
    Condition(std::string_view text, FieldReader& reader);
    Condition(Condition&&) noexcept;
    Condition& operator=(Condition&&) noexcept;
    ~Condition();

    // Evaluates on the values `reader` last read.
    bool eval(const FieldReader& reader) const { return eval(reader, root_); }
    const std::string& text() const { return text_; }

    struct Literal {
        FieldValue::Kind kind = FieldValue::Kind::null;
        bool b = false;
        double num = 0;
        std::string str;
    };
    enum class Op { or_, and_, not_, exists, eq, ne, lt, le, gt, ge, match, not_match, in, constant };
    struct Node {
        Op op;
        int a = -1;             // operand of not_
        std::vector<int> args;  // operands of or_/and_ (two or more)
        size_t slot = 0;     // field
        Literal lit;
        std::vector<Literal> list;
        std::unique_ptr<re2::RE2> re;
    };

private:
    bool eval(const FieldReader& r, int n) const;
    std::string text_;
    std::vector<Node> nodes_;
    int root_ = -1;
};

}  // namespace hbf::filters
