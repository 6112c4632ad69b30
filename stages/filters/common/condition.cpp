#include "condition.h"

#include <cctype>
#include <charconv>
#include <re2/re2.h>

namespace hbf::filters {
namespace {

using Kind = FieldValue::Kind;

class Parser {
public:
    Parser(std::string_view t, FieldReader& r, std::vector<Condition::Node>& nodes) : t_(t), reader_(r), nodes_(nodes) {}

    int parse() {
        skip();
        if (pos_ >= t_.size()) fail(pos_, "the condition is empty");
        int n = parse_or();
        skip();
        if (pos_ < t_.size()) {
            if (t_[pos_] == ')') fail(pos_, "unbalanced ')'");
            fail(pos_, "unexpected '" + std::string(1, t_[pos_]) + "' after a complete condition (join conditions with && or ||)");
        }
        return n;
    }

private:
    [[noreturn]] void fail(size_t at, const std::string& m) { throw ConditionError(at + 1, m); }

    void skip() {
        while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r')) ++pos_;
    }
    bool eat(std::string_view s) {
        skip();
        if (t_.substr(pos_, s.size()) == s) {
            pos_ += s.size();
            return true;
        }
        return false;
    }
    bool word_at(std::string_view w) const {
        if (t_.substr(pos_, w.size()) != w) return false;
        size_t e = pos_ + w.size();
        return e >= t_.size() || !(std::isalnum(static_cast<unsigned char>(t_[e])) || t_[e] == '_');
    }

    int add(Condition::Node n) {
        nodes_.push_back(std::move(n));
        return int(nodes_.size() - 1);
    }

    // a || b || c is one node with three operands: evaluating it takes no stack per operand.
    int parse_or() { return parse_chain(Condition::Op::or_, '|', "'|' is not an operator (did you mean '||'?)"); }
    int parse_and() { return parse_chain(Condition::Op::and_, '&', "'&' is not an operator (did you mean '&&'?)"); }

    int parse_chain(Condition::Op op, char c, const char* single) {
        const char two[] = {c, c};
        std::vector<int> args{op == Condition::Op::or_ ? parse_and() : parse_unary()};
        while (true) {
            skip();
            if (t_.substr(pos_, 2) == std::string_view(two, 2)) {
                pos_ += 2;
                args.push_back(op == Condition::Op::or_ ? parse_and() : parse_unary());
            } else if (pos_ < t_.size() && t_[pos_] == c) {
                fail(pos_, single);
            } else {
                break;
            }
        }
        if (args.size() == 1) return args[0];
        Condition::Node n{op};
        n.args = std::move(args);
        return add(std::move(n));
    }

    // '(' and '!' recurse: bound their nesting so no text can exhaust the stack.
    static constexpr int kMaxNesting = 64;
    struct Nest {
        Parser& p;
        explicit Nest(Parser& parser, size_t at) : p(parser) {
            if (++p.depth_ > kMaxNesting) p.fail(at, "nested deeper than " + std::to_string(kMaxNesting) + " levels of '(' and '!'");
        }
        ~Nest() { --p.depth_; }
    };

    int parse_unary() {
        skip();
        if (pos_ < t_.size() && t_[pos_] == '!' && t_.substr(pos_, 2) != "!=" && t_.substr(pos_, 2) != "!~") {
            Nest nest(*this, pos_);
            ++pos_;
            Condition::Node n{Condition::Op::not_};
            n.a = parse_unary();
            return add(std::move(n));
        }
        return parse_primary();
    }

    // A comparison, exists(...), true/false, or a parenthesised condition.
    int parse_primary() {
        skip();
        if (pos_ >= t_.size()) fail(pos_, "the condition ends where a comparison, exists(...) or '(' was expected");
        char c = t_[pos_];
        if (c == '(') return parse_group();
        if (word_at("exists")) return parse_exists();
        if (word_at("true") || word_at("false")) return parse_constant();
        if (c != '.') {
            if (c == '"' || c == '-' || (c >= '0' && c <= '9'))
                fail(pos_, "a comparison starts with the field path, such as .severity == \"major\"");
            fail(pos_, "expected a field path (.name), exists(...), '!' or '('");
        }
        return parse_comparison();
    }

    // '(' condition ')', at '('.
    int parse_group() {
        Nest nest(*this, pos_);
        size_t open = pos_++;
        int n = parse_or();
        skip();
        if (pos_ >= t_.size() || t_[pos_] != ')') fail(open, "this '(' is never closed");
        ++pos_;
        return n;
    }

    // exists(.path), at the word "exists".
    int parse_exists() {
        pos_ += 6;
        skip();
        if (pos_ >= t_.size() || t_[pos_] != '(') fail(pos_, "expected '(' after exists");
        ++pos_;
        skip();
        Condition::Node n{Condition::Op::exists};
        n.slot = path();
        skip();
        if (pos_ >= t_.size() || t_[pos_] != ')') fail(pos_, "expected ')' after the field path of exists(");
        ++pos_;
        return add(std::move(n));
    }

    // A bare true or false, at the word.
    int parse_constant() {
        Condition::Node n{Condition::Op::constant};
        n.lit.kind = Kind::boolean;
        n.lit.b = t_[pos_] == 't';
        pos_ += n.lit.b ? 4 : 5;
        return add(std::move(n));
    }

    // .path OP value, at the '.'; the value's type is checked against the operator.
    int parse_comparison() {
        size_t at = pos_;
        Condition::Node n{Condition::Op::eq};
        n.slot = path();
        n.op = comparison_op(at);
        skip();
        size_t lit_at = pos_;
        switch (n.op) {
            case Condition::Op::in: n.list = literal_list(); break;
            case Condition::Op::match:
            case Condition::Op::not_match: compile_regex(n, lit_at); break;
            case Condition::Op::lt:
            case Condition::Op::le:
            case Condition::Op::gt:
            case Condition::Op::ge:
                n.lit = literal();
                if (n.lit.kind != Kind::number) fail(lit_at, "<, <=, > and >= compare numbers: expected a number");
                break;
            default: n.lit = literal();
        }
        return add(std::move(n));
    }

    // The operator after the field path that starts at `at`. Two-character operators are tried
    // before their one-character prefixes.
    Condition::Op comparison_op(size_t at) {
        skip();
        size_t op_at = pos_;
        if (eat("==")) return Condition::Op::eq;
        if (eat("!=")) return Condition::Op::ne;
        if (eat("<=")) return Condition::Op::le;
        if (eat(">=")) return Condition::Op::ge;
        if (eat("=~")) return Condition::Op::match;
        if (eat("!~")) return Condition::Op::not_match;
        if (eat("<")) return Condition::Op::lt;
        if (eat(">")) return Condition::Op::gt;
        if (word_at("in")) {
            pos_ += 2;
            return Condition::Op::in;
        }
        if (pos_ < t_.size() && t_[pos_] == '=') fail(pos_, "'=' is not an operator (did you mean '=='?)");
        if (pos_ >= t_.size()) {
            const std::string field(t_.substr(at, op_at - at));
            fail(pos_, "the condition ends after the field " + field +
                           ": expected an operator (==, !=, <, <=, >, >=, =~, !~, in); to test presence write exists(" + field + ")");
        }
        fail(pos_, "expected an operator (==, !=, <, <=, >, >=, =~, !~, in) after the field path");
    }

    // The right-hand side of 'in': [value, ...], possibly empty.
    std::vector<Condition::Literal> literal_list() {
        std::vector<Condition::Literal> list;
        if (pos_ >= t_.size() || t_[pos_] != '[') fail(pos_, "expected a list such as [\"major\", \"critical\"] after 'in'");
        ++pos_;
        skip();
        if (pos_ < t_.size() && t_[pos_] == ']') {
            ++pos_;
            return list;
        }
        while (true) {
            list.push_back(literal());
            skip();
            if (pos_ < t_.size() && t_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < t_.size() && t_[pos_] == ']') {
                ++pos_;
                return list;
            }
            fail(pos_, "expected ',' or ']' in the list");
        }
    }

    // The string after =~ or !~ (at lit_at), compiled once into n.re.
    void compile_regex(Condition::Node& n, size_t lit_at) {
        n.lit = literal();
        if (n.lit.kind != Kind::string) fail(lit_at, "=~ and !~ take a regular expression as a string, such as \"^ge-\"");
        RE2::Options o;
        o.set_log_errors(false);
        n.re = std::make_unique<RE2>(n.lit.str, o);
        if (!n.re->ok()) fail(lit_at, "invalid regular expression: " + n.re->error());
    }

    size_t path() {
        FieldPath p;
        PathError err;
        if (!parse_path(t_, pos_, true, p, err)) throw ConditionError(err.column, err.message);
        return reader_.add(p);
    }

    Condition::Literal literal() {
        skip();
        Condition::Literal l;
        if (pos_ >= t_.size()) fail(pos_, "the condition ends where a value was expected");
        char c = t_[pos_];
        if (c == '"') {
            PathError err;
            l.kind = Kind::string;
            if (!parse_json_string(t_, pos_, l.str, err)) throw ConditionError(err.column, err.message);
            return l;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t e = pos_;
            while (e < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[e])) || t_[e] == '-' || t_[e] == '+' || t_[e] == '.' ||
                                     t_[e] == 'e' || t_[e] == 'E'))
                ++e;
            auto r = std::from_chars(t_.data() + pos_, t_.data() + e, l.num);
            if (r.ec != std::errc() || r.ptr != t_.data() + e) fail(pos_, "invalid number '" + std::string(t_.substr(pos_, e - pos_)) + "'");
            l.kind = Kind::number;
            pos_ = e;
            return l;
        }
        if (word_at("true") || word_at("false")) {
            l.kind = Kind::boolean;
            l.b = c == 't';
            pos_ += l.b ? 4 : 5;
            return l;
        }
        if (word_at("null")) {
            l.kind = Kind::null;
            pos_ += 4;
            return l;
        }
        if (c == '\'') fail(pos_, "strings take double quotes: \"...\"");
        if (c == '.') fail(pos_, "the right-hand side is a value (string, number, true, false, null), not a field");
        fail(pos_, "expected a value: a string in double quotes, a number, true, false or null");
    }

    std::string_view t_;
    FieldReader& reader_;
    std::vector<Condition::Node>& nodes_;
    size_t pos_ = 0;
    int depth_ = 0;
};

bool equal(const FieldValue& v, const Condition::Literal& l) {
    if (v.kind != l.kind) return false;
    switch (l.kind) {
        case Kind::string: return v.str == l.str;
        case Kind::number: return v.num == l.num;
        case Kind::boolean: return v.b == l.b;
        case Kind::null: return true;
        default: return false;
    }
}

}  // namespace

Condition::Condition(std::string_view text, FieldReader& reader) : text_(text) {
    root_ = Parser(text, reader, nodes_).parse();
}
Condition::Condition(Condition&&) noexcept = default;
Condition& Condition::operator=(Condition&&) noexcept = default;
Condition::~Condition() = default;

bool Condition::eval(const FieldReader& r, int i) const {
    const Node& n = nodes_[size_t(i)];
    switch (n.op) {
        case Op::or_:
            for (int a : n.args)
                if (eval(r, a)) return true;
            return false;
        case Op::and_:
            for (int a : n.args)
                if (!eval(r, a)) return false;
            return true;
        case Op::not_: return !eval(r, n.a);
        case Op::constant: return n.lit.b;
        default: break;
    }
    const FieldValue& v = r.value(n.slot);
    switch (n.op) {
        case Op::exists: return v.present();
        case Op::eq: return equal(v, n.lit);
        case Op::ne: return !equal(v, n.lit);
        case Op::lt: return v.kind == Kind::number && v.num < n.lit.num;
        case Op::le: return v.kind == Kind::number && v.num <= n.lit.num;
        case Op::gt: return v.kind == Kind::number && v.num > n.lit.num;
        case Op::ge: return v.kind == Kind::number && v.num >= n.lit.num;
        case Op::match: return v.kind == Kind::string && RE2::PartialMatch(re2::StringPiece(v.str.data(), v.str.size()), *n.re);
        case Op::not_match: return !(v.kind == Kind::string && RE2::PartialMatch(re2::StringPiece(v.str.data(), v.str.size()), *n.re));
        case Op::in:
            for (const auto& l : n.list)
                if (equal(v, l)) return true;
            return false;
        default: return false;
    }
}

}  // namespace hbf::filters
