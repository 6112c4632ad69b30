// The pipeline plan: what applying a config changes, computed from configs alone. The configs
// below go through the real loader; the reload cases are those tests/e2e/test_ops.py and
// test_systemd.py run against the binary.
#include <algorithm>
#include <tuple>

#include "helpers.h"
#include "plan.h"

using namespace hbf;
using Names = std::vector<std::string>;

namespace {

std::vector<PlanStage> stages_of(const std::string& text) { return plan_stages(*test::config(text)); }

PipelinePlan startup(const std::string& text) { return plan_pipeline({}, stages_of(text)); }

// Startup from `a`, then a reload to `b`: the plan of the reload.
PipelinePlan reload(const std::string& a, const std::string& b) { return plan_pipeline(startup(a).stages, stages_of(b)); }

Names sorted(Names v) {
    std::sort(v.begin(), v.end());
    return v;
}

std::string with(std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    return text;
}

std::vector<PlanEdge> sorted_edges(std::vector<PlanEdge> v) {
    std::sort(v.begin(), v.end(), [](const PlanEdge& a, const PlanEdge& b) {
        return std::tie(a.from, a.port, a.to) < std::tie(b.from, b.port, b.to);
    });
    return v;
}

Names stops_before(const PipelinePlan& p, const std::string& name) { return p.must_stop_before(name); }

// An input whose listen address is an option called `port`, and whose `address` option is not
// something it listens on: what a stage declares decides its resources, not its option names.
struct PortListenerOptions {
    int64_t port = 7000;
    std::string address;  // where it reports to
    std::string label;
    std::vector<Resource> resources(const StagePlace&) const {
        return {{Resource::Kind::listen, "127.0.0.1:" + std::to_string(port)}};
    }
};
class PortListener final : public Input {
public:
    explicit PortListener(const PortListenerOptions&) {}
    void run(StageContext&, Emitter&) override {}
};
const OptionSchema<PortListenerOptions> kPortListenerSchema{
    {"port", &PortListenerOptions::port, "Port it listens on."},
    {"address", &PortListenerOptions::address, "Where it reports to."},
    {"label", &PortListenerOptions::label, "Anything."},
};
HBF_REGISTER_INPUT("test_port_listener", PortListener, kPortListenerSchema, "Test only: declares a listen address from `port`.");

const char* kChain = R"(
[inputs.in]
type = "stdin"
[filters.parse]
type = "json"
inputs = ["in"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { version = "a" }
[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
)";

// tests/e2e/test_ops.py RELOAD_A and RELOAD_B.
const char* kReloadA = R"(
[inputs.gen]
type = "generate"
rate = 4000
sequence_field = "seq"
[filters.parse]
type = "json"
inputs = ["gen"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { version = "a" }
[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
)";

const char* kReloadB = R"(
[inputs.gen]
type = "generate"
rate = 4000
sequence_field = "seq"
[filters.tag]
type = "enrich"
inputs = ["gen"]
fields = { version = "b" }
[outputs.out]
type = "file"
inputs = ["tag"]
path = "out.ndjson"
[outputs.audit]
type = "file"
inputs = ["gen"]
path = "audit.ndjson"
)";

std::string webhook(const std::string& address, const std::string& paths) {
    return R"(
[inputs.hb]
type = "http"
address = ")" + address + R"("
paths = )" + paths + R"(
[outputs.out]
type = "file"
inputs = ["hb"]
path = "out.ndjson"
)";
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<PlanEdge> {
    static std::string convert(const PlanEdge& e) { return e.from + ":" + std::to_string(e.port) + "->" + e.to; }
};
}  // namespace Catch

TEST_CASE("plan: startup adds every stage, wires each input, inlines a filter with one producer") {
    auto p = startup(kChain);
    CHECK(p.added == Names{"in", "parse", "tag", "out"});
    CHECK(p.kept.empty());
    CHECK(p.changed.empty());
    CHECK(p.removed.empty());
    CHECK(p.edges == std::vector<PlanEdge>{{"in", 0, "parse"}, {"parse", 0, "tag"}, {"tag", 0, "out"}});
    CHECK(p.producers.at("parse") == Names{"in"});
    CHECK(p.producers.at("out") == Names{"tag"});
    CHECK(p.producers.count("in") == 0);  // an input has no queue
    CHECK(p.inline_filters == Names{"parse", "tag"});
    CHECK(p.conflicts.empty());
    CHECK(p.summary() == "0 stages kept, 4 started, 0 stopped");
}

TEST_CASE("plan: a fan-in filter keeps its queue; fan-out gives an upstream several edges") {
    auto p = startup(R"(
[inputs.a]
type = "stdin"
[inputs.b]
type = "generate"
[filters.parse]
type = "json"
inputs = ["a", "b"]
[outputs.one]
type = "null"
inputs = ["parse"]
[outputs.two]
type = "null"
inputs = ["parse", "a"]
)");
    CHECK(p.producers.at("parse") == Names{"a", "b"});
    CHECK(p.producers.at("two") == Names{"parse", "a"});
    CHECK(p.inline_filters.empty());
    CHECK(!p.stage("parse")->runs_inline);
    CHECK(p.edges.size() == 5);
}

TEST_CASE("plan: an upstream named twice is one edge and one producer") {
    auto p = startup(R"(
[inputs.a]
type = "stdin"
[outputs.o]
type = "null"
inputs = ["a", "a"]
)");
    CHECK(p.edges == std::vector<PlanEdge>{{"a", 0, "o"}});
    CHECK(p.producers.at("o") == Names{"a"});
}

TEST_CASE("plan: named ports are edges of their own, one producer per upstream stage") {
    auto p = startup(R"(
[inputs.i]
type = "stdin"
[filters.r]
type = "route"
inputs = ["i"]
[filters.r.routes]
major = '.severity == "major"'
[filters.parse]
type = "json"
inputs = ["r.major", "r._unmatched"]
[outputs.o]
type = "null"
inputs = ["r", "parse"]
)");
    CHECK(sorted_edges(p.edges) == std::vector<PlanEdge>{{"i", 0, "r"}, {"parse", 0, "o"}, {"r", 0, "o"}, {"r", 1, "parse"}, {"r", 2, "parse"}});
    CHECK(p.producers.at("parse") == Names{"r"});
    CHECK(sorted(p.inline_filters) == Names{"parse", "r"});  // two edges, but one producer
}

TEST_CASE("plan: the e2e reload removes a filter, changes one, adds an output, keeps the rest") {
    auto p = reload(kReloadA, kReloadB);
    CHECK(p.kept == Names{"gen", "out"});
    CHECK(p.changed == Names{"tag"});
    CHECK(p.added == Names{"audit"});
    CHECK(p.removed == Names{"parse"});
    CHECK("config generation 2: " + p.summary() == "config generation 2: 2 stages kept, 2 started, 2 stopped");
    CHECK(sorted_edges(p.edges) == std::vector<PlanEdge>{{"gen", 0, "audit"}, {"gen", 0, "tag"}, {"tag", 0, "out"}});
    CHECK(p.producers.at("out") == Names{"tag"});
    CHECK(p.inline_filters == Names{"tag"});  // a new version with one producer
    CHECK(p.conflicts.empty());               // the outputs' files stay with the kept `out`
}

TEST_CASE("plan: reloading back (SIGHUP, watch-config) restores the first pipeline") {
    auto b = plan_pipeline(startup(kReloadA).stages, stages_of(kReloadB));
    auto p = plan_pipeline(b.stages, stages_of(kReloadA));
    CHECK(p.kept == Names{"gen", "out"});
    CHECK(p.changed == Names{"tag"});
    CHECK(p.added == Names{"parse"});
    CHECK(p.removed == Names{"audit"});
    CHECK(p.inline_filters == Names{"parse", "tag"});
    CHECK(p.summary() == "2 stages kept, 2 started, 2 stopped");
}

TEST_CASE("plan: the same config again keeps everything, inlining included") {
    auto p = reload(kChain, kChain);
    CHECK(p.kept == Names{"in", "parse", "tag", "out"});
    CHECK(p.added.empty());
    CHECK(p.changed.empty());
    CHECK(p.removed.empty());
    CHECK(p.inline_filters == Names{"parse", "tag"});
    CHECK(p.summary() == "4 stages kept, 0 started, 0 stopped");
}

TEST_CASE("plan: a stage whose only change is its inputs is kept and rewired") {
    std::string b = with(kChain, "inputs = [\"tag\"]", "inputs = [\"parse\"]");
    auto p = reload(kChain, b);
    CHECK(p.kept == Names{"in", "parse", "tag", "out"});
    CHECK(p.producers.at("out") == Names{"parse"});
    CHECK(std::find(p.edges.begin(), p.edges.end(), PlanEdge{"tag", 0, "out"}) == p.edges.end());
}

TEST_CASE("plan: a stage that changes type under the same name is replaced") {
    std::string b = with(with(kChain, "type = \"file\"", "type = \"null\""), "path = \"out.ndjson\"", "");
    auto p = reload(kChain, b);
    CHECK(p.changed == Names{"out"});
    CHECK(p.conflicts.empty());  // the null output holds no file
}

TEST_CASE("plan: one inlining rule; a kept filter that had a queue keeps it") {
    const char* two = R"(
[inputs.a]
type = "stdin"
[inputs.b]
type = "generate"
[filters.f]
type = "json"
inputs = ["a", "b"]
[outputs.o]
type = "null"
inputs = ["f"]
)";
    const char* one = R"(
[inputs.a]
type = "stdin"
[inputs.b]
type = "generate"
[filters.f]
type = "json"
inputs = ["a"]
[outputs.o]
type = "null"
inputs = ["f", "b"]
)";
    auto queued = startup(two);
    CHECK_FALSE(queued.runs_inline("f"));
    // Down to one producer: what it queued must not be overtaken, so it stays queued.
    auto p = plan_pipeline(queued.stages, stages_of(one));
    CHECK(p.is_kept("f"));
    CHECK_FALSE(p.runs_inline("f"));
    // Started with one producer it runs inline; a second producer turns that off, for good.
    auto inl = startup(one);
    CHECK(inl.runs_inline("f"));
    auto off = plan_pipeline(inl.stages, stages_of(two));
    CHECK_FALSE(off.runs_inline("f"));
    CHECK_FALSE(plan_pipeline(off.stages, stages_of(one)).runs_inline("f"));
    // Kept with one producer, it stays inline.
    CHECK(plan_pipeline(inl.stages, stages_of(one)).runs_inline("f"));
}

TEST_CASE("plan: a finished stage left out of the running set starts again") {
    auto a = startup(kChain);
    std::vector<PlanStage> running;
    for (const auto& s : a.stages)
        if (s.name != "in") running.push_back(s);  // stdin reached EOF
    auto p = plan_pipeline(running, stages_of(kChain));
    CHECK(p.added == Names{"in"});
    CHECK(p.kept == Names{"parse", "tag", "out"});
}

TEST_CASE("plan: stages declare their resources from their config") {
    auto p = startup(R"(
[inputs.hb]
type = "http"
address = "127.0.0.1:8099"
[inputs.t]
type = "tcp"
[inputs.f]
type = "file"
path = "in/*.ndjson"
[outputs.out]
type = "file"
inputs = ["hb", "t", "f"]
path = "out-%Y.ndjson"
[outputs.k]
type = "tcp"
inputs = ["hb"]
address = "10.0.0.9:5170"
[outputs.d]
type = "null"
inputs = ["hb"]
buffer = { type = "disk", max_size = "1MiB" }
)");
    using K = Resource::Kind;
    CHECK(p.stage("hb")->resources == std::vector<Resource>{{K::listen, "127.0.0.1:8099"}});
    CHECK(p.stage("t")->resources == std::vector<Resource>{{K::listen, "0.0.0.0:5170"}});  // its default
    CHECK(p.stage("f")->resources == std::vector<Resource>{{K::file, "in/*.ndjson"}});
    CHECK(p.stage("out")->resources == std::vector<Resource>{{K::file, "out-%Y.ndjson"}});
    CHECK(p.stage("k")->resources.empty());  // an output's address is where it connects, not a listener
    CHECK(p.stage("d")->resources == std::vector<Resource>{{K::directory, ".hbforward/buffer/d"}});
}

TEST_CASE("plan: a stage's declared resources decide its conflicts, not its option names") {
    const char* a = R"(
[inputs.l]
type = "test_port_listener"
port = 7001
address = "127.0.0.1:9000"
label = "a"
[outputs.out]
type = "null"
inputs = ["l"]
)";
    using K = Resource::Kind;
    CHECK(startup(a).stage("l")->resources == std::vector<Resource>{{K::listen, "127.0.0.1:7001"}});
    auto relabelled = reload(a, with(a, "label = \"a\"", "label = \"b\""));
    CHECK(relabelled.changed == Names{"l"});
    CHECK(stops_before(relabelled, "l") == Names{"l"});
    REQUIRE(relabelled.conflicts.size() == 1);
    CHECK(to_string(relabelled.conflicts[0].resource) == "address 127.0.0.1:7001");
    auto moved = reload(a, with(with(a, "label = \"a\"", "label = \"b\""), "port = 7001", "port = 7002"));
    CHECK(moved.changed == Names{"l"});
    CHECK(moved.conflicts.empty());
}

TEST_CASE("plan: a following file input holds its checkpoint, so a changed one stops its old version first") {
    const char* a = R"(
[service]
data_dir = "/var/lib/hbf"
[inputs.f]
type = "file"
path = "a/*.ndjson"
follow = true
[outputs.out]
type = "null"
inputs = ["f"]
)";
    using K = Resource::Kind;
    CHECK(startup(a).stage("f")->resources ==
          std::vector<Resource>{{K::file, "a/*.ndjson"}, {K::file, "/var/lib/hbf/file-f.checkpoint"}});
    auto p = reload(a, with(a, "a/*.ndjson", "b/*.ndjson"));
    CHECK(p.changed == Names{"f"});
    CHECK(stops_before(p, "f") == Names{"f"});
    REQUIRE(p.conflicts.size() == 1);
    CHECK(to_string(p.conflicts[0].resource) == "file /var/lib/hbf/file-f.checkpoint");
    CHECK(startup(with(a, "follow = true", "follow = false")).stage("f")->resources == std::vector<Resource>{{K::file, "a/*.ndjson"}});
}

TEST_CASE("plan: listen addresses clash on one port when either host is a wildcard") {
    using K = Resource::Kind;
    CHECK(clashes({K::listen, "0.0.0.0:80"}, {K::listen, "127.0.0.1:80"}));
    CHECK(clashes({K::listen, "127.0.0.1:80"}, {K::listen, "127.0.0.1:80"}));
    CHECK_FALSE(clashes({K::listen, "127.0.0.1:80"}, {K::listen, "127.0.0.2:80"}));
    CHECK_FALSE(clashes({K::listen, "0.0.0.0:80"}, {K::listen, "0.0.0.0:8080"}));
    CHECK_FALSE(clashes({K::listen, "x:80"}, {K::file, "x:80"}));
    CHECK(clashes({K::file, "a.ndjson"}, {K::file, "a.ndjson"}));
    CHECK_FALSE(clashes({K::file, "a.ndjson"}, {K::file, "b.ndjson"}));
}

TEST_CASE("plan: a UDP and a TCP listener on one port do not clash; the syslog input declares its protocol") {
    using K = Resource::Kind;
    using P = Resource::Protocol;
    CHECK_FALSE(clashes({K::listen, "0.0.0.0:5514", P::udp}, {K::listen, "0.0.0.0:5514", P::tcp}));
    CHECK_FALSE(clashes({K::listen, "127.0.0.1:5514", P::udp}, {K::listen, "0.0.0.0:5514"}));
    CHECK(clashes({K::listen, "0.0.0.0:5514", P::udp}, {K::listen, "127.0.0.1:5514", P::udp}));
    const char* tcp_only = R"(
[inputs.t]
type = "tcp"
address = "127.0.0.1:5514"
[outputs.out]
type = "null"
inputs = ["t"]
)";
    const char* syslog_udp = R"(
[inputs.s]
type = "syslog"
address = "127.0.0.1:5514"
mode = "udp"
[outputs.out]
type = "null"
inputs = ["s"]
)";
    CHECK(startup(syslog_udp).stage("s")->resources == std::vector<Resource>{{K::listen, "127.0.0.1:5514", P::udp}});
    CHECK(startup(with(syslog_udp, "mode = \"udp\"", "mode = \"tcp\"")).stage("s")->resources ==
          std::vector<Resource>{{K::listen, "127.0.0.1:5514", P::tcp}});
    CHECK(to_string(Resource{K::listen, "127.0.0.1:5514", P::udp}) == "UDP address 127.0.0.1:5514");
    // A UDP syslog input replacing a TCP input on its port starts beside it; a TCP one waits.
    auto udp = reload(tcp_only, syslog_udp);
    CHECK(udp.added == Names{"s"});
    CHECK(udp.conflicts.empty());
    auto tcp = reload(tcp_only, with(syslog_udp, "mode = \"udp\"", "mode = \"tcp\""));
    CHECK(stops_before(tcp, "s") == Names{"t"});
}

TEST_CASE("plan: a changed webhook input on the same address stops its old version first (e2e)") {
    auto p = reload(webhook("127.0.0.1:8099", R"(["/healthbot"])"), webhook("127.0.0.1:8099", R"(["/healthbot", "/hb2"])"));
    CHECK(p.changed == Names{"hb"});
    CHECK(p.kept == Names{"out"});
    REQUIRE(p.conflicts.size() == 1);
    CHECK(p.conflicts[0].stops == "hb");
    CHECK(p.conflicts[0].starts == "hb");
    CHECK(to_string(p.conflicts[0].resource) == "address 127.0.0.1:8099");
    CHECK(stops_before(p, "hb") == Names{"hb"});
    CHECK(stops_before(p, "out").empty());
}

TEST_CASE("plan: a new input on a removed input's port waits for it; another port does not") {
    auto renamed = reload(webhook("127.0.0.1:8099", R"(["/a"])"),
                          R"(
[inputs.hook]
type = "http"
address = "0.0.0.0:8099"
[outputs.out]
type = "file"
inputs = ["hook"]
path = "out.ndjson"
)");
    CHECK(renamed.removed == Names{"hb"});
    CHECK(renamed.added == Names{"hook"});
    CHECK(stops_before(renamed, "hook") == Names{"hb"});
    auto moved = reload(webhook("127.0.0.1:8099", R"(["/a"])"), webhook("127.0.0.1:8100", R"(["/a"])"));
    CHECK(moved.changed == Names{"hb"});
    CHECK(moved.conflicts.empty());
}

TEST_CASE("plan: a changed output writing the same file or disk buffer stops its old version first") {
    const char* a = R"(
[inputs.in]
type = "stdin"
[outputs.out]
type = "file"
inputs = ["in"]
path = "out.ndjson"
[outputs.d]
type = "null"
inputs = ["in"]
buffer = { type = "disk", max_size = "1MiB" }
)";
    std::string b = with(with(a, "path = \"out.ndjson\"", "path = \"out.ndjson\"\nfsync_interval = \"2s\""), "max_size = \"1MiB\"",
                         "max_size = \"1MiB\", sync = \"none\"");
    auto p = reload(a, b);
    CHECK(sorted(p.changed) == Names{"d", "out"});
    CHECK(stops_before(p, "out") == Names{"out"});
    CHECK(stops_before(p, "d") == Names{"d"});
    CHECK(p.kept == Names{"in"});
}

TEST_CASE("plan: a new stage clashing with a kept one is no conflict to solve") {
    auto p = reload(webhook("127.0.0.1:8099", R"(["/a"])"), webhook("127.0.0.1:8099", R"(["/a"])") + R"(
[inputs.twin]
type = "http"
address = "127.0.0.1:8099"
)");
    CHECK(p.added == Names{"twin"});
    CHECK(p.conflicts.empty());  // starting it fails with the address in use, and the reload with it
}
