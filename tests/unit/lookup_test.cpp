#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "helpers.h"

using namespace hbf;
using namespace hbf::test;
namespace fs = std::filesystem;

namespace {

struct TmpDir {
    fs::path p;
    TmpDir() {
        char t[] = "/tmp/hbf-lookup-XXXXXX";
        p = ::mkdtemp(t);
    }
    ~TmpDir() { fs::remove_all(p); }
    std::string write(const std::string& name, const std::string& text) const {
        fs::path f = p / name;
        std::ofstream(f, std::ios::binary) << text;
        return f.string();
    }
    // Replaces the file the way editors and config tools do: write aside, rename over.
    void replace(const std::string& name, const std::string& text) const {
        write(name + ".tmp", text);
        fs::rename(p / (name + ".tmp"), p / name);
    }
};

const char* kCsv =
    "device-id,site,region,role\n"
    "mx480-pe2.ams,\"Amsterdam, AMS1\",eu-west,pe\n"
    "ptx10008-core-03,\"Frankfurt \"\"FRA2\"\"\",eu-central,core\r\n"
    "\n"
    "acx7100-agg-112,\"multi\nline\",eu-west,agg\n";

}  // namespace

TEST_CASE("lookup adds a CSV row's columns (quoted fields, commas and quotes inside)") {
    TmpDir d;
    std::string f = d.write("devices.csv", kCsv);
    FilterHarness h("lookup", "file = \"" + f + "\"\nkey = \"device-id\"");
    CHECK(h.run({R"({"device-id":"mx480-pe2.ams","severity":"major"})", R"({"device-id": "ptx10008-core-03"})",
                 R"({"device-id":"acx7100-agg-112"})", R"({"device-id":"unknown"})", R"({"x":1})"}) ==
          std::vector<std::string>{
              R"({"device-id":"mx480-pe2.ams","severity":"major","site":"Amsterdam, AMS1","region":"eu-west","role":"pe"})",
              R"({"device-id": "ptx10008-core-03","site":"Frankfurt \"FRA2\"","region":"eu-central","role":"core"})",
              R"({"device-id":"acx7100-agg-112","site":"multi\nline","region":"eu-west","role":"agg"})",
              R"({"device-id":"unknown"})",
              R"({"x":1})",
          });
}

TEST_CASE("lookup columns, prefix, on_missing = default, and a member it replaces") {
    TmpDir d;
    std::string f = d.write("devices.csv", kCsv);
    FilterHarness h("lookup", "file = \"" + f +
                                  "\"\nkey = \"device-id\"\ncolumns = [\"site\"]\nprefix = \"dev_\"\non_missing = \"default\"\n"
                                  "default = { site = \"unknown\" }");
    CHECK(h.run({R"({"dev_site":"old","device-id":"mx480-pe2.ams"})", R"({"device-id":"nope"})"}) ==
          std::vector<std::string>{R"({"device-id":"mx480-pe2.ams","dev_site":"Amsterdam, AMS1"})",
                                   R"({"device-id":"nope","dev_site":"unknown"})"});
}

TEST_CASE("lookup on_missing = drop drops and counts events whose key is not in the table; an emptied batch is acked as dropped") {
    TmpDir d;
    std::string f = d.write("devices.csv", kCsv);
    FilterHarness h("lookup", "file = \"" + f + "\"\nkey = \"device-id\"\ncolumns = [\"site\"]\non_missing = \"drop\"");
    uint64_t before = h.ctx().metrics().dropped("not_in_lookup").get();
    CHECK(h.run({R"({"device-id":"nope"})", R"({"device-id":"mx480-pe2.ams"})", R"({"x":1})"}) ==
          std::vector<std::string>{R"({"device-id":"mx480-pe2.ams","site":"Amsterdam, AMS1"})"});
    CHECK(h.ctx().metrics().dropped("not_in_lookup").get() - before == 2);
    AckStatus got = AckStatus::delivered;
    bool settled = false;
    {
        BatchPtr b = batch({R"({"device-id":"nope"})"});
        AckRef first = make_ack([&](AckStatus s, const std::string&) { got = s, settled = true; });
        b->acks.push_back(first.clone());
        first.reset();
        CHECK(h.run(std::move(b)).empty());
    }
    CHECK(settled);
    CHECK(got == AckStatus::dropped);
}

TEST_CASE("lookup reads a JSON object file, keyed by a nested field") {
    TmpDir d;
    std::string f = d.write("t.json", R"({"xe-0/1/4": {"circuit": "AMS-FRA-01", "capacity": 10}, "ge-0/0/0": {"circuit": "x"}})");
    FilterHarness h("lookup", "file = \"" + f + "\"\nkey = \"keys.interface-name\"");
    CHECK(h.run({R"({"keys":{"interface-name":"xe-0/1/4"}})", R"({"keys":{"interface-name":"ge-0/0/0"}})"}) ==
          std::vector<std::string>{R"({"keys":{"interface-name":"xe-0/1/4"},"circuit":"AMS-FRA-01","capacity":10})",
                                   R"({"keys":{"interface-name":"ge-0/0/0"},"circuit":"x"})"});
}

TEST_CASE("lookup refuses a broken table at start, saying where") {
    TmpDir d;
    std::string f = d.write("bad.csv", "device-id,site\na,b\nc,\"d\n");
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"lookup\"\ninputs = [\"i\"]\nfile = \"" + f +
                                    "\"\nkey = \"device-id\"\n[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (cfg->ok()) build_stages(*cfg);
    CHECK_THAT(cfg->report(), Catch::Contains("line 3: unterminated quoted field"));
}

TEST_CASE("lookup picks up a replaced file while events flow; a broken file keeps the old table") {
    TmpDir d;
    std::string f = d.write("devices.csv", "device-id,site\nd1,old\n");
    FilterHarness h("lookup", "file = \"" + f + "\"\nkey = \"device-id\"\nreload_interval = \"20ms\"");
    const std::string ev = R"({"device-id":"d1"})";
    const std::string old_out = R"({"device-id":"d1","site":"old"})", new_out = R"({"device-id":"d1","site":"new"})";
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        d.replace("devices.csv", "device-id,site\nd1,new\nd2,other\n");
    });
    bool switched = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    size_t batches = 0;
    while (!switched && std::chrono::steady_clock::now() < deadline) {
        auto out = h.run(std::vector<std::string>(64, ev));
        ++batches;
        REQUIRE(out.size() == 64);
        // A batch sees one table: all old or all new, never a mix.
        CHECK((out == std::vector<std::string>(64, old_out) || out == std::vector<std::string>(64, new_out)));
        switched = out[0] == new_out;
    }
    writer.join();
    CHECK(switched);
    CHECK(batches > 1);

    d.replace("devices.csv", "device-id,site\nd1,\"broken\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(h.run({ev}) == std::vector<std::string>{new_out});
    CHECK(MetricsRegistry::global().render().find("hbf_lookup_reloads_total{stage=\"f\",result=\"error\"}") != std::string::npos);

    d.replace("devices.csv", "device-id,site\nd1,fixed\n");
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::vector<std::string> got;
    while (std::chrono::steady_clock::now() < deadline) {
        got = h.run({ev});
        if (got[0] != new_out) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(got == std::vector<std::string>{R"({"device-id":"d1","site":"fixed"})"});
}

TEST_CASE("lookup reports every problem at once: on_missing, a missing default, an unreadable file") {
    auto cfg = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"lookup\"\ninputs = [\"i\"]\n"
                                "file = \"/nonexistent/hbf-lookup.csv\"\nkey = \"device-id\"\non_missing = \"default\"\nreload_interval = \"soon\"\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    build_stages(*cfg);  // as validate does: every factory runs
    std::string r = cfg->report();
    CHECK_THAT(r, Catch::Contains("t.toml:6:8: cannot load lookup table /nonexistent/hbf-lookup.csv"));
    CHECK_THAT(r, Catch::Contains("t.toml:8:14: on_missing = \"default\" needs a 'default' table"));
    CHECK_THAT(r, Catch::Contains("t.toml:9:19: option 'reload_interval' in filters.f must be a duration"));
    auto bad = load_config_text("[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"lookup\"\ninputs = [\"i\"]\n"
                                "file = \"/nonexistent/hbf-lookup.csv\"\nkey = \"device-id\"\non_missing = \"ignore\"\n"
                                "[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n",
                                "t.toml");
    if (bad->ok()) build_stages(*bad);
    CHECK_THAT(bad->report(), Catch::Contains("t.toml:8:14: option 'on_missing' of f must be \"skip\", \"default\" or \"drop\", not \"ignore\""));
    CHECK_THAT(bad->report(), Catch::Contains("cannot load lookup table"));
}
