#include "forward/event_time.h"

#include <charconv>

#include "civil_time.h"

namespace hbf::forward {
namespace {

void put(char*& p, unsigned v, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
        p[i] = char('0' + v % 10);
        v /= 10;
    }
    p += digits;
}

bool digits(std::string_view s, size_t at, size_t n, unsigned& v) {
    if (at + n > s.size()) return false;
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + unsigned(s[i] - '0');
    }
    return true;
}

}  // namespace

void append_rfc3339(std::string& out, EventTime t) {
    int64_t days = t.sec / 86400, rem = t.sec % 86400;
    if (rem < 0) rem += 86400, --days;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;  // outside RFC 3339's range: clamp the year
    char buf[32];
    char* p = buf;
    put(p, unsigned(y), 4);
    *p++ = '-';
    put(p, m, 2);
    *p++ = '-';
    put(p, d, 2);
    *p++ = 'T';
    put(p, unsigned(rem / 3600), 2);
    *p++ = ':';
    put(p, unsigned(rem / 60 % 60), 2);
    *p++ = ':';
    put(p, unsigned(rem % 60), 2);
    *p++ = '.';
    put(p, t.nsec % 1000000000u, 9);
    *p++ = 'Z';
    out.append(buf, size_t(p - buf));
}

bool parse_rfc3339(std::string_view s, EventTime& t) {
    unsigned y, mo, d, h, mi, se;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' || !digits(s, 8, 2, d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) ||
        s[16] != ':' || !digits(s, 17, 2, se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
    size_t i = 19;
    uint32_t ns = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (n < 9) ns = ns * 10 + uint32_t(s[i] - '0'), ++n;
            ++i;
        }
        if (n == 0) return false;
        for (; n < 9; ++n) ns *= 10;
    }
    int64_t offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        unsigned oh, om;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om)) return false;
        offset = (s[i] == '-' ? -1 : 1) * int64_t(oh * 3600 + om * 60);
        i += 6;
    } else {
        return false;
    }
    if (i != s.size()) return false;
    t.sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    t.nsec = ns;
    return true;
}

char* encode_event_time(char* p, EventTime t) {
    *p++ = char(0xd7);
    *p++ = 0;
    uint32_t s = uint32_t(t.sec), n = t.nsec;
    for (int i = 3; i >= 0; --i) *p++ = char(s >> (8 * i));
    for (int i = 3; i >= 0; --i) *p++ = char(n >> (8 * i));
    return p;
}

}  // namespace hbf::forward
