#include "parser.h"

#include <cstring>
#include <ctime>

#include "civil_time.h"

namespace hbf::syslog {

namespace {

constexpr const char* kFacility[24] = {"kern",     "user",   "mail",   "daemon", "auth",   "syslog",   "lpr",          "news",
                                       "uucp",     "cron",   "authpriv", "ftp",  "ntp",    "security", "console", "solaris-cron",
                                       "local0",   "local1", "local2", "local3", "local4", "local5",   "local6",       "local7"};
constexpr const char* kSeverity[8] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
constexpr const char* kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool printable(char c) { return c >= 33 && c <= 126; }

// The receive time as a civil time in the configured zone: the local one, or a fixed offset.
std::tm receive_time(int64_t received_ns, bool local_zone, int32_t fixed_offset_s) {
    const std::time_t rt = std::time_t(received_ns / 1000000000 + (local_zone ? 0 : fixed_offset_s));
    std::tm t{};
    if (local_zone) localtime_r(&rt, &t);
    else gmtime_r(&rt, &t);
    return t;
}

// A malformed RFC 5424 message: the event begun for it is taken back and `why` is the parse error.
bool rejected(Batch& out, const char*& error, const char* why) {
    out.cancel_event();
    error = why;
    return false;
}

// The SD-NAME (an SD-ID or a PARAM-NAME: printable, no '=', ']' or '"') at pos, which moves past
// it; empty when there is none.
std::string_view read_sd_name(std::string_view s, size_t& pos) {
    const size_t at = pos;
    while (pos < s.size() && printable(s[pos]) && s[pos] != '=' && s[pos] != ']' && s[pos] != '"') ++pos;
    return s.substr(at, pos - at);
}

// "<PRI>": the value 0..191 and the position after '>', or -1.
int read_pri(std::string_view s, size_t& pos) {
    if (s.size() < 3 || s[0] != '<') return -1;
    int v = 0;
    size_t i = 1;
    for (; i < s.size() && i <= 3 && is_digit(s[i]); ++i) v = v * 10 + (s[i] - '0');
    if (i == 1 || i >= s.size() || s[i] != '>' || v > 191) return -1;
    pos = i + 1;
    return v;
}

// The next space-delimited header field (printable ASCII), and the position after its space.
bool header_field(std::string_view s, size_t& pos, std::string_view& out) {
    size_t start = pos;
    while (pos < s.size() && s[pos] != ' ') {
        if (!printable(s[pos])) return false;
        ++pos;
    }
    if (pos == start || pos >= s.size()) return false;
    out = s.substr(start, pos - start);
    ++pos;
    return true;
}

int digits(std::string_view s, size_t at, size_t n) {
    if (at + n > s.size()) return -1;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (!is_digit(s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

// RFC 3339 as RFC 5424 allows it: full-date "T" time, up to 6 fraction digits, "Z" or an offset.
bool is_rfc3339(std::string_view t) {
    if (t.size() < 20 || digits(t, 0, 4) < 0 || t[4] != '-' || digits(t, 5, 2) < 1 || digits(t, 5, 2) > 12 || t[7] != '-' ||
        digits(t, 8, 2) < 1 || digits(t, 8, 2) > 31 || (t[10] != 'T' && t[10] != 't') || digits(t, 11, 2) < 0 || digits(t, 11, 2) > 23 ||
        t[13] != ':' || digits(t, 14, 2) < 0 || digits(t, 14, 2) > 59 || t[16] != ':' || digits(t, 17, 2) < 0 || digits(t, 17, 2) > 60)
        return false;
    size_t i = 19;
    if (t[i] == '.') {
        size_t start = ++i;
        while (i < t.size() && is_digit(t[i])) ++i;
        if (i == start || i - start > 9) return false;
    }
    if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) return i + 1 == t.size();
    if (i + 6 != t.size() || (t[i] != '+' && t[i] != '-') || digits(t, i + 1, 2) < 0 || digits(t, i + 1, 2) > 23 || t[i + 3] != ':' ||
        digits(t, i + 4, 2) < 0 || digits(t, i + 4, 2) > 59)
        return false;
    return true;
}

void key(std::string& b, const char* k) {
    b.push_back(',');
    b.push_back('"');
    b.append(k);
    b.append("\":");
}

void put_2(std::string& b, int v) {
    b.push_back(char('0' + v / 10));
    b.push_back(char('0' + v % 10));
}

// "2026-11-29T15:00:00+01:00" (or "Z"), quoted.
void put_time(std::string& b, int year, int month, int day, int h, int m, int s, int32_t offset) {
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d", year, month, day, h, m, s);
    b.append(buf, size_t(n));
    if (offset == 0) {
        b.append("Z\"");
        return;
    }
    int32_t a = offset < 0 ? -offset : offset;
    b.push_back(offset < 0 ? '-' : '+');
    put_2(b, a / 3600);
    b.push_back(':');
    put_2(b, (a / 60) % 60);
    b.push_back('"');
}

// Length of a valid UTF-8 sequence at p (1-4), or 0.
size_t utf8_len(const unsigned char* p, size_t left) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
        if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogates
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

// The header fields of RFC 5424 between "<PRI>1 " and STRUCTURED-DATA.
struct Header5424 {
    std::string_view timestamp, hostname, app_name, procid, msgid;
};

// Reads the five header fields; pos ends at STRUCTURED-DATA. Returns the parse error, or nullptr.
const char* read_header_5424(std::string_view s, size_t& pos, Header5424& h) {
    if (!header_field(s, pos, h.timestamp)) return "RFC 5424: missing TIMESTAMP";
    if (h.timestamp != "-" && !is_rfc3339(h.timestamp)) return "RFC 5424: TIMESTAMP is not an RFC 3339 date-time";
    if (!header_field(s, pos, h.hostname)) return "RFC 5424: missing or invalid HOSTNAME";
    if (!header_field(s, pos, h.app_name)) return "RFC 5424: missing or invalid APP-NAME";
    if (!header_field(s, pos, h.procid)) return "RFC 5424: missing or invalid PROCID";
    if (!header_field(s, pos, h.msgid)) return "RFC 5424: missing or invalid MSGID";
    if (pos >= s.size()) return "RFC 5424: missing STRUCTURED-DATA";
    return nullptr;
}

// The header fields a message carries ("-" is left out).
void put_header_5424(std::string& b, const Header5424& h) {
    auto field = [&](const char* k, std::string_view v) {
        if (v == "-") return;
        key(b, k);
        append_json_text(b, v);
    };
    field("timestamp", h.timestamp);
    field("hostname", h.hostname);
    field("app_name", h.app_name);
    field("procid", h.procid);
    field("msgid", h.msgid);
}

// The PARAM-VALUE at pos (after name="), up to its closing quote, which pos moves past. A value
// with escapes (\" \\ \]) is unescaped into `scratch`. False when the value is never closed.
bool read_param_value(std::string_view s, size_t& pos, std::string& scratch, std::string_view& value) {
    // Most values have no escapes: read them in place, up to the quote.
    size_t stop = s.find_first_of("\"\\", pos);
    if (stop != std::string_view::npos && s[stop] == '"') {
        value = s.substr(pos, stop - pos);
        pos = stop + 1;
        return true;
    }
    scratch.clear();
    while (pos < s.size()) {
        char c = s[pos];
        if (c == '\\' && pos + 1 < s.size() && (s[pos + 1] == '"' || s[pos + 1] == '\\' || s[pos + 1] == ']')) {
            scratch.push_back(s[pos + 1]);
            pos += 2;
        } else if (c == '"') {
            ++pos;
            value = scratch;
            return true;
        } else {
            scratch.push_back(c);
            ++pos;
        }
    }
    return false;
}

// One SD-ELEMENT at pos ('[' SD-ID *(' ' name="value") ']'), appended as "id":{"name":"value",...}.
// Returns the parse error, or nullptr.
const char* put_sd_element(std::string_view s, size_t& pos, std::string& scratch, std::string& b, bool first) {
    ++pos;
    std::string_view id = read_sd_name(s, pos);
    if (id.empty() || pos >= s.size()) return "RFC 5424: invalid SD-ID in STRUCTURED-DATA";
    if (!first) b.push_back(',');
    append_json_text(b, id);
    b.append(":{");
    bool first_param = true;
    while (pos < s.size() && s[pos] == ' ') {
        ++pos;
        std::string_view name = read_sd_name(s, pos);
        if (name.empty() || pos + 1 >= s.size() || s[pos] != '=' || s[pos + 1] != '"')
            return "RFC 5424: invalid SD-PARAM (expected name=\"value\")";
        pos += 2;
        std::string_view value;
        if (!read_param_value(s, pos, scratch, value)) return "RFC 5424: unterminated PARAM-VALUE in STRUCTURED-DATA";
        if (!first_param) b.push_back(',');
        first_param = false;
        append_json_text(b, name);
        b.push_back(':');
        append_json_text(b, value);
    }
    if (pos >= s.size() || s[pos] != ']') return "RFC 5424: STRUCTURED-DATA element not closed by ']'";
    ++pos;
    b.push_back('}');
    return nullptr;
}

// STRUCTURED-DATA at pos: '-', or SD-ELEMENTs appended as "structured_data":{...}. Returns the
// parse error, or nullptr.
const char* put_structured_data(std::string_view s, size_t& pos, std::string& scratch, std::string& b) {
    if (s[pos] == '-') {
        ++pos;
        return nullptr;
    }
    if (s[pos] != '[') return "RFC 5424: STRUCTURED-DATA must be '-' or start with '['";
    key(b, "structured_data");
    b.push_back('{');
    for (bool first = true; pos < s.size() && s[pos] == '['; first = false)
        if (const char* why = put_sd_element(s, pos, scratch, b, first)) return why;
    b.push_back('}');
    return nullptr;
}

// An RFC 3164 "Mmm dd hh:mm:ss " stamp (dd may be " 9"), without zone or year.
struct BsdStamp {
    int month = 0, day = -1, hour = -1, minute = -1, second = -1;
};

bool read_bsd_stamp(std::string_view s, BsdStamp& t) {
    if (s.size() >= 16)
        for (int m = 0; m < 12 && t.month == 0; ++m)
            if (std::memcmp(kMonths + 3 * m, s.data(), 3) == 0) t.month = m + 1;
    if (t.month && s[3] == ' ') {
        t.day = s[4] == ' ' ? digits(s, 5, 1) : digits(s, 4, 2);
        t.hour = digits(s, 7, 2);
        t.minute = digits(s, 10, 2);
        t.second = digits(s, 13, 2);
    }
    return t.day >= 1 && t.day <= 31 && s[6] == ' ' && t.hour >= 0 && t.hour <= 23 && s[9] == ':' && t.minute >= 0 && t.minute <= 59 &&
           s[12] == ':' && t.second >= 0 && t.second <= 60 && s[15] == ' ';
}

// The year of a BSD stamp: the receive year in the zone, or the one before/after when that puts
// the message more than half a year away (December's messages read in January).
int bsd_year(const BsdStamp& t, int64_t received_ns, const ParserOptions& o) {
    const std::tm now = receive_time(received_ns, o.local_zone, o.fixed_offset_s);
    int year = now.tm_year + 1900;
    int64_t msg_day = days_from_civil(year, unsigned(t.month), unsigned(t.day));
    int64_t now_day = days_from_civil(year, unsigned(now.tm_mon + 1), unsigned(now.tm_mday));
    if (msg_day - now_day > 183) --year;
    else if (now_day - msg_day > 183) ++year;
    return year;
}

// RFC 3164's HOSTNAME at pos, unless the next word is already the TAG ("su:" or "sshd[12]:").
// Returns the position after it (pos when there is none).
size_t put_hostname_3164(std::string_view s, size_t pos, std::string& b) {
    size_t sp = s.find(' ', pos);
    std::string_view word = s.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (sp == std::string_view::npos || word.empty() || word.back() == ':' || word.find('[') != std::string_view::npos) return pos;
    bool ok = true;
    for (char c : word) ok &= printable(c);
    if (!ok) return pos;
    key(b, "hostname");
    append_json_text(b, word);
    return sp + 1;
}

// TAG[PID]: at pos, the TAG at most 48 characters without spaces, ':' or '['. Returns the
// position of the MSG after it (pos when there is no TAG).
size_t put_tag_3164(std::string_view s, size_t pos, std::string& b) {
    size_t t = pos;
    while (t < s.size() && t - pos <= 48 && printable(s[t]) && s[t] != ':' && s[t] != '[') ++t;
    if (t == pos || t >= s.size() || (s[t] != ':' && s[t] != '[')) return pos;
    std::string_view tag = s.substr(pos, t - pos);
    std::string_view pid;
    size_t after = t;
    if (s[t] == '[') {
        size_t close = s.find(']', t);
        if (close == std::string_view::npos || close - t > 129 || close + 1 >= s.size() || s[close + 1] != ':') return pos;
        pid = s.substr(t + 1, close - t - 1);
        after = close + 1;
    }
    key(b, "app_name");
    append_json_text(b, tag);
    if (!pid.empty()) {
        key(b, "procid");
        append_json_text(b, pid);
    }
    pos = after + 1;  // past ':'
    if (pos < s.size() && s[pos] == ' ') ++pos;
    return pos;
}

}  // namespace

void append_json_text(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out.push_back('"');
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') ++run;
        if (run > i) {
            out.append(s.data() + i, run - i);
            i = run;
            if (i == n) break;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t len = utf8_len(p + i, n - i);
            if (len == 0) {
                out.append("\xEF\xBF\xBD");
                ++i;
            } else {
                out.append(s.data() + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
            case '"': out.append("\\\""); break;
            case '\\': out.append("\\\\"); break;
            case '\n': out.append("\\n"); break;
            case '\r': out.append("\\r"); break;
            case '\t': out.append("\\t"); break;
            default:
                out.append("\\u00");
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 15]);
        }
        ++i;
    }
    out.push_back('"');
}

bool parse_timezone(std::string_view s, ParserOptions& o) {
    if (s == "local" || s.empty()) {
        o.local_zone = true;
        return true;
    }
    o.local_zone = false;
    if (s == "UTC" || s == "Z" || s == "utc") {
        o.fixed_offset_s = 0;
        return true;
    }
    if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
    int h = digits(s, 1, 2), m = digits(s, 4, 2);
    if (h < 0 || h > 23 || m < 0 || m > 59) return false;
    o.fixed_offset_s = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
    return true;
}

void Parser::pri_fields(std::string& b, int pri) {
    b.append("{\"facility\":\"");
    b.append(kFacility[pri >> 3]);
    b.append("\",\"severity\":\"");
    b.append(kSeverity[pri & 7]);
    b.push_back('"');
}

void Parser::raw_event(std::string_view msg, const char* why, Batch& out) {
    error_ = why;
    out.begin_event();
    std::string& b = out.buf;
    b.append("{\"message\":");
    append_json_text(b, msg);
    b.append(",\"parse_error\":");
    append_json_text(b, why);
    b.push_back('}');
    out.finish_event();
}

bool Parser::parse(std::string_view msg, int64_t received_ns, Batch& out) {
    size_t pos = 0;
    int pri = read_pri(msg, pos);
    if (pri < 0) {
        raw_event(msg, msg.empty() || msg[0] != '<' ? "no PRI: a syslog message starts with <0> to <191>" : "invalid PRI: expected <0> to <191>",
                  out);
        return false;
    }
    std::string_view rest = msg.substr(pos);
    bool ok;
    if (rest.size() >= 2 && rest[0] == '1' && rest[1] == ' ') ok = parse_5424(rest.substr(2), pri, out);
    else ok = parse_3164(rest, pri, received_ns, out);
    if (!ok) raw_event(msg, error_, out);
    return ok;
}

bool Parser::parse_5424(std::string_view s, int pri, Batch& out) {
    size_t pos = 0;
    Header5424 h;
    if (const char* why = read_header_5424(s, pos, h)) return error_ = why, false;

    out.begin_event();
    std::string& b = out.buf;
    pri_fields(b, pri);
    put_header_5424(b, h);
    if (const char* why = put_structured_data(s, pos, scratch_, b)) return rejected(out, error_, why);
    if (pos < s.size()) {
        if (s[pos] != ' ') return rejected(out, error_, "RFC 5424: expected a space between STRUCTURED-DATA and MSG");
        std::string_view m = s.substr(pos + 1);
        if (m.size() >= 3 && m.substr(0, 3) == "\xEF\xBB\xBF") m.remove_prefix(3);
        key(b, "message");
        append_json_text(b, m);
    }
    b.push_back('}');
    out.finish_event();
    return true;
}

int32_t Parser::local_offset(int year, int month, int day, int hour) {
    if (!o_.local_zone) return o_.fixed_offset_s;
    int64_t k = ((int64_t(year) * 13 + month) * 32 + day) * 24 + hour;
    if (k == cached_hour_key_) return cached_offset_;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = 30;
    tm.tm_isdst = -1;
    std::time_t local = std::mktime(&tm);
    int64_t as_utc = days_from_civil(year, unsigned(month), unsigned(day)) * 86400 + hour * 3600 + 30 * 60;
    cached_offset_ = local == std::time_t(-1) ? 0 : int32_t(as_utc - int64_t(local));
    cached_hour_key_ = k;
    return cached_offset_;
}

size_t Parser::put_timestamp_3164(std::string_view s, int64_t received_ns, std::string& b) {
    BsdStamp t;
    if (read_bsd_stamp(s, t)) {
        int year = bsd_year(t, received_ns, o_);
        key(b, "timestamp");
        put_time(b, year, t.month, t.day, t.hour, t.minute, t.second, local_offset(year, t.month, t.day, t.hour));
        return 16;
    }
    // An RFC 3339 stamp: rsyslog's forwarding format.
    size_t sp = s.find(' ');
    std::string_view tok = s.substr(0, sp == std::string_view::npos ? s.size() : sp);
    if (sp != std::string_view::npos && is_rfc3339(tok)) {
        key(b, "timestamp");
        append_json_text(b, tok);
        return sp + 1;
    }
    // No timestamp: the receive time stands in (RFC 3164 4.3.2 says a relay adds one).
    const std::tm now = receive_time(received_ns, o_.local_zone, o_.fixed_offset_s);
    key(b, "timestamp");
    put_time(b, now.tm_year + 1900, now.tm_mon + 1, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec,
             o_.local_zone ? int32_t(now.tm_gmtoff) : o_.fixed_offset_s);
    return 0;
}

bool Parser::parse_3164(std::string_view s, int pri, int64_t received_ns, Batch& out) {
    out.begin_event();
    std::string& b = out.buf;
    pri_fields(b, pri);
    size_t pos = put_timestamp_3164(s, received_ns, b);
    pos = put_hostname_3164(s, pos, b);
    pos = put_tag_3164(s, pos, b);
    key(b, "message");
    append_json_text(b, s.substr(std::min(pos, s.size())));
    b.push_back('}');
    out.finish_event();
    return true;
}

}  // namespace hbf::syslog
