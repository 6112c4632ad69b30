#include <cstdlib>

#include "helpers.h"

using namespace hbf;

namespace {
std::string report_of(const std::string& text) {
    auto cfg = load_config_text(text, "edge.toml");
    build_stages(*cfg);  // as `hbforward validate` does
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
    CHECK_FALSE(parse_size("67777777777777777777777777MiB"));  // beyond 2^64 bytes (found by fuzz_config)
    CHECK_FALSE(parse_size(std::string(400, '9')));                // strtod gives inf
    CHECK_FALSE(parse_size("1.2.3MiB"));
    CHECK_FALSE(parse_size("1.2.3"));
    CHECK_FALSE(parse_size(".MiB"));                               // a dot is no number
    CHECK(parse_size(" 1.5 KiB") == 1536u);
    CHECK(parse_size("17179869183GiB") == 17179869183ull << 30);   // just below 2^64
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

TEST_CASE("durations are one or more terms of a number and a unit, or a number of seconds") {
    using namespace std::chrono;
    CHECK(parse_duration("1h30m") == minutes(90));
    CHECK(parse_duration("1m30s") == seconds(90));
    CHECK(parse_duration("1h") == hours(1));
    CHECK(parse_duration("250us") == microseconds(250));
    CHECK(parse_duration("1.5s") == milliseconds(1500));
    CHECK(parse_duration("2d3h") == hours(51));
    CHECK(parse_duration("10") == seconds(10));
    CHECK(parse_duration("0") == nanoseconds(0));
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("1h30"));  // a bare number only alone
    CHECK_FALSE(parse_duration("h"));
    CHECK_FALSE(parse_duration("1.2.3s"));
    CHECK_FALSE(parse_duration("1m1.2.3s"));  // in a later term too
    CHECK_FALSE(parse_duration(".s"));
    CHECK(parse_duration(".5s") == milliseconds(500));
    CHECK_FALSE(parse_duration("5 s"));
    CHECK_FALSE(parse_duration("-5s"));
    CHECK_FALSE(parse_duration("90 minutes"));
    for (auto d : {nanoseconds(0), nanoseconds(hours(1) + minutes(30)), nanoseconds(microseconds(250)), nanoseconds(seconds(10)),
                   nanoseconds(hours(49) + milliseconds(7))})
        CHECK(parse_duration(format_duration(d)) == d);
    CHECK(format_duration(minutes(90)) == "1h30m");
    CHECK(format_size(8u << 20) == "8MiB");
    CHECK(format_size(1000) == "1000");
}

TEST_CASE("a malformed duration or size says what form is expected and quotes the value") {
    auto r = report_of("[service]\nshutdown_timeout = \"90 minutes\"\nqueue_bytes = \"lots\"\nlinger = \"1h30m\"\n" + std::string(kGood));
    CHECK_THAT(r, Catch::Contains("edge.toml:2:20: option 'shutdown_timeout' in [service] must be a duration: numbers each followed by "
                                  "a unit (ns, us, ms, s, m, h, d), like \"500ms\", \"5s\" or \"1h30m\", or a number of seconds, "
                                  "not \"90 minutes\""));
    CHECK_THAT(r, Catch::Contains("edge.toml:3:15: option 'queue_bytes' in [service] must be a size: a number and a unit"));
    CHECK_THAT(r, Catch::Contains("not \"lots\""));
    CHECK_THAT(r, !Catch::Contains("linger"));
}

TEST_CASE("a list option given one bare string takes it as a list of one, inputs included") {
    auto cfg = load_config_text(
        "[inputs.gen]\ntype = \"generate\"\n[filters.p]\ntype = \"json\"\ninputs = \"gen\"\n"
        "[outputs.o]\ntype = \"null\"\ninputs = \"p\"\n",
        "edge.toml");
    INFO(cfg->report());
    REQUIRE(cfg->ok());
    REQUIRE(cfg->find("p")->inputs.size() == 1);
    CHECK(cfg->find("p")->inputs[0].stage == "gen");
    auto r = report_of("[inputs.h]\ntype = \"http\"\naddress = \"127.0.0.1:0\"\npaths = \"/hb\"\n"
                       "[outputs.o]\ntype = \"null\"\ninputs = \"h\"\n");
    CHECK(r.empty());
}

TEST_CASE("validate reports every problem of a stage, not only the first") {
    auto r = report_of(
        "[inputs.i]\ntype = \"stdin\"\n"
        "[outputs.k]\ntype = \"kafka\"\ninputs = [\"i\"]\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"\n"
        "compression = \"brotli\"\n"          // line 8
        "acks = \"most\"\n"                   // line 9
        "stats_interval = \"1ms\"\n"          // line 10
        "[outputs.k.librdkafka]\n"
        "\"no.such.property\" = \"1\"\n"    // line 12
        "\"linger.ms\" = \"soon\"\n");      // line 13
    CHECK_THAT(r, Catch::Contains("edge.toml:8:15: option 'compression' of k must be \"none\", \"gzip\", \"snappy\", \"lz4\" or \"zstd\", "
                                  "not \"brotli\""));
    CHECK_THAT(r, Catch::Contains("edge.toml:9:8: option 'acks' of k must be"));
    CHECK_THAT(r, Catch::Contains("edge.toml:10:18: stats_interval must be 0 (off) or at least 10ms"));
    CHECK_THAT(r, Catch::Contains("edge.toml:12:1: librdkafka property \"no.such.property\": No such configuration property"));
    CHECK_THAT(r, Catch::Contains("edge.toml:13:1: librdkafka property \"linger.ms\": Invalid value"));
}

TEST_CASE("a type error does not hide a stage's other problems") {
    auto r = report_of(
        "[inputs.h]\ntype = \"http\"\nthreads = \"two\"\nmax_connections = 0\nack = \"eventually\"\n"
        "[outputs.o]\ntype = \"null\"\ninputs = [\"h\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:3:11: option 'threads' in inputs.h must be an integer, not a string"));
    CHECK_THAT(r, Catch::Contains("edge.toml:4:19: option 'max_connections' of h must be at least 1, not 0"));
    CHECK_THAT(r, Catch::Contains("edge.toml:5:7: option 'ack' of h must be \"accepted\" or \"delivered\", not \"eventually\""));
    // the type error is reported once, not again by the stage's own reading of it
    CHECK(r.find("threads") == r.rfind("threads"));
}

TEST_CASE("librdkafka settings are checked as the client would check them, for the consumer too") {
    auto r = report_of(
        "[inputs.k]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n"
        "librdkafka = { \"security.protocol\" = \"ssl\", \"ssl.ca.location\" = \"/nonexistent/ca.pem\" }\n"
        "[outputs.o]\ntype = \"null\"\ninputs = [\"k\"]\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:6:14: librdkafka would not start a consumer with these settings"));
    CHECK_THAT(r, Catch::Contains("ssl.ca.location"));
}

TEST_CASE("an output's buffer table: every problem at once, each at its value") {
    const std::string head = "[inputs.i]\ntype = \"stdin\"\n[outputs.o]\ntype = \"null\"\ninputs = [\"i\"]\n";
    std::string r = report_of(head + "buffer = { type = \"disk\", max_size = \"1KiB\", when_full = \"wait\", sync = \"often\", color = 1 }\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:6:") && Catch::Contains("outputs.o.buffer.max_size must be at least 1MiB"));
    CHECK_THAT(r, Catch::Contains("option 'when_full' of outputs.o.buffer must be \"block\" or \"drop_newest\", not \"wait\""));
    CHECK_THAT(r, Catch::Contains("outputs.o.buffer.sync must be \"batch\", \"none\" or a duration such as \"100ms\", not \"often\""));
    CHECK_THAT(r, Catch::Contains("color"));
    r = report_of(head + "buffer = { type = \"tape\" }\n");
    CHECK_THAT(r, Catch::Contains("edge.toml:6:19: option 'type' of outputs.o.buffer must be \"memory\" or \"disk\", not \"tape\""));
    r = report_of(head + "buffer = { type = \"disk\" }\n");
    CHECK_THAT(r, Catch::Contains("outputs.o.buffer with type = \"disk\" needs max_size"));
    r = report_of(head + "buffer = { max_size = \"1GiB\" }\n");
    CHECK_THAT(r, Catch::Contains("outputs.o.buffer.max_size applies only to type = \"disk\""));
    auto ok = load_config_text(head + "buffer = { type = \"disk\", max_size = \"64MiB\", when_full = \"drop_newest\", sync = \"100ms\" }\n",
                               "edge.toml");
    REQUIRE(ok->ok());
    const auto& b = ok->find("o")->buffer;
    CHECK(b.disk);
    CHECK(b.max_size == 64u << 20);
    CHECK(b.when_full == buffer::WhenFull::drop_newest);
    CHECK(b.sync_interval == std::chrono::milliseconds(100));
}
