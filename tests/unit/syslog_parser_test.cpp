// The syslog input's parser (RFC 5424, RFC 3164, errors) and its TCP framer (RFC 6587).
#include <catch2/catch.hpp>
#include <simdjson.h>

#include "../../stages/inputs/syslog/framing.h"
#include "../../stages/inputs/syslog/parser.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::syslog;

namespace {

constexpr int64_t kNov29 = 1795960800LL * 1000000000;  // 2026-11-29T14:00:00Z

std::string parse(std::string_view msg, ParserOptions o = {false, 0}, int64_t received = kNov29, bool* ok = nullptr) {
    Parser p(o);
    BatchPtr b = Batch::make();
    bool r = p.parse(msg, received, *b);
    if (ok) *ok = r;
    REQUIRE(b->size() == 1);
    std::string ev(b->event(0));
    // Every event is valid JSON, whatever came in.
    simdjson::dom::parser check;
    INFO(ev);
    REQUIRE(check.parse(ev).error() == simdjson::SUCCESS);
    return ev;
}

std::vector<std::string> frames(Framer& f, std::string_view data, bool eof, std::vector<std::string>* bad = nullptr, size_t* used = nullptr) {
    std::vector<std::string> out;
    size_t u = f.feed(data.data(), data.size(), eof, [&](std::string_view m) { out.emplace_back(m); },
                      [&](const char* why) { if (bad) bad->emplace_back(why); });
    if (used) *used = u;
    return out;
}

}  // namespace

TEST_CASE("syslog: an RFC 5424 message with every field, Junos structured data and a BOM") {
    std::string ev = parse(
        "<165>1 2026-11-29T15:00:00.123456+01:00 mx480-pe2 rpd 1234 SNMP_TRAP_LINK_DOWN "
        "[junos@2636.1.1.1.2.57 snmp-interface-index=\"545\" interface-name=\"xe-0/1/4\"][meta seq=\"a\\\"b\\]c\\\\\"] "
        "\xEF\xBB\xBFxe-0/1/4 is down");
    CHECK(ev ==
          R"({"facility":"local4","severity":"notice","timestamp":"2026-11-29T15:00:00.123456+01:00","hostname":"mx480-pe2","app_name":"rpd",)"
          R"("procid":"1234","msgid":"SNMP_TRAP_LINK_DOWN","structured_data":{"junos@2636.1.1.1.2.57":{"snmp-interface-index":"545",)"
          R"("interface-name":"xe-0/1/4"},"meta":{"seq":"a\"b]c\\"}},"message":"xe-0/1/4 is down"})");
}

TEST_CASE("syslog: RFC 5424 nil values are left out, and a message may be absent") {
    CHECK(parse("<0>1 - - - - - -") == R"({"facility":"kern","severity":"emerg"})");
    CHECK(parse("<191>1 2026-11-29T14:00:00Z h - - - - hi") ==
          R"({"facility":"local7","severity":"debug","timestamp":"2026-11-29T14:00:00Z","hostname":"h","message":"hi"})");
}

TEST_CASE("syslog: malformed RFC 5424 headers are kept raw with the reason") {
    bool ok = true;
    struct Case {
        const char* msg;
        const char* why;
    } cases[] = {
        {"<13>1 yesterday h a p m - x", "RFC 5424: TIMESTAMP is not an RFC 3339 date-time"},
        {"<13>1 2026-11-29T14:00:00Z h a p", "RFC 5424: missing or invalid PROCID"},
        {"<13>1 - h a p m x", "RFC 5424: STRUCTURED-DATA must be '-' or start with '['"},
        {"<13>1 - h a p m [id a=1]", "RFC 5424: invalid SD-PARAM (expected name=\"value\")"},
        {"<13>1 - h a p m [id a=\"1]", "RFC 5424: unterminated PARAM-VALUE in STRUCTURED-DATA"},
        {"<13>1 - h a p m [id a=\"1\"", "RFC 5424: STRUCTURED-DATA element not closed by ']'"},
        {"<13>1 - h a p m [id]x", "RFC 5424: expected a space between STRUCTURED-DATA and MSG"},
        {"<13>1 - h a p m []", "RFC 5424: invalid SD-ID in STRUCTURED-DATA"},
    };
    for (auto& c : cases) {
        std::string ev = parse(c.msg, {false, 0}, kNov29, &ok);
        CHECK_FALSE(ok);
        std::string want = "{\"message\":";
        append_json_text(want, c.msg);
        want += ",\"parse_error\":";
        append_json_text(want, c.why);
        want += "}";
        CHECK(ev == want);
    }
}

TEST_CASE("syslog: a message without a valid PRI is kept raw") {
    bool ok = true;
    CHECK(parse("hello world", {false, 0}, kNov29, &ok) ==
          R"({"message":"hello world","parse_error":"no PRI: a syslog message starts with <0> to <191>"})");
    CHECK_FALSE(ok);
    CHECK(parse("<192>1 - - - - - -", {false, 0}, kNov29, &ok) ==
          R"({"message":"<192>1 - - - - - -","parse_error":"invalid PRI: expected <0> to <191>"})");
    CHECK(parse("<1a>x").find("invalid PRI") != std::string::npos);
    CHECK(parse("<>").find("invalid PRI") != std::string::npos);
    CHECK(parse("<1234>x").find("invalid PRI") != std::string::npos);
}

TEST_CASE("syslog: RFC 3164 with hostname, tag and pid, its time read in the configured zone with the receive year") {
    CHECK(parse("<34>Nov 29 15:04:05 mx1 sshd[1234]: Accepted publickey", {false, 3600}) ==
          R"({"facility":"auth","severity":"crit","timestamp":"2026-11-29T15:04:05+01:00","hostname":"mx1","app_name":"sshd",)"
          R"("procid":"1234","message":"Accepted publickey"})");
    CHECK(parse("<13>Nov  9 01:02:03 mx1 su: hi") ==
          R"({"facility":"user","severity":"notice","timestamp":"2026-11-09T01:02:03Z","hostname":"mx1","app_name":"su","message":"hi"})");
    // No hostname: the first word is the tag.
    CHECK(parse("<13>Nov 29 15:04:05 cron: job done", {false, -19800}) ==
          R"({"facility":"user","severity":"notice","timestamp":"2026-11-29T15:04:05-05:30","app_name":"cron","message":"job done"})");
    // No tag.
    CHECK(parse("<13>Nov 29 15:04:05 mx1 just some text") ==
          R"({"facility":"user","severity":"notice","timestamp":"2026-11-29T15:04:05Z","hostname":"mx1","message":"just some text"})");
}

TEST_CASE("syslog: an RFC 3164 December message read in January belongs to the year before") {
    int64_t jan2 = (1795960800LL + 34 * 86400) * 1000000000;  // 2027-01-02
    CHECK(parse("<13>Dec 31 23:59:59 h t: x", {false, 0}, jan2).find("\"2026-12-31T23:59:59Z\"") != std::string::npos);
    CHECK(parse("<13>Jan  1 00:00:01 h t: x", {false, 0}, kNov29 + 35LL * 86400 * 1000000000).find("\"2027-01-01T00:00:01Z\"") !=
          std::string::npos);
}

TEST_CASE("syslog: RFC 3164 with an RFC 3339 stamp (rsyslog's forward format) or none at all") {
    CHECK(parse("<13>2026-11-29T15:04:05.123+01:00 mx1 rpd[7]: up") ==
          R"({"facility":"user","severity":"notice","timestamp":"2026-11-29T15:04:05.123+01:00","hostname":"mx1","app_name":"rpd","procid":"7","message":"up"})");
    CHECK(parse("<13>rpd: up", {false, 0}, kNov29) ==
          R"({"facility":"user","severity":"notice","timestamp":"2026-11-29T14:00:00Z","app_name":"rpd","message":"up"})");
}

TEST_CASE("syslog: the local zone comes from TZ, with daylight saving time") {
    CHECK(parse("<13>Nov 29 15:04:05 h t: x", ParserOptions{}).find("\"timestamp\":\"2026-11-29T15:04:05") != std::string::npos);
    ParserOptions o;
    CHECK(parse_timezone("+01:00", o));
    CHECK_FALSE(o.local_zone);
    CHECK(o.fixed_offset_s == 3600);
    CHECK(parse_timezone("UTC", o));
    CHECK(o.fixed_offset_s == 0);
    CHECK(parse_timezone("local", o));
    CHECK(o.local_zone);
    for (const char* bad : {"Europe/Amsterdam", "+1", "+25:00", "01:00"}) CHECK_FALSE(parse_timezone(bad, o));
}

TEST_CASE("syslog: control characters are escaped and bytes that are not UTF-8 replaced") {
    std::string ev = parse(std::string("<13>1 - h - - - - caf\xC3\xA9 \xFF\xC0\xAF tab\there \x01 \"q\""));
    CHECK(ev == "{\"facility\":\"user\",\"severity\":\"notice\",\"hostname\":\"h\",\"message\":\"caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD tab\\there \\u0001 \\\"q\\\"\"}");
    std::string raw = parse(std::string("\xF0\x28\x8C\x28 \xED\xA0\x80", 8));
    CHECK(raw.find("parse_error") != std::string::npos);
}

TEST_CASE("syslog framing: octet-counted and LF-framed messages mixed, split anywhere") {
    std::string stream = "11 <13>1 - - -\n<13>hello\r\n5 <1>ab12 <13>x y z w q\n";
    // Whole.
    Framer f(1024);
    size_t used = 0;
    auto all = frames(f, stream, false, nullptr, &used);
    CHECK(all == std::vector<std::string>{"<13>1 - - -", "<13>hello", "<1>ab", "<13>x y z w ", "q"});
    CHECK(used == stream.size());
    // Byte by byte, as TCP may deliver it.
    Framer g(1024);
    std::vector<std::string> got;
    std::string held;
    for (char c : stream) {
        held.push_back(c);
        size_t u = 0;
        for (auto& m : frames(g, held, false, nullptr, &u)) got.push_back(m);
        held.erase(0, u);
    }
    CHECK(got == all);
}

TEST_CASE("syslog framing: messages over max_line are refused and skipped, the next one is read") {
    Framer f(8);
    std::vector<std::string> bad;
    CHECK(frames(f, "20 0123456789abcdefghij5 <1>ok", false, &bad) == std::vector<std::string>{"<1>ok"});
    CHECK(bad == std::vector<std::string>{"an octet-counted message is longer than max_line"});
    bad.clear();
    CHECK(frames(f, "<13>far too long\n<1>ok\n", false, &bad) == std::vector<std::string>{"<1>ok"});
    CHECK(bad.size() == 1);
    // A long line without its LF yet: refused once, the rest discarded up to the LF.
    bad.clear();
    CHECK(frames(f, "<13>long long long", false, &bad).empty());
    CHECK(frames(f, " more\n<1>b\n", false, &bad) == std::vector<std::string>{"<1>b"});
    CHECK(bad.size() == 1);
    // The connection closes inside a counted message; a last line without LF is a message.
    bad.clear();
    Framer g(64);
    CHECK(frames(g, "30 <13>cut", true, &bad).empty());
    CHECK(bad == std::vector<std::string>{"the connection closed inside an octet-counted message"});
    CHECK(frames(g, "<13>last", true) == std::vector<std::string>{"<13>last"});
}
