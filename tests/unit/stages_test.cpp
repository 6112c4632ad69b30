#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "filter_events.h"
#include "../../stages/filters/common/find.h"
#include "helpers.h"
#include "json_util.h"
#include "line_split.h"
#include "lines.h"
#include "string_util.h"

using namespace hbf;
using test::FilterHarness;

namespace {
// Runs an input's run() to completion and returns every event it emitted.
std::vector<std::string> run_input(const std::string& type, const std::string& body) {
    std::string text = "[inputs.i]\ntype = \"" + type + "\"\n" + body + "\n[outputs.o]\ntype = \"null\"\ninputs = [\"i\"]\n";
    auto cfg = test::config(text);
    auto built = build_stages(*cfg);
    REQUIRE(cfg->ok());
    StageContext ctx("i", type, "input");
    ctx.batch_events = 100;
    BatchQueue q(1 << 30, int64_t(1) << 40);
    ctx.targets.resize(1);
    ctx.targets[0].push_back(&q);
    Emitter em(ctx);
    built[0].input->start(ctx);
    built[0].input->run(ctx, em);
    std::vector<std::string> out;
    BatchPtr got[64];
    size_t n;
    while ((n = q.pop(got, 64, std::chrono::microseconds(0))) > 0)
        for (size_t i = 0; i < n; ++i)
            for (size_t j = 0; j < got[i]->size(); ++j) out.emplace_back(got[i]->event(j));
    return out;
}
}  // namespace

TEST_CASE("json makes valid HealthBot documents compact and keeps their content") {
    FilterHarness f("json", "");
    auto ex = test::healthbot_examples();
    auto out = f.run(ex);
    REQUIRE(out.size() == ex.size());
    CHECK(out[0].find("\"device-id\":\"mx304-pe1.fra\",\"group\":\"edge-pe\"") != std::string::npos);
    CHECK(out[0].find(", ") == std::string::npos);
    // Escapes are kept as written: HealthBot's \u00fc stays six bytes, another sender's UTF-8 stays UTF-8.
    CHECK(out[8].find("\"group\":\"standorte-z\\u00fcrich\"") != std::string::npos);
    CHECK(out[9].find("défaillant") != std::string::npos);
    simdjson::ondemand::parser p;
    for (auto& e : out) {
        simdjson::padded_string ps(e);
        CHECK(check_object(p, ps.data(), ps.size(), ps.size() + simdjson::SIMDJSON_PADDING).ok);
    }
}

TEST_CASE("json drops invalid events by default and counts them") {
    FilterHarness f("json", "");
    auto out = f.run({"{\"a\":1}", "{\"a\":", "[1,2]", "{\"a\":1} trailing", "{\"s\":\"bad \\x escape\"}", "{\"b\":2}"});
    CHECK(out == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
    CHECK(f.ctx().metrics().dropped("invalid_json").get() == 4);
}

TEST_CASE("json passes or wraps invalid events when told to") {
    FilterHarness pass("json", "on_error = \"pass\"");
    CHECK(pass.run({"not json"}) == std::vector<std::string>{"not json"});
    FilterHarness wrap("json", "on_error = \"wrap\"");
    auto out = wrap.run({"oops \"quoted\""});
    REQUIRE(out.size() == 1);
    CHECK_THAT(out[0], Catch::StartsWith("{\"message\":\"oops \\\"quoted\\\"\",\"error\":"));
}

TEST_CASE("json rejects invalid UTF-8") {
    FilterHarness f("json", "");
    CHECK(f.run({std::string("{\"a\":\"\xff\xfe\"}")}).empty());
}

TEST_CASE("json passes a batch its input marked compact_json on without parsing it again") {
    for (const char* opts : {"", "on_error = \"pass\"", "on_error = \"wrap\""}) {
        FilterHarness f("json", opts);
        const uint64_t invalid_before = f.ctx().metrics().dropped("invalid_json").get();  // shared by every stage "f"
        // The mark is trusted: text that json would otherwise compact comes out as it went in.
        BatchPtr marked = test::batch({"{\"a\": 1}", "{\"b\":2}"});
        marked->compact_json = true;
        CHECK(f.run(std::move(marked)) == std::vector<std::string>{"{\"a\": 1}", "{\"b\":2}"});
        // Unmarked, the same events are validated and compacted as always.
        CHECK(f.run({"{\"a\": 1}", "{\"b\":2}"}) == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
        CHECK(f.ctx().metrics().dropped("invalid_json").get() == invalid_before);
    }
}

TEST_CASE("check_object reports the byte offset of the error") {
    simdjson::ondemand::parser p;
    simdjson::padded_string s(std::string_view("{\"a\":1,\"b\":tru}"));
    auto r = check_object(p, s.data(), s.size(), s.size() + simdjson::SIMDJSON_PADDING);
    CHECK_FALSE(r.ok);
    CHECK(r.offset == 11);
}

// Changes `times` bytes of t at random (replaced, inserted, or 1-3 erased) with bytes that matter
// to JSON.
template <class Rng>
static void mutate(std::string& t, Rng& rng, int times) {
    static const std::string alphabet = "{}[]:,\"\\ \t\n0123456789eE.+-tfnulraxu\x01\x7f\xc3\xa9\xff";
    for (int k = times; k > 0 && !t.empty(); --k) {
        const size_t at = rng() % t.size();
        const char c = alphabet[rng() % alphabet.size()];
        switch (rng() % 3) {
            case 0: t[at] = c; break;
            case 1: t.insert(t.begin() + long(at), c); break;
            default: t.erase(at, 1 + rng() % 3); break;
        }
    }
}

// The DOM pass must give check_object's verdict on anything: the same ok, offset and message.
// The one-pass append_compact_if_valid must give the same verdict and, when ok, append_compact's
// text. Returns whether the text is valid.
static bool require_same_verdict(ObjectChecker& fast, simdjson::ondemand::parser& walk, const std::string& text) {
    std::string buf = text;
    buf.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    JsonCheck a = fast.check(buf.data(), text.size(), buf.capacity());
    JsonCheck b = check_object(walk, buf.data(), text.size(), buf.capacity());
    INFO(text);
    REQUIRE(a.ok == b.ok);
    REQUIRE(a.offset == b.offset);
    REQUIRE(std::string(a.message) == b.message);
    std::string out = "prefix", want = "prefix";
    JsonCheck c = fast.append_compact_if_valid(out, buf.data(), text.size(), buf.capacity());
    REQUIRE(c.ok == b.ok);
    REQUIRE(c.offset == b.offset);
    REQUIRE(std::string(c.message) == b.message);
    if (b.ok) append_compact(want, text);
    REQUIRE(out == want);
    return b.ok;
}

TEST_CASE("ObjectChecker agrees with check_object on mutated events, numbers, escapes and depth") {
    ObjectChecker fast;
    simdjson::ondemand::parser walk;
    const std::vector<std::string> seeds = {
        "{\"device-id\": \"mx960-1\", \"keys\": {\"_instance_id\": \"[\\\"core-isis\\\"]\", \"n\": [1, -2.5e3, 0, true, false, null]}, "
        "\"message\": \"IS-IS adjacency on et-0/0/5.0 is Down \\u00e9\\ud83d\\ude00\", \"severity\": \"major\"}",
        "{\"a\":{\"b\":[{\"c\":\"\\n\\t\\\\\\/\"},[],{}]},\"big\":18446744073709551615,\"neg\":-9223372036854775808,\"f\":1.5E-300}",
        "{}",
        // Nothing the one pass leaves to the slow path (no exponent, long number or surrogate):
        // the mutations of these exercise its grammar and token checks.
        "{\"device-id\": \"mx960-1\", \"keys\": {\"_instance_id\": \"[\\\"core-isis\\\"]\", \"n\": [1, -2.5, 0, true, false, null, {}, []]}, "
        "\"message\": \"IS-IS \\u00e9 \\/ \\b\\f\\n\\r\\t adjacency\", \"severity\": \"major\", \"value\": 1532, \"x\": \"\"}",
        "{ \"a\" :\n[ { \"b\" : [ [ ], { } , -0.5 ] } ] ,\t\"c\":\"\\\\\" , \"d\" : [\"\\\"\", 12345678901234] }",
    };
    std::mt19937 rng(2026);
    for (int it = 0; it < 30000; ++it) {
        std::string t = seeds[rng() % seeds.size()];
        mutate(t, rng, 1 + int(rng() % 3));
        require_same_verdict(fast, walk, t);
    }
    CHECK(fast.one_pass() > 1000);  // the walk settled many (most mutations make a text invalid)
    for (size_t k = 2; k < seeds.size(); ++k) {  // and settles these seeds itself
        const uint64_t before = fast.one_pass();
        require_same_verdict(fast, walk, seeds[k]);
        CHECK(fast.one_pass() == before + 1);
    }
    for (const char* n : {"123456789012345678901234567890", "18446744073709551616", "-9223372036854775809", "1e400", "1e-400", "01", "-", "1.", ".5"})
        require_same_verdict(fast, walk, std::string("{\"a\":") + n + "}");
    for (const char* str : {"\\ud83d\\ude00", "\\ud83d", "\\ude00", "\\ud83dx", "\\ud83d\\u0041", "\\u00e9", "\\u00G9", "\\u00e", "\\x", "\\"})
        require_same_verdict(fast, walk, std::string("{\"a\":\"") + str + "\"}");
    for (size_t depth : {150, 199, 200, 201, 255, 256, 257, 258, 300, 1100}) {
        require_same_verdict(fast, walk, "{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}");
        std::string objs = "{\"a\":";
        for (size_t d = 0; d < depth; ++d) objs += "{\"a\":";
        require_same_verdict(fast, walk, objs + "1" + std::string(depth + 1, '}'));
    }
    // Without SIMDJSON_PADDING readable after the text, only the walk runs (and says why).
    std::string tight = "{\"a\":1}";
    tight.shrink_to_fit();
    CHECK(fast.check(tight.data(), tight.size(), tight.size()).ok == check_object(walk, tight.data(), tight.size(), tight.size()).ok);
}

// Random JSON objects from a small grammar (whitespace anywhere, escapes, surrogate pairs, UTF-8,
// numbers at the walk's limits), some with up to two bytes changed: the one pass must give
// check()'s verdict and append_compact's text on each.
namespace {
struct JsonGen {
    std::mt19937_64 rng{20261130};
    std::string ws() {
        static const char* w[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
        return w[rng() % 7];
    }
    std::string str() {
        static const char* parts[] = {"a", "b c", "\\\"", "\\\\", "\\/", "\\n", "\\u00e9", "\\u20AC", "\\ud83d\\ude00", "\xc3\xa9",
                                      "[\\\"core-isis\\\"]", "x y z 12 and more than thirty-two bytes of text", "\\t", "\\b\\f\\r"};
        std::string s = "\"";
        for (int n = int(rng() % 5); n > 0; --n) s += parts[rng() % 14];
        return s + "\"";
    }
    std::string number() {
        static const char* ns[] = {"0", "-0", "1", "-12", "1532", "3.25", "-0.5", "123456789012345678", "1234567890123456789",
                                   "1e5", "2.5E-3", "99999999999999999999"};
        return ns[rng() % 12];
    }
    std::string value(int depth) {
        switch (rng() % (depth > 6 ? 5 : 7)) {
            case 0: return str();
            case 1: return number();
            case 2: return "true";
            case 3: return "false";
            case 4: return "null";
            case 5: return object(depth + 1);
            default: {
                std::string s = "[" + ws();
                for (int i = 0, n = int(rng() % 4); i < n; ++i) s += (i ? ws() + "," + ws() : "") + value(depth + 1);
                return s + ws() + "]";
            }
        }
    }
    std::string object(int depth) {
        std::string s = "{" + ws();
        for (int i = 0, n = int(rng() % 5); i < n; ++i) s += (i ? ws() + "," + ws() : "") + str() + ws() + ":" + ws() + value(depth);
        return s + ws() + "}";
    }
};
}  // namespace

TEST_CASE("the one pass agrees with check() and append_compact on generated objects") {
    JsonGen g;
    ObjectChecker fast;
    simdjson::ondemand::parser walk;
    size_t valid = 0;
    for (int it = 0; it < 40000; ++it) {
        std::string t = g.ws() + g.object(0) + g.ws();
        mutate(t, g.rng, int(g.rng() % 3));
        valid += require_same_verdict(fast, walk, t);
    }
    CHECK(valid > 10000);
    CHECK(fast.one_pass() > 8000);  // most valid ones settled by the walk (the rest have an exponent, a long number or a surrogate)
}

TEST_CASE("enrich splices static fields into each event") {
    FilterHarness f("enrich", "fields = { collector = \"edge-01\", dc = 3, prod = true }");
    auto out = f.run({"{\"a\":1}", "{}", "{ \"b\": [1] }"});
    CHECK(out[0] == "{\"a\":1,\"collector\":\"edge-01\",\"dc\":3,\"prod\":true}");
    CHECK(out[1] == "{\"collector\":\"edge-01\",\"dc\":3,\"prod\":true}");
    CHECK(out[2] == "{ \"b\": [1] ,\"collector\":\"edge-01\",\"dc\":3,\"prod\":true}");
}

TEST_CASE("enrich leaves an existing field alone unless overwrite is set") {
    FilterHarness keep("enrich", "fields = { collector = \"edge-01\" }");
    CHECK(keep.run({"{\"collector\":\"mine\",\"x\":1}"})[0] == "{\"collector\":\"mine\",\"x\":1}");
    // The name inside a nested object or a string does not count as the field.
    CHECK(keep.run({"{\"m\":\"\\\"collector\\\"\",\"k\":{\"collector\":1}}"})[0] ==
          "{\"m\":\"\\\"collector\\\"\",\"k\":{\"collector\":1},\"collector\":\"edge-01\"}");
    FilterHarness over("enrich", "fields = { collector = \"edge-01\" }\noverwrite = true");
    CHECK(over.run({"{\"collector\":\"mine\",\"x\":{\"y\":[1,2]}}"})[0] == "{\"x\":{\"y\":[1,2]},\"collector\":\"edge-01\"}");
}

TEST_CASE("enrich stamps the receive time as RFC 3339 UTC with nanoseconds") {
    FilterHarness f("enrich", "received_at_field = \"received_at\"\nhostname_field = \"host\"");
    BatchPtr b = test::batch({"{\"a\":1}"});
    b->received_ns = 1764000000123456789;
    auto out = f.run(std::move(b));
    CHECK_THAT(out[0], Catch::StartsWith("{\"a\":1,\"host\":\""));
    CHECK_THAT(out[0], Catch::EndsWith(",\"received_at\":\"2025-11-24T16:00:00.123456789Z\"}"));
}

TEST_CASE("enrich's receive time follows each batch: the same second, the next, an earlier one") {
    FilterHarness f("enrich", "received_at_field = \"t\"");
    auto stamp = [&](int64_t ns) {
        BatchPtr b = test::batch({"{}"});
        b->received_ns = ns;
        return f.run(std::move(b))[0];
    };
    CHECK(stamp(1764000000123456789) == "{\"t\":\"2025-11-24T16:00:00.123456789Z\"}");
    CHECK(stamp(1764000000000000005) == "{\"t\":\"2025-11-24T16:00:00.000000005Z\"}");
    CHECK(stamp(1764000001900000000) == "{\"t\":\"2025-11-24T16:00:01.900000000Z\"}");
    CHECK(stamp(1700000000000000000) == "{\"t\":\"2023-11-14T22:13:20.000000000Z\"}");
}

TEST_CASE("enrich puts a comma before its members only when the object has one, whatever the whitespace") {
    FilterHarness f("enrich", "fields = { c = 1 }");
    CHECK(f.run({"{}", "{ }", "{\"a\":1 }", "{\n\"a\":{}\t}", "{\"a\":{ }}"}) ==
          std::vector<std::string>{"{\"c\":1}", "{ \"c\":1}", "{\"a\":1 ,\"c\":1}", "{\n\"a\":{}\t,\"c\":1}", "{\"a\":{ },\"c\":1}"});
}

TEST_CASE("enrich needs something to add") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.e]\ntype = \"enrich\"\ninputs = [\"i\"]\n[outputs.o]\ntype = \"null\"\ninputs = [\"e\"]\n", "t.toml");
    build_stages(*cfg);
    CHECK_THAT(cfg->report(), Catch::Contains("enrich has nothing to add"));
}

TEST_CASE("generate is deterministic for a seed and HealthBot-shaped") {
    auto a = run_input("generate", "count = 500\nseed = 7\ndevices = 20");
    auto b = run_input("generate", "count = 500\nseed = 7\ndevices = 20");
    auto c = run_input("generate", "count = 500\nseed = 8\ndevices = 20");
    REQUIRE(a.size() == 500);
    CHECK(a == b);
    CHECK(a != c);
    simdjson::ondemand::parser p;
    std::set<std::string> devices;
    int normal = 0;
    for (auto& e : a) {
        simdjson::padded_string ps(e);
        REQUIRE(check_object(p, ps.data(), ps.size(), ps.size() + simdjson::SIMDJSON_PADDING).ok);
        simdjson::ondemand::document d = p.iterate(ps);
        for (const char* f : {"device-id", "group", "keys", "message", "rule", "severity", "topic", "trigger"})
            CHECK(e.find(std::string("\"") + f + "\": ") != std::string::npos);
        std::string_view dev = d["device-id"].get_string().value();
        devices.insert(std::string(dev));
        if (e.find("\"severity\": \"normal\"") != std::string::npos) ++normal;
    }
    CHECK(devices.size() <= 20);
    CHECK(devices.size() >= 10);
    CHECK(normal > 500 * 30 / 100);
    CHECK(normal < 500 * 60 / 100);
}

TEST_CASE("the line splitter keeps partial lines across reads and drops over-long ones") {
    LineSplitter ls(10);
    BatchPtr b = Batch::make();
    std::string one = "{\"a\":1}\n{\"b\"", two = ":2}\n\n{\"toolong\":12345}\n{}";
    CHECK(ls.feed(one.data(), one.size(), *b) == 0);
    CHECK(ls.feed(two.data(), two.size(), *b) == 1);
    CHECK(ls.finish(*b) == 0);
    CHECK(test::texts(*b) == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{}"});
}

TEST_CASE("resize_uninitialized grows a string keeping its bytes, and the string stays usable") {
    for (size_t start : {size_t(0), size_t(5), size_t(15), size_t(16), size_t(1000)}) {
        std::string s(start, 'x');
        for (size_t n : {start, start + 1, start + 10, start + 4096}) {
            resize_uninitialized(s, n);
            REQUIRE(s.size() == n);
            REQUIRE(s.capacity() >= n);
            REQUIRE(s.c_str()[n] == '\0');
            REQUIRE(s.compare(0, start, std::string(start, 'x')) == 0);
            std::memset(s.data() + start, 'y', n - start);
            s.resize(start);
        }
        s += "end";
        REQUIRE(s == std::string(start, 'x') + "end");
    }
}

TEST_CASE("the line splitter reads in place: any reads and batch breaks give the plain split, dense batches") {
    // Lines of 0-14 bytes (max_line 10) with CRs, empty lines and CRLF pairs, read in chunks of
    // 1-40 bytes, some short of the room asked for, with batches handed over at random.
    std::mt19937 rng(7);
    for (int it = 0; it < 3000; ++it) {
        std::string text;
        const char alphabet[] = "ab{}\r\n\n";
        const size_t n = rng() % 200;
        for (size_t i = 0; i < n; ++i) text += alphabet[rng() % (sizeof alphabet - 1)];
        test::Split want = test::split_plainly(text, 10), got = test::split_in_place(text, 10, 40, rng);
        INFO(text);
        REQUIRE(got.batches_ok);
        REQUIRE(got.lines == want.lines);
        REQUIRE(got.dropped == want.dropped);
    }
}

TEST_CASE("append_compact removes whitespace outside strings only") {
    std::string out;
    append_compact(out, "{ \"a\" : \"x y\\\"  z\\\\\", \"b\": [ 1 , {\"c\" : \"\\\\\\\\\" } ],\n\t\"d\": \"in\\tside\" }");
    CHECK(out == "{\"a\":\"x y\\\"  z\\\\\",\"b\":[1,{\"c\":\"\\\\\\\\\"}],\"d\":\"in\\tside\"}");
}

// The string state byte by byte: what append_compact must produce for any text.
static std::string compact_reference(std::string_view s) {
    std::string o;
    bool in = false, esc = false;
    for (char c : s) {
        if (in) {
            o += c;
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in = false;
        } else if (c == '"') {
            o += c;
            in = true;
        } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            o += c;
        }
    }
    return o;
}

TEST_CASE("append_compact agrees with the byte-by-byte state at every length and block boundary") {
    // Quotes, backslash runs and whitespace in every position around the 32-byte blocks.
    std::mt19937 rng(15);
    const char alphabet[] = "\"\\ \n\t\rab{}:,";
    for (int it = 0; it < 20000; ++it) {
        std::string s;
        const size_t n = rng() % 140;
        for (size_t i = 0; i < n; ++i) s += alphabet[rng() % (sizeof alphabet - 1)];
        std::string out = "kept";
        append_compact(out, s);
        REQUIRE(out == "kept" + compact_reference(s));
    }
    // A long HealthBot-like event, pretty-printed and compact, with escaped quotes across blocks.
    std::string ev = "{ \"keys\": { \"_instance_id\": \"[\\\"core-isis\\\"]\" },\n  \"message\": \"IS-IS adjacency on et-0/0/5.0 to "
                     "0100.1000.0203 (instance master) is Down since 12:03:55\", \"a\\\\\": [ 1, 2 ,3 ] }";
    for (size_t pad = 0; pad < 40; ++pad) {
        std::string s = std::string(pad, ' ') + ev;
        std::string out;
        append_compact(out, s);
        CHECK(out == compact_reference(s));
    }
}

TEST_CASE("contains finds a needle wherever memmem would") {
    std::mt19937 rng(9);
    for (int it = 0; it < 50000; ++it) {
        std::string h, nd;
        const size_t n = rng() % 300, m = rng() % 15;  // past 32 + m: whole blocks and the overlapping last one
        for (size_t i = 0; i < n; ++i) h += "ab\"c"[rng() % 4];
        if (m <= n && rng() % 2) {  // a needle taken from the haystack, perhaps with one byte changed
            nd = h.substr(rng() % (n - m + 1), m);
            if (m && rng() % 2) nd[rng() % m] = "ab\"c"[rng() % 4];
        } else {
            for (size_t i = 0; i < m; ++i) nd += "ab\"c"[rng() % 4];
        }
        REQUIRE(filters::contains(h, nd) == (::memmem(h.data(), h.size(), nd.data(), nd.size()) != nullptr));
    }
    CHECK(filters::contains(std::string(100, 'x') + "\"collector\"", "\"collector\""));
    CHECK_FALSE(filters::contains(std::string(100, 'x') + "\"collector", "\"collector\""));
}
