#include "table.h"

#include <algorithm>
#include <simdjson.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include "json_util.h"

namespace hbf::stages::lookup {
namespace {

// One CSV record starting at text[pos]; false at the end of the text.
bool csv_record(std::string_view t, size_t& pos, size_t& line, std::vector<std::string>& out) {
    out.clear();
    while (pos < t.size() && (t[pos] == '\n' || t[pos] == '\r')) {  // blank lines
        if (t[pos] == '\n') ++line;
        ++pos;
    }
    if (pos >= t.size()) return false;
    std::string field;
    size_t start_line = line;
    while (true) {
        field.clear();
        if (pos < t.size() && t[pos] == '"') {
            ++pos;
            while (true) {
                if (pos >= t.size()) throw std::runtime_error("line " + std::to_string(start_line) + ": unterminated quoted field");
                char c = t[pos++];
                if (c == '"') {
                    if (pos < t.size() && t[pos] == '"') {
                        field.push_back('"');
                        ++pos;
                        continue;
                    }
                    break;
                }
                if (c == '\n') ++line;
                field.push_back(c);
            }
            if (pos < t.size() && t[pos] != ',' && t[pos] != '\n' && t[pos] != '\r')
                throw std::runtime_error("line " + std::to_string(line) + ": unexpected text after a closing quote");
        } else {
            while (pos < t.size() && t[pos] != ',' && t[pos] != '\n' && t[pos] != '\r') {
                if (t[pos] == '"') throw std::runtime_error("line " + std::to_string(line) + ": a quote inside an unquoted field (quote the whole field and double the quote)");
                field.push_back(t[pos++]);
            }
        }
        out.push_back(field);
        if (pos < t.size() && t[pos] == ',') {
            ++pos;
            continue;
        }
        if (pos < t.size() && t[pos] == '\r') ++pos;
        if (pos < t.size() && t[pos] == '\n') ++pos, ++line;
        return true;
    }
}

struct Columns {
    size_t key = 0;
    std::vector<size_t> add;
};

std::string member_text(const std::vector<std::string>& quoted, const std::vector<std::string>& values) {
    std::string s;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) s.push_back(',');
        s += quoted[i];
        s.push_back(':');
        s += values[i];
    }
    return s;
}

void set_names(Table& t, const std::vector<std::string>& cols, const TableSpec& spec) {
    for (const auto& c : cols) {
        t.names.push_back(spec.prefix + c);
        std::string q;
        append_json_string(q, spec.prefix + c);
        t.quoted_names.push_back(q);
    }
}

}  // namespace

std::shared_ptr<const Table> parse_csv(std::string_view text, const TableSpec& spec) {
    auto t = std::make_shared<Table>();
    size_t pos = 0, line = 1;
    std::vector<std::string> header, rec;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;  // a BOM from a spreadsheet
    if (!csv_record(text, pos, line, header)) throw std::runtime_error("the file is empty: expected a header row");
    Columns c;
    if (!spec.key_column.empty()) {
        auto it = std::find(header.begin(), header.end(), spec.key_column);
        if (it == header.end()) throw std::runtime_error("line 1: no column '" + spec.key_column + "' in the header");
        c.key = size_t(it - header.begin());
    }
    std::vector<std::string> cols;
    if (spec.columns.empty()) {
        for (size_t i = 0; i < header.size(); ++i)
            if (i != c.key) c.add.push_back(i), cols.push_back(header[i]);
    } else {
        for (const auto& want : spec.columns) {
            auto it = std::find(header.begin(), header.end(), want);
            if (it == header.end()) throw std::runtime_error("line 1: no column '" + want + "' in the header");
            c.add.push_back(size_t(it - header.begin()));
            cols.push_back(want);
        }
    }
    set_names(*t, cols, spec);
    std::vector<std::string> values(c.add.size());
    while (true) {
        size_t at = line;
        if (!csv_record(text, pos, line, rec)) break;
        if (rec.size() != header.size())
            throw std::runtime_error("line " + std::to_string(at) + ": " + std::to_string(rec.size()) + " fields where the header has " +
                                     std::to_string(header.size()));
        for (size_t i = 0; i < c.add.size(); ++i) {
            values[i].clear();
            append_json_string(values[i], rec[c.add[i]]);
        }
        t->rows[rec[c.key]] = member_text(t->quoted_names, values);  // a repeated key: the last row wins
    }
    return t;
}

std::shared_ptr<const Table> parse_json(std::string text, const TableSpec& spec) {
    using namespace simdjson;
    auto t = std::make_shared<Table>();
    size_t len = text.size();
    text.append(SIMDJSON_PADDING, ' ');
    ondemand::parser parser;
    JsonCheck chk = check_object(parser, text.data(), len, text.size());
    if (!chk.ok) throw std::runtime_error("byte " + std::to_string(chk.offset) + ": " + chk.message);
    ondemand::document doc;
    ondemand::object top;
    if (parser.iterate(text.data(), len, text.size()).get(doc) || doc.get_object().get(top)) throw std::runtime_error("not a JSON object");
    bool all = spec.columns.empty();
    std::vector<std::string> cols = spec.columns;
    struct Row {
        std::string key;
        std::vector<std::pair<std::string, std::string>> members;
    };
    std::vector<Row> rows;
    for (auto f : top) {
        std::string_view k;
        ondemand::object o;
        if (f.unescaped_key().get(k)) throw std::runtime_error("bad key");
        Row r{std::string(k), {}};
        if (f.value().get_object().get(o)) throw std::runtime_error("the value of '" + r.key + "' is not an object of columns");
        for (auto m : o) {
            std::string_view mk, raw;
            if (m.unescaped_key().get(mk) || raw_value(m.value()).get(raw)) throw std::runtime_error("bad member in '" + r.key + "'");
            r.members.emplace_back(std::string(mk), std::string(raw));
            if (all && std::find(cols.begin(), cols.end(), mk) == cols.end()) cols.emplace_back(mk);
        }
        rows.push_back(std::move(r));
    }
    set_names(*t, cols, spec);
    for (auto& r : rows) {
        std::string s;
        for (size_t i = 0; i < cols.size(); ++i) {
            for (auto& [mk, raw] : r.members) {
                if (mk != cols[i]) continue;
                if (!s.empty()) s.push_back(',');
                s += t->quoted_names[i];
                s.push_back(':');
                s += raw;
                break;
            }
        }
        t->rows[r.key] = std::move(s);
    }
    return t;
}

std::shared_ptr<const Table> load_table(const std::string& path, const TableSpec& spec) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = std::move(ss).str();
    size_t i = 0;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) ++i;
    bool json = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    if (json || (i < text.size() && text[i] == '{')) return parse_json(std::move(text), spec);
    return parse_csv(text, spec);
}

}  // namespace hbf::stages::lookup
