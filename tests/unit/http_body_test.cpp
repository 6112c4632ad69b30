// The http input's body helpers: body forms, all-or-nothing validation, offsets, gzip, auth.
#include <catch2/catch.hpp>
#include <zlib.h>

#include "../../stages/inputs/http/body.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::http;

namespace {

// A body in a padded buffer, as the server holds it.
struct Body {
    explicit Body(std::string s) : text(std::move(s)) { text.reserve(text.size() + simdjson::SIMDJSON_PADDING); }
    BodyResult append(Batch& b, BodyFormat f = BodyFormat::json, std::string_view extra = {}) {
        return append_events(ps, text.data(), text.size(), text.capacity(), f, extra, b);
    }
    std::string text;
    BodyParsers ps;
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

}  // namespace

TEST_CASE("http body: one object, pretty or compact, is one compact event") {
    BatchPtr b = Batch::make();
    Body body("{\n  \"device-id\": \"mx1\",\n  \"keys\": {\"a\": \"b\"}\n}\n");
    BodyResult r = body.append(*b);
    REQUIRE(r.ok);
    CHECK(r.events == 1);
    CHECK(test::texts(*b) == std::vector<std::string>{R"({"device-id":"mx1","keys":{"a":"b"}})"});
}

TEST_CASE("http body: an array gives one event per element, extra fields spliced in") {
    BatchPtr b = Batch::make();
    Body body(R"([ {"a": 1}, {}, {"b": [1, 2]} ])");
    BodyResult r = body.append(*b, BodyFormat::json, R"(,"path":"/hb")");
    REQUIRE(r.ok);
    CHECK(test::texts(*b) == std::vector<std::string>{R"({"a":1,"path":"/hb"})", R"({"path":"/hb"})", R"({"b":[1,2],"path":"/hb"})"});
}

TEST_CASE("http body: NDJSON skips blank lines and CRLF") {
    BatchPtr b = Batch::make();
    Body body("{\"n\":1}\r\n\n  {\"n\":2}\n");
    BodyResult r = body.append(*b, BodyFormat::ndjson);
    REQUIRE(r.ok);
    CHECK(test::texts(*b) == std::vector<std::string>{R"({"n":1})", R"({"n":2})"});
}

TEST_CASE("http body: an error rolls the batch back and gives the offset") {
    BatchPtr b = Batch::make();
    b->append(R"({"kept":true})");
    SECTION("bad element of an array") {
        Body body(R"([{"a":1}, {"b": tru}])");
        BodyResult r = body.append(*b);
        CHECK_FALSE(r.ok);
        CHECK(body.text.substr(r.offset, 3) == "tru");
    }
    SECTION("a non-object element") {
        Body body(R"([{"a":1}, 42])");
        BodyResult r = body.append(*b);
        CHECK_FALSE(r.ok);
        CHECK(r.offset == 10);
    }
    SECTION("trailing content after an object") {
        Body body(R"({"a":1}  xyz)");
        BodyResult r = body.append(*b);
        CHECK_FALSE(r.ok);
        CHECK(r.offset == 9);
        CHECK(std::string(r.message) == "trailing content after the JSON object");
    }
    SECTION("an object that is not closed") {
        Body body(R"({"a":{"b":1})");
        CHECK_FALSE(body.append(*b).ok);
    }
    SECTION("third NDJSON line") {
        Body body("{\"a\":1}\n{\"a\":2}\n{\"a\":,}\n");
        BodyResult r = body.append(*b, BodyFormat::ndjson);
        CHECK_FALSE(r.ok);
        CHECK(body.text.substr(r.offset, 2) == ",}");
    }
    SECTION("empty body") {
        Body body("  \n");
        CHECK_FALSE(body.append(*b).ok);
    }
    CHECK(test::texts(*b) == std::vector<std::string>{R"({"kept":true})"});
    CHECK(b->bytes() == std::string_view(R"({"kept":true})").size() + 1);
}

TEST_CASE("http body: content types and encodings") {
    CHECK(format_of("application/x-ndjson") == BodyFormat::ndjson);
    CHECK(format_of("Application/X-NDJSON; charset=utf-8") == BodyFormat::ndjson);
    CHECK(format_of("application/json; charset=utf-8") == BodyFormat::json);
    CHECK(format_of("") == BodyFormat::json);
    CHECK(encoding_of("") == Encoding::identity);
    CHECK(encoding_of("GZIP") == Encoding::gzip);
    CHECK(encoding_of("br") == Encoding::unsupported);
}

TEST_CASE("http body: gzip inflates within the limit, refuses beyond it and corrupt data") {
    Inflater inf;
    std::string out;
    std::string text(5000, ' ');
    text.front() = '{';
    text.back() = '}';
    std::string gz = gzip_of(text);
    CHECK(inf.inflate(gz, 10000, out) == 0);
    CHECK(out == text);
    CHECK(out.capacity() >= out.size() + simdjson::SIMDJSON_PADDING);
    CHECK(inf.inflate(gz, 4000, out) == 1);
    CHECK(inf.inflate(gz.substr(0, gz.size() / 2), 10000, out) == 2);
    CHECK(inf.inflate("not gzip", 10000, out) == 2);
    CHECK(inf.inflate(gz, 5000, out) == 0);  // exactly at the limit
}

TEST_CASE("http auth: base64 of user:password") {
    CHECK(base64("healthbot:s3cret") == "aGVhbHRoYm90OnMzY3JldA==");
    CHECK(base64("a") == "YQ==");
    CHECK(base64("ab") == "YWI=");
    CHECK(base64("abc") == "YWJj");
    CHECK(iequals("Basic", "bASIC"));
    CHECK_FALSE(iequals("Basic", "Bearer"));
}
