#include <cstdlib>

#include "helpers.h"

using namespace hbf;

namespace {
std::string report_of(const std::string& text) {
    auto cfg = load_config_text(text, "edge.toml");
    if (cfg->ok()) build_stages(*cfg);
    return cfg->report();
}

const char* kGood = R"([inputs.gen]
type = "generate"
count = 10

[filters.parse]
type = "json"
inputs = ["gen"]

[outputs.out]
type = "null"
inputs = ["parse"]
)";
}  // namespace

TEST_CASE("a valid config loads without diagnostics") {
    auto cfg = load_config_text(kGood, "edge.toml");
    INFO(cfg->report());
    CHECK(cfg->ok());
    CHECK(cfg->diags.empty());
    CHECK(cfg->stages.size() == 3);
}

TEST_CASE("an unknown stage type is reported with its position and the known types") {
    auto r = report_of("[inputs.gen]\ntype = \"generat\"\n[outputs.o]\ntype = \"null\"\ninputs = [\"gen\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:2:8: unknown input type 'generat' in inputs.gen (did you mean 'generate'?)"));
    // In alphabetical order; other stages sit between these as they are added.
    CHECK_THAT(r, Catch::Contains("known input types: file, ") && Catch::Contains(", generate, http, "));
}

TEST_CASE("an unknown option gets a did-you-mean suggestion at the key's position") {
    auto r = report_of("[inputs.gen]\ntype = \"generate\"\ncont = 5\n[outputs.o]\ntype = \"null\"\ninputs = [\"gen\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:3:1: unknown option 'cont' in inputs.gen (did you mean 'count'?)"));
}

TEST_CASE("a value of the wrong type is reported at the value") {
    auto r = report_of("[inputs.gen]\ntype = \"generate\"\ncount = \"many\"\n[outputs.o]\ntype = \"null\"\ninputs = [\"gen\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:3:9: option 'count' in inputs.gen must be an integer, not a string"));
}

TEST_CASE("sizes and durations are checked and parsed") {
    CHECK(parse_size("64MiB") == 64u << 20);
    CHECK(parse_size("1GB") == 1000000000u);
    CHECK(parse_size("4096") == 4096u);
    CHECK(parse_size("512KiB") == 512u << 10);
    CHECK_FALSE(parse_size("lots"));
    CHECK(parse_duration("500ms") == std::chrono::milliseconds(500));
    CHECK(parse_duration("5s") == std::chrono::seconds(5));
    CHECK(parse_duration("2m") == std::chrono::minutes(2));
    CHECK_FALSE(parse_duration("5 parsecs"));
    auto r = report_of("[service]\nqueue_bytes = \"8 apples\"\nshutdown_timeout = \"soon\"\n" + std::string(kGood));
    CHECK_THAT(r, Catch::Contains("edge.toml:2:15: option 'queue_bytes' in [service] must be a size"));
    CHECK_THAT(r, Catch::Contains("edge.toml:3:20: option 'shutdown_timeout' in [service] must be a duration"));
}

TEST_CASE("a missing required option is reported at the stage") {
    auto r = report_of("[inputs.i]\ntype = \"stdin\"\n[outputs.f]\ntype = \"file\"\ninputs = [\"i\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:3:10: missing required option 'path' in outputs.f"));
}

TEST_CASE("inputs naming an unknown stage or an output are errors") {
    auto r = report_of(
        "[inputs.gen]\ntype = \"generate\"\n[filters.p]\ntype = \"json\"\ninputs = [\"gne\"]\n"
        "[outputs.a]\ntype = \"null\"\ninputs = [\"p\"]\n[outputs.b]\ntype = \"null\"\ninputs = [\"a\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:5:11: filters.p reads from unknown stage 'gne' (did you mean 'gen'?)"));
    CHECK_THAT(r, Catch::Contains("edge.toml:11:11: outputs.b reads from 'a', which is an output"));
}

TEST_CASE("a cycle among filters is an error") {
    auto r = report_of(
        "[inputs.gen]\ntype = \"generate\"\n"
        "[filters.a]\ntype = \"json\"\ninputs = [\"gen\", \"b\"]\n"
        "[filters.b]\ntype = \"json\"\ninputs = [\"a\"]\n"
        "[outputs.o]\ntype = \"null\"\ninputs = [\"b\"]\n");
    CHECK_THAT(r, Catch::Contains("cycle in the pipeline"));
}

TEST_CASE("events that go nowhere are a warning, not an error") {
    auto cfg = load_config_text(
        "[inputs.gen]\ntype = \"generate\"\n[inputs.spare]\ntype = \"generate\"\n[outputs.o]\ntype = \"null\"\ninputs = [\"gen\"]\n",
        "edge.toml");
    CHECK(cfg->ok());
    CHECK_THAT(cfg->report(), Catch::Contains("edge.toml:3:9: warning: the events of inputs.spare go nowhere"));
}

TEST_CASE("all errors are reported at once") {
    auto cfg = load_config_text(
        "[inputs.gen]\ntype = \"generate\"\nrte = 5\n[filters.p]\ntype = \"jsn\"\ninputs = [\"gen\"]\n"
        "[outputs.o]\ntype = \"null\"\ninputs = [\"nope\"]\n",
        "edge.toml");
    CHECK_FALSE(cfg->ok());
    CHECK(cfg->diags.size() >= 3);
}

TEST_CASE("TOML syntax errors carry their position") {
    auto r = report_of("[inputs.gen\ntype = \"generate\"\n");
    CHECK_THAT(r, Catch::StartsWith("edge.toml:1:"));
}

TEST_CASE("environment variables are substituted in strings, with defaults") {
    ::setenv("HBF_TEST_PATH", "/tmp/from-env.ndjson", 1);
    ::unsetenv("HBF_TEST_UNSET");
    std::string missing;
    CHECK(substitute_env("${HBF_TEST_PATH}", &missing) == "/tmp/from-env.ndjson");
    CHECK(substitute_env("a-${HBF_TEST_UNSET:-fallback}-b", &missing) == "a-fallback-b");
    CHECK(missing.empty());
    substitute_env("${HBF_TEST_UNSET}", &missing);
    CHECK(missing == "HBF_TEST_UNSET");
    auto r = report_of("[inputs.i]\ntype = \"stdin\"\n[outputs.f]\ntype = \"file\"\ninputs = [\"i\"]\npath = \"${HBF_TEST_UNSET}\"\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:6:8: environment variable 'HBF_TEST_UNSET' used by option 'path' is not set"));
}

TEST_CASE("factories check option semantics at validate time") {
    auto r = report_of("[inputs.gen]\ntype = \"generate\"\nrate = -3\n[outputs.o]\ntype = \"null\"\ninputs = [\"gen\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:3:8: rate must be 0"));
}

TEST_CASE("service options are validated like stage options") {
    auto r = report_of("[service]\nlog_levl = \"debug\"\nlog_format = \"xml\"\n" + std::string(kGood));
    CHECK_THAT(r, Catch::Contains("edge.toml:2:1: unknown option 'log_levl' in [service] (did you mean 'log_level'?)"));
}
