// The forward input's msgpack handling: the resumable scanner, frames in every mode, JSON text.
#include <catch2/catch.hpp>
#include <msgpuck.h>
#include <zlib.h>

#include "../../stages/inputs/forward/decoder.h"
#include "forward/event_time.h"
#include "forward/handshake.h"
#include "forward/scan.h"

using namespace hbf;
using namespace hbf::forward;

namespace {

// A msgpack writer for tests: chained calls append encoded values.
struct Mp {
    std::string b;
    Mp& raw(std::string_view s) { b.append(s); return *this; }
    Mp& arr(uint32_t n) { char t[5]; b.append(t, size_t(mp_encode_array(t, n) - t)); return *this; }
    Mp& map(uint32_t n) { char t[5]; b.append(t, size_t(mp_encode_map(t, n) - t)); return *this; }
    Mp& str(std::string_view s) { char t[5]; b.append(t, size_t(mp_encode_strl(t, uint32_t(s.size())) - t)); b.append(s); return *this; }
    Mp& bin(std::string_view s) { char t[5]; b.append(t, size_t(mp_encode_binl(t, uint32_t(s.size())) - t)); b.append(s); return *this; }
    Mp& uint(uint64_t v) { char t[9]; b.append(t, size_t(mp_encode_uint(t, v) - t)); return *this; }
    Mp& sint(int64_t v) { char t[9]; b.append(t, size_t(mp_encode_int(t, v) - t)); return *this; }
    Mp& dbl(double v) { char t[9]; b.append(t, size_t(mp_encode_double(t, v) - t)); return *this; }
    Mp& nil() { b += char(0xc0); return *this; }
    Mp& boolean(bool v) { b += char(v ? 0xc3 : 0xc2); return *this; }
    Mp& time(int64_t s, uint32_t ns) { char t[10]; b.append(t, size_t(encode_event_time(t, {s, ns}) - t)); return *this; }
};

std::string gzip_of(const std::string& s) {
    z_stream zs{};
    deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::string out(s.size() + 128, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
    zs.avail_in = uInt(s.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = uInt(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

struct Decode {
    explicit Decode(DecoderOptions o = {"tag", "time", "", {}, 1 << 20}) : d(o) {}
    const Frame& operator()(const std::string& frame) {
        MsgpackScanner s(1 << 20);
        REQUIRE(s.scan(frame.data(), frame.size()) == Scan::complete);
        REQUIRE(s.size() == frame.size());
        return d.decode(frame.data(), frame.size(), *b);
    }
    std::string event(size_t i) const { return std::string(b->event(i)); }
    ForwardDecoder d;
    BatchPtr b = Batch::make();
};

}  // namespace

TEST_CASE("forward scanner resumes where the bytes ran out, byte by byte") {
    Mp m;
    m.arr(3).str("tag").arr(2).arr(2).uint(1).map(1).str("k").str(std::string(300, 'x')).arr(2).uint(2).map(0).map(1).str("chunk").str("c1");
    MsgpackScanner s(1 << 20);
    for (size_t n = 0; n < m.b.size(); ++n) REQUIRE(s.scan(m.b.data(), n) == Scan::incomplete);
    REQUIRE(s.scan(m.b.data(), m.b.size()) == Scan::complete);
    CHECK(s.size() == m.b.size());
}

TEST_CASE("forward scanner refuses huge declared lengths from the header alone") {
    MsgpackScanner s(64 << 20);
    const std::string map32("\xdf\xff\xff\xff\xff", 5);        // a 2^32-1 entry map, and nothing after
    CHECK(s.scan(map32.data(), map32.size()) == Scan::error);
    s.reset();
    const std::string str32("\x92\xa1t\xdb\xff\xff\xff\xff", 8);  // ["t", <4 GiB string>]
    CHECK(s.scan(str32.data(), str32.size()) == Scan::error);
    CHECK(std::string(s.error()).find("longer than the frame limit") != std::string::npos);
    s.reset();
    const std::string never("\x91\xc1", 2);
    CHECK(s.scan(never.data(), never.size()) == Scan::error);
    s.reset();
    std::string deep(100, '\x91');
    deep += '\x01';
    CHECK(s.scan(deep.data(), deep.size()) == Scan::error);
}

TEST_CASE("forward Message mode with an EventTime keeps every value type exactly") {
    Decode d;
    Mp m;
    m.arr(4).str("app.x").time(1700000000, 123456789).map(9)
        .str("u64").uint(UINT64_MAX).str("neg").sint(INT64_MIN).str("f").dbl(0.1).str("s").str("a\"b\\c\n\x01")
        .str("nested").map(1).str("a").arr(3).uint(1).nil().boolean(true)
        .str("bad").str("ok\xff\xfe!").uint(7).str("int key").str("tag").str("record's own tag, replaced").str("bin").bin("hi")
        .map(1).str("chunk").str("abc");
    const Frame& f = d(m.b);
    REQUIRE(f.kind == Frame::Kind::events);
    CHECK(f.events == 1);
    CHECK(f.has_chunk);
    CHECK(f.chunk == "abc");
    CHECK(d.event(0) ==
          R"({"tag":"app.x","time":"2023-11-14T22:13:20.123456789Z","u64":18446744073709551615,"neg":-9223372036854775808,"f":0.1,)"
          R"("s":"a\"b\\c\n\u0001","nested":{"a":[1,null,true]},"bad":"ok)" "\xef\xbf\xbd\xef\xbf\xbd" R"(!","7":"int key","bin":"hi"})");
}

TEST_CASE("forward Forward mode reads Fluent Bit's [[time, metadata], record] entries and plain ones") {
    DecoderOptions o{"", "ts", "meta", {}, 1 << 20};
    Decode d(o);
    Mp m;
    m.arr(3).str("t").arr(3)
        .arr(2).arr(2).time(1, 5).map(1).str("m").uint(1).map(1).str("a").uint(1)
        .arr(2).uint(2).map(1).str("b").uint(2)
        .arr(2).dbl(3.25).map(0)
        .map(2).str("size").uint(3).str("fluent_signal").uint(0);
    const Frame& f = d(m.b);
    REQUIRE(f.kind == Frame::Kind::events);
    CHECK(!f.has_chunk);
    REQUIRE(f.events == 3);
    CHECK(d.event(0) == R"({"ts":"1970-01-01T00:00:01.000000005Z","meta":{"m":1},"a":1})");
    CHECK(d.event(1) == R"({"ts":"1970-01-01T00:00:02.000000000Z","b":2})");
    CHECK(d.event(2) == R"({"ts":"1970-01-01T00:00:03.250000000Z"})");
}

TEST_CASE("forward PackedForward and CompressedPackedForward with several gzip members") {
    Mp e1, e2;
    e1.arr(2).time(10, 0).map(1).str("n").uint(1);
    e2.arr(2).uint(11).map(1).str("n").uint(2);
    DecoderOptions o{"", "", "", {}, 1 << 20};
    Decode d(o);
    Mp packed;
    packed.arr(2).str("t").bin(e1.b + e2.b);
    REQUIRE(d(packed.b).events == 2);
    Mp gz;
    gz.arr(3).str("t").bin(gzip_of(e1.b) + gzip_of(e2.b + e1.b)).map(2).str("compressed").str("gzip").str("chunk").str("q");
    const Frame& f = d(gz.b);
    REQUIRE(f.kind == Frame::Kind::events);
    CHECK(f.events == 3);
    CHECK(f.chunk == "q");
    CHECK(d.event(2) == R"({"n":1})");
    CHECK(d.event(3) == R"({"n":2})");
}

TEST_CASE("forward frame errors roll the batch back and say what is wrong") {
    Decode d;
    Mp good;
    good.arr(3).str("t").uint(1).map(1).str("a").uint(1);
    REQUIRE(d(good.b).events == 1);
    const size_t bytes = d.b->bytes();
    struct Case {
        std::string frame;
        std::string message;
    };
    Mp notmap, badtime, badgzip, toplevel, badentry;
    notmap.arr(2).str("t").arr(2).arr(2).uint(1).map(0).arr(2).uint(1).str("not a map");
    badtime.arr(3).str("t").boolean(true).map(0);
    badgzip.arr(3).str("t").bin("not gzip").map(1).str("compressed").str("gzip");
    toplevel.map(0);
    badentry.arr(2).str("t").bin(std::string("\x92\x01", 2));
    for (const auto& c : std::vector<Case>{{notmap.b, "a record is not a map"},
                                           {badtime.b, "an entry's time is not"},
                                           {badgzip.b, "corrupt gzip"},
                                           {toplevel.b, "a frame must be an array"},
                                           {badentry.b, "not valid msgpack"}}) {
        const Frame& f = d(c.frame);
        CHECK(f.kind == Frame::Kind::error);
        CHECK(std::string(f.error).find(c.message) != std::string::npos);
        CHECK(d.b->size() == 1);
        CHECK(d.b->bytes() == bytes);
    }
    Mp hb;
    hb.nil();
    CHECK(d(hb.b).kind == Frame::Kind::heartbeat);
}

TEST_CASE("forward binary as base64 and non-string keys quoted") {
    DecoderOptions o{"", "", "", {true}, 1 << 20};
    Decode d(o);
    Mp m;
    m.arr(3).str("t").uint(0).map(3).bin("k").bin(std::string("\x00\xff\x10", 3)).boolean(true).uint(1).arr(1).uint(2).nil();
    REQUIRE(d(m.b).events == 1);
    CHECK(d.event(0) == R"({"k":"AP8Q","true":1,"[2]":null})");
}

TEST_CASE("forward a map or array key inside a map or array key is written as [map] / [array]") {
    Decode d({"", "", "", {}, 1 << 20});
    Mp m;
    m.arr(3).str("t").uint(0).map(3);
    m.map(1).map(1).str("a").uint(1).arr(1).map(1).str("x").uint(2).uint(1);  // {{"a":1}:[{"x":2}]}: 1
    m.arr(2).uint(1).map(1).arr(1).uint(3).nil().uint(2);                    // [1,{[3]:nil}]: 2
    m.map(1).uint(5).str("v").uint(3);                                       // {5:"v"}: 3
    REQUIRE(d(m.b).events == 1);
    CHECK(d.event(0) == R"({"{\"[map]\":[{\"x\":2}]}":1,"[1,{\"[array]\":null}]":2,"{\"5\":\"v\"}":3})");
    // 40 map keys each inside the next: the text stays small (escaping each level again doubled it).
    Mp deep;
    deep.arr(3).str("t").uint(0).map(1);
    for (int i = 0; i < 40; ++i) deep.map(1);
    deep.str("a").uint(1);
    for (int i = 0; i < 40; ++i) deep.uint(uint64_t(i));
    REQUIRE(d(deep.b).events == 1);
    CHECK(d.event(1) == R"({"{\"[map]\":38}":39})");
    // The next frame's keys are written in full again: nothing is left over from the last one.
    REQUIRE(d(m.b).events == 1);
    CHECK(d.event(2) == d.event(0));
}

TEST_CASE("forward times: RFC 3339 both ways, EventTime bytes") {
    std::string s;
    append_rfc3339(s, {1700000000, 5});
    CHECK(s == "2023-11-14T22:13:20.000000005Z");
    EventTime t;
    REQUIRE(parse_rfc3339("2023-11-14T23:13:20.5+01:00", t));
    CHECK(t.sec == 1700000000);
    CHECK(t.nsec == 500000000);
    CHECK(!parse_rfc3339("2023-11-14 nonsense", t));
    char b[10];
    CHECK(std::string(b, size_t(encode_event_time(b, {1, 2}) - b)) == std::string("\xd7\x00\x00\x00\x00\x01\x00\x00\x00\x02", 10));
}

TEST_CASE("forward handshake messages: PING checked against the digest, acks parsed") {
    Ping ping{"client", "salt", sha512_hex({"salt", "client", "nonce", "key"}), "", ""};
    std::string bytes = make_ping(ping);
    Ping back;
    REQUIRE(parse_ping(bytes.data(), back));
    CHECK(back.digest == sha512_hex({"salt", "client", "nonce", "key"}));
    CHECK(back.digest.size() == 128);
    std::string ack = make_ack_reply("c-1"), chunk;
    REQUIRE(parse_ack_reply(ack.data(), chunk));
    CHECK(chunk == "c-1");
    Helo h;
    std::string helo = make_helo("0123456789abcdef", "");
    REQUIRE(parse_helo(helo.data(), h));
    CHECK(h.nonce == "0123456789abcdef");
}
