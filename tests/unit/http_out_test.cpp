// The http output's bodies (formats, compression, HEC times) and its Elasticsearch bulk reply reader.
#include <catch2/catch.hpp>
#include <zlib.h>
#include <zstd.h>

#include "../../stages/outputs/http/body.h"
#include "../../stages/outputs/http/bulk_reply.h"
#include "helpers.h"

using namespace hbf;
using namespace hbf::httpout;

namespace {

constexpr int64_t kNov29 = 1795960800LL * 1000000000;  // 2026-11-29T14:00:00Z

std::string build(BodyOptions o, std::vector<std::string> events, int64_t received = kNov29) {
    BodyBuilder b(std::move(o));
    std::string out;
    b.begin(out);
    for (auto& e : events) {
        e.reserve(e.size() + simdjson::SIMDJSON_PADDING);
        b.add(out, e, e.capacity(), received);
    }
    b.end(out);
    return out;
}

std::string gunzip(const std::string& in) {
    z_stream zs{};
    REQUIRE(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK);
    std::string out(1 << 20, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = uInt(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = uInt(out.size());
    REQUIRE(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    out.resize(out.size() - zs.avail_out);
    inflateEnd(&zs);
    return out;
}

}  // namespace

TEST_CASE("http output: ndjson and json_array bodies are the events' text, framed") {
    BodyOptions o;
    CHECK(build(o, {R"({"a":1})", R"({"b":"x"})"}) == "{\"a\":1}\n{\"b\":\"x\"}\n");
    o.format = Format::json_array;
    CHECK(build(o, {R"({"a":1})", R"({"b":"x"})"}) == R"([{"a":1},{"b":"x"}])");
    CHECK(build(o, {}) == "[]");
}

TEST_CASE("http output: elasticsearch bulk puts an action line with the strftime index before each event") {
    BodyOptions o;
    o.format = Format::elasticsearch_bulk;
    o.es_index = "healthbot-%Y.%m.%d";
    CHECK(build(o, {R"({"a":1})", R"({"a":2})"}) ==
          "{\"index\":{\"_index\":\"healthbot-2026.11.29\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"healthbot-2026.11.29\"}}\n{\"a\":2}\n");
    o.es_action = "create";
    CHECK(build(o, {R"({"a":1})"}, kNov29 + 86400LL * 1000000000).rfind("{\"create\":{\"_index\":\"healthbot-2026.11.30\"}}\n", 0) == 0);
}

TEST_CASE("http output: splunk hec wraps each event with its time from time_field or the receive time") {
    BodyOptions o;
    o.format = Format::splunk_hec;
    o.hec_sourcetype = "healthbot";
    o.hec_time_field = "ts";
    std::string body = build(o, {R"({"ts":"2026-11-29T15:00:00.5+01:00","x":1})", R"({"ts":1795960800123})", R"({"ts":"yesterday"})", R"({"y":2})"},
                             kNov29 + 250000000);
    CHECK(body ==
          "{\"time\":1795960800.500000,\"sourcetype\":\"healthbot\",\"event\":{\"ts\":\"2026-11-29T15:00:00.5+01:00\",\"x\":1}}\n"
          "{\"time\":1795960800.123000,\"sourcetype\":\"healthbot\",\"event\":{\"ts\":1795960800123}}\n"
          "{\"time\":1795960800.250000,\"sourcetype\":\"healthbot\",\"event\":{\"ts\":\"yesterday\"}}\n"
          "{\"time\":1795960800.250000,\"sourcetype\":\"healthbot\",\"event\":{\"y\":2}}\n");
}

TEST_CASE("http output: RFC 3339 times are read with fractions and offsets, anything else refused") {
    double t = 0;
    CHECK(parse_rfc3339("1970-01-01T00:00:00Z", t));
    CHECK(t == 0);
    CHECK(parse_rfc3339("2026-11-29T14:00:00.25Z", t));
    CHECK(t == 1795960800.25);
    CHECK(parse_rfc3339("2026-11-29T16:00:00+02:00", t));
    CHECK(t == 1795960800);
    for (const char* bad : {"2026-11-29", "2026-11-29T14:00:00", "2026-13-01T00:00:00Z", "2026-11-29T14:00:00.Z", "2026-11-29T14:00:00Zx"})
        CHECK_FALSE(parse_rfc3339(bad, t));
}

TEST_CASE("http output: gzip and zstd bodies decompress to the original, with a reused context") {
    std::string text;
    for (int i = 0; i < 2000; ++i) text += R"({"device-id":"mx480-pe2.ams","severity":"major","seq":)" + std::to_string(i) + "}\n";
    Compressor gz(Compression::gzip, 0), zs(Compression::zstd, 0);
    std::string out;
    for (int round = 0; round < 2; ++round) {
        gz.compress(text, out);
        CHECK(out.size() < text.size() / 5);
        CHECK(gunzip(out) == text);
        zs.compress(text, out);
        std::string back(text.size(), '\0');
        size_t n = ZSTD_decompress(back.data(), back.size(), out.data(), out.size());
        REQUIRE_FALSE(ZSTD_isError(n));
        back.resize(n);
        CHECK(back == text);
    }
}

TEST_CASE("http output: a bulk reply without errors delivers every item without reading them") {
    simdjson::ondemand::parser p;
    std::vector<ItemResult> r;
    std::string reply = R"({"took":3,"errors":false,"items":[{"index":{"status":201}}]})";
    BulkReply br = read_bulk_reply(p, reply, 3, r);
    CHECK(br.problem.empty());
    CHECK(r == std::vector<ItemResult>(3, ItemResult::ok));
}

TEST_CASE("http output: a bulk reply with errors is read item by item: 429 retried, others failed with their reason") {
    simdjson::ondemand::parser p;
    std::vector<ItemResult> r;
    std::string reply = R"({"took":3,"errors":true,"items":[
        {"index":{"_index":"hb","status":201}},
        {"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
        {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
        {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse"}}}]})";
    BulkReply br = read_bulk_reply(p, reply, 5, r);
    CHECK(br.problem.empty());
    CHECK(br.errors);
    CHECK(r == std::vector<ItemResult>{ItemResult::ok, ItemResult::retry, ItemResult::failed, ItemResult::failed, ItemResult::failed});
    CHECK(br.first_error == "status 409, version_conflict_engine_exception: exists");
}

TEST_CASE("http output: a reply that is not a bulk reply is said so") {
    simdjson::ondemand::parser p;
    std::vector<ItemResult> r;
    for (std::string reply : {std::string("ok"), std::string(R"({"acknowledged":true})"), std::string(R"({"errors":"yes"})")}) {
        BulkReply br = read_bulk_reply(p, reply, 2, r);
        CHECK_FALSE(br.problem.empty());
    }
}
