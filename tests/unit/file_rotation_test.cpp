// The file output's own rotation: names, due, compression in the background, keep.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <zlib.h>
#include <zstd.h>

#include "../../stages/outputs/file/rotation.h"

namespace fs = std::filesystem;
using namespace hbf::stages::file;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    fs::path p;
    TempDir() {
        char tmpl[] = "/tmp/hbf-rot-XXXXXX";
        p = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(p); }
};

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string gunzip(const std::string& z) {
    z_stream s{};
    REQUIRE(inflateInit2(&s, 15 + 16) == Z_OK);
    std::string out(1 << 20, '\0');
    s.next_in = (Bytef*)z.data();
    s.avail_in = uInt(z.size());
    s.next_out = (Bytef*)out.data();
    s.avail_out = uInt(out.size());
    REQUIRE(inflate(&s, Z_FINISH) == Z_STREAM_END);
    out.resize(s.total_out);
    inflateEnd(&s);
    return out;
}

std::string unzstd(const std::string& z) {
    std::string out(ZSTD_getFrameContentSize(z.data(), z.size()) == ZSTD_CONTENTSIZE_UNKNOWN ? 1 << 20 : ZSTD_getFrameContentSize(z.data(), z.size()), '\0');
    size_t n = ZSTD_decompress(out.data(), out.size(), z.data(), z.size());
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

// Waits until the worker has left exactly `n` rotated files, all compressed when `ext` is given.
std::vector<std::string> settle(const Rotator& r, size_t n, const std::string& ext) {
    std::vector<std::string> files;
    for (int i = 0; i < 500; ++i) {
        files = r.rotated();
        bool done = files.size() == n;
        for (auto& f : files) done = done && (ext.empty() || f.ends_with(ext));
        if (done) break;
        std::this_thread::sleep_for(10ms);
    }
    return files;
}

}  // namespace

TEST_CASE("rotation is due past max_size or max_age, never for an empty file by age") {
    RotatePolicy p;
    p.max_size = 100;
    Rotator r("/tmp/x.ndjson", p, [](const std::string&) {});
    auto now = std::chrono::system_clock::now();
    CHECK_FALSE(r.due(99, now));
    CHECK(r.due(100, now));
    RotatePolicy a;
    a.max_age = 1h;
    Rotator ra("/tmp/x.ndjson", a, [](const std::string&) {});
    CHECK_FALSE(ra.due(10, now - 59min));
    CHECK(ra.due(10, now - 61min));
    CHECK_FALSE(ra.due(0, now - 2h));
    CHECK_FALSE(RotatePolicy{}.enabled());
}

TEST_CASE("a rotated file is renamed with a UTC stamp, gzip'ed in the background, readable with zlib") {
    TempDir d;
    auto path = d.p / "alarms.ndjson";
    RotatePolicy p;
    p.max_size = 10;
    p.compress = "gzip";
    std::vector<std::string> errors;
    Rotator r(path.string(), p, [&](const std::string& e) { errors.push_back(e); });
    r.start();
    std::string body;
    for (int i = 0; i < 2000; ++i) body += "{\"n\":" + std::to_string(i) + "}\n";
    write_file(path, body);
    REQUIRE(r.rotate() == 0);
    CHECK_FALSE(fs::exists(path));
    auto files = settle(r, 1, ".gz");
    REQUIRE(files.size() == 1);
    std::string name = fs::path(files[0]).filename().string();
    // alarms.ndjson.20261129T175400.123Z.gz
    CHECK(name.size() == std::string("alarms.ndjson.").size() + 20 + 3);
    CHECK(gunzip(read_file(files[0])) == body);
    r.stop();
    CHECK(errors.empty());
}

TEST_CASE("keep counts rotated files: the oldest go, zstd ones decompress to what was written") {
    TempDir d;
    auto path = d.p / "out.ndjson";
    RotatePolicy p;
    p.max_size = 1;
    p.keep = 3;
    p.compress = "zstd";
    Rotator r(path.string(), p, [](const std::string&) {});
    r.start();
    for (int i = 0; i < 6; ++i) {
        write_file(path, "file " + std::to_string(i) + "\n");
        REQUIRE(r.rotate() == 0);
    }
    auto files = settle(r, 3, ".zst");
    REQUIRE(files.size() == 3);
    CHECK(unzstd(read_file(files[0])) == "file 3\n");
    CHECK(unzstd(read_file(files[2])) == "file 5\n");
    r.stop();
}

TEST_CASE("a rotated file a stop left uncompressed is compressed after the next start; others' files are left alone") {
    TempDir d;
    auto path = d.p / "a.ndjson";
    write_file(d.p / "a.ndjson.20261129T100000.000Z", "left\n");
    write_file(d.p / "a.ndjson.20261129T100000.000Z.gz.tmp", "half");  // a crash mid-compression
    write_file(d.p / "a.ndjson.old", "not ours\n");
    write_file(d.p / "b.ndjson.20261129T100000.000Z", "other output\n");
    RotatePolicy p;
    p.max_size = 1;
    p.compress = "gzip";
    Rotator r(path.string(), p, [](const std::string&) {});
    r.start();
    auto files = settle(r, 1, ".gz");
    REQUIRE(files.size() == 1);
    CHECK(gunzip(read_file(files[0])) == "left\n");
    r.stop();
    CHECK(fs::exists(d.p / "a.ndjson.old"));
    CHECK(fs::exists(d.p / "b.ndjson.20261129T100000.000Z"));
}

TEST_CASE("without compression rotated files stay as written and keep still applies") {
    TempDir d;
    auto path = d.p / "plain.ndjson";
    RotatePolicy p;
    p.max_size = 1;
    p.keep = 2;
    Rotator r(path.string(), p, [](const std::string&) {});
    r.start();
    for (int i = 0; i < 4; ++i) {
        write_file(path, std::to_string(i));
        REQUIRE(r.rotate() == 0);
    }
    auto files = settle(r, 2, "");
    REQUIRE(files.size() == 2);
    CHECK(read_file(files[0]) == "2");
    CHECK(read_file(files[1]) == "3");
    r.stop();
}

TEST_CASE("rotating a file that is not there reports ENOENT") {
    TempDir d;
    RotatePolicy p;
    p.max_size = 1;
    Rotator r((d.p / "none.ndjson").string(), p, [](const std::string&) {});
    CHECK(r.rotate() == ENOENT);
}
