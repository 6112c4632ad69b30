// input "generate": synthetic HealthBot notifications for benchmarks and demos.
//
// A fleet of devices in a few groups raises and clears alarms from a small rule set shaped on
// Juniper's published rules (interfaces most often, then BGP/IS-IS/MPLS/RPM, system, linecards,
// chassis). Each alarm instance keeps its state, so a notification is a change of state; about
// 45% normal, 38% major, 17% minor. Now and then a storm: one device raises dozens of alarms in a
// row. About 1% of messages carry quotes, backslashes, non-ASCII text or ~1 KB of text.
// Documents are written the way HealthBot's Python serializer writes them: sorted keys, ", " and
// ": " separators. Deterministic for a given seed.
#include <array>
#include <cstring>
#include <fmt/format.h>
#include <iterator>
#include <string_view>
#include <thread>

#include "json_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

// splitmix64: small, fast, and the same on every platform.
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    uint32_t below(uint32_t n) { return uint32_t((next() >> 32) * n >> 32); }
};

enum class KeyKind { interface, neighbor4, neighbor6, slot, fpc, rpm, isis, none, lsp };

// The rule set, one rule a line: topic | rule | trigger | playbook | instance | key kind | the
// major, minor ("-": none) and normal message templates ({k} is the key value) | weight.
// Parsed at compile time: a malformed line is a compile error.
constexpr std::string_view kRuleTable = R"(
interface.statistics | check-interface-status | link-state | interface-kpis-playbook | edge-intf | interface | {k} operational state is DOWN while admin state is UP | - | {k} operational state is UP | 14
interface.statistics | check-interface-flaps | link-flaps | interface-kpis-playbook | edge-intf | interface | {k} flapped 12 times in the last 5 minutes | {k} flapped 4 times in the last 5 minutes | {k} is stable | 8
interface.statistics | check-in-errors | in-errors | interface-kpis-playbook | edge-intf | interface | {k} input errors 1532 per second, above high threshold | {k} input errors 88 per second, above low threshold | {k} input errors are normal | 7
interface.statistics | check-interface-utilization | tx-utilization | interface-kpis-playbook | edge-intf | interface | {k} transmit utilization 97 percent exceeds 90 percent | {k} transmit utilization 83 percent exceeds 80 percent | {k} transmit utilization is normal | 6
protocol.bgp | check-bgp-session-state | neigbor-state | bgp-session-stats-playbook | core-bgp | neighbor4 | BGP peer {k} left Established (state now Active) | - | BGP peer {k} is Established | 6
protocol.bgp | check-bgp-session-state | neigbor-state | bgp-session-stats-playbook | core-bgp | neighbor6 | BGP peer {k} left Established (state now Idle) | - | BGP peer {k} is Established | 4
protocol.bgp | check-bgp-prefix-count | received-prefixes | bgp-session-stats-playbook | core-bgp | neighbor4 | BGP peer {k} received prefixes 0, below the minimum 1 | BGP peer {k} received prefixes dropped by 40 percent | BGP peer {k} received prefixes are normal | 3
protocol.isis | check-isis-adjacency | adjacency-state | isis-playbook | core-isis | isis | IS-IS adjacency on {k} is Down | - | IS-IS adjacency on {k} is Up | 4
protocol.mpls | check-lsp-state | lsp-state | mpls-lsp-playbook | core-mpls | lsp | LSP {k} is Dn | - | LSP {k} is Up | 3
protocol.rpm | check-rpm-rtt | rtt-threshold | playbook-rpm | rpm-all | rpm | RPM test {k} round-trip time 182 ms over threshold 100 ms | RPM test {k} round-trip time 91 ms above 80 ms | RPM test {k} round-trip time is normal | 4
system.cpu | check-system-cpu-load-average | cpu-utilization-5min | system-kpis-playbook | default | slot | RE{k} 5-minute CPU load 93 percent, above critical level 85 | RE{k} 5-minute CPU load 74 percent, above warning level 60 | RE{k} 5-minute CPU load is normal | 5
system.memory | check-system-memory | memory-utilization | system-kpis-playbook | default | slot | RE{k} memory utilization 96 percent is above high threshold | RE{k} memory utilization 82 percent is above low threshold | RE{k} memory utilization is normal | 4
system.storage | check-storage | storage-utilization | system-kpis-playbook | default | none | /var utilization 95 percent is above high threshold | /var utilization 81 percent is above low threshold | /var utilization is normal | 2
linecard.fpc | check-fpc-memory | fpc-heap-utilization | fpc-linecard-playbook | lc-health | fpc | FPC {k} heap utilization 91 percent is above high threshold | FPC {k} heap utilization 78 percent is above low threshold | FPC {k} heap utilization is normal | 5
linecard.fpc | check-fpc-cpu | fpc-cpu-utilization | fpc-linecard-playbook | lc-health | fpc | FPC {k} CPU utilization 95 percent is above high threshold | FPC {k} CPU utilization 81 percent is above low threshold | FPC {k} CPU utilization is normal | 3
chassis.power | check-power-supply | psu-status | chassis-playbook | chassis | slot | Power supply {k} status is Failed | - | Power supply {k} status is OK | 2
chassis.environment | check-temperature | temperature | chassis-playbook | chassis | slot | Slot {k} temperature 78 C is above high threshold 70 C | Slot {k} temperature 64 C is above low threshold 60 C | Slot {k} temperature is normal | 2
)";

struct Rule {
    std::string_view topic, rule, trigger, playbook, instance;
    KeyKind keys = KeyKind::none;
    std::string_view major, minor, normal;  // minor empty: the rule has no minor level
    int weight = 0;
};

constexpr KeyKind key_kind(std::string_view name) {
    constexpr std::pair<std::string_view, KeyKind> kKinds[] = {
        {"interface", KeyKind::interface}, {"neighbor4", KeyKind::neighbor4}, {"neighbor6", KeyKind::neighbor6},
        {"slot", KeyKind::slot},           {"fpc", KeyKind::fpc},             {"rpm", KeyKind::rpm},
        {"isis", KeyKind::isis},           {"none", KeyKind::none},           {"lsp", KeyKind::lsp}};
    for (const auto& [n, k] : kKinds)
        if (n == name) return k;
    throw "unknown key kind in kRuleTable";
}

constexpr size_t kNumRules = [] {
    size_t lines = 0;
    for (char c : kRuleTable) lines += c == '\n';
    return lines - 1;  // the table starts and ends with a line break
}();

constexpr std::array<Rule, kNumRules> parse_rules() {
    std::array<Rule, kNumRules> rules{};
    std::string_view text = kRuleTable.substr(1);
    for (Rule& r : rules) {
        std::string_view line = text.substr(0, text.find('\n'));
        text.remove_prefix(line.size() + 1);
        std::string_view f[10];
        for (auto& field : f) {
            size_t bar = line.find(" | ");
            field = line.substr(0, bar);
            line.remove_prefix(bar == std::string_view::npos ? line.size() : bar + 3);
        }
        if (!line.empty() || f[9].empty()) throw "a line of kRuleTable does not have 10 fields";
        int weight = 0;
        for (char c : f[9]) weight = weight * 10 + (c - '0');
        r = {f[0], f[1], f[2], f[3], f[4], key_kind(f[5]), f[6], f[7] == "-" ? std::string_view{} : f[7], f[8], weight};
    }
    return rules;
}

constexpr std::array<Rule, kNumRules> kRules = parse_rules();

constexpr const char* kModels[] = {"mx480", "mx960", "mx10003", "mx204", "ptx10008", "ptx5000", "acx7100", "acx5448", "qfx5120", "qfx10002", "srx4600", "srx1500"};
constexpr const char* kRoles[] = {"pe", "core", "agg", "edge", "leaf", "spine", "fw", "br"};
constexpr const char* kSites[] = {"ams", "fra", "lon", "par", "nyc", "sjc", "sin", "tyo"};
constexpr const char* kGroups[] = {"edge-routers", "core", "metro-agg", "dc-fabric", "security", "peering"};
constexpr const char* kIfPrefixes[] = {"ge", "xe", "et", "ae"};

struct GenOptions {
    double rate = 0;
    int64_t count = 0;
    int64_t seed = 1;
    int64_t devices = 200;
    std::string sequence_field;
};

const OptionSchema<GenOptions> kGenerateSchema{
    {"rate", &GenOptions::rate, "Events per second; 0 = as fast as possible."},
    {"count", &GenOptions::count, "Events to generate before the input ends; 0 = forever.", at_least{0}},
    {"seed", &GenOptions::seed, "Random seed: the same seed gives the same events."},
    {"devices", &GenOptions::devices, "How many distinct device ids the fleet has.", between{1, 1000000}},
    {"sequence_field", &GenOptions::sequence_field, "Field that receives a sequence number 0, 1, 2... (tests); empty = off."},
};

class Generate final : public Input {
public:
    Generate(const GenOptions& o, const StageConfig& c) : o_(o) {
        if (o_.rate < 0) c.problem("rate", "rate must be 0 (as fast as possible) or a positive number of events per second");
        seq_field_ = o.sequence_field;
        c.stop_if_problems();
        build_fleet();
    }

    void run(StageContext& ctx, Emitter& out) override {
        const size_t per_batch = ctx.batch_events;
        const auto t0 = std::chrono::steady_clock::now();
        uint64_t made = 0;
        while (!ctx.stopping() && (o_.count == 0 || made < uint64_t(o_.count))) {
            size_t n = per_batch;
            if (o_.count) n = std::min<uint64_t>(n, uint64_t(o_.count) - made);
            if (o_.rate > 0) {
                // Pace by batches: small batches at low rates keep latency sensible.
                n = std::min<size_t>(n, std::max<size_t>(1, size_t(o_.rate / 100)));
                auto due = t0 + std::chrono::nanoseconds(int64_t(double(made) * 1e9 / o_.rate));
                while (!ctx.stopping() && std::chrono::steady_clock::now() < due)
                    std::this_thread::sleep_until(std::min(due, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
                if (ctx.stopping()) break;
            }
            BatchPtr b = Batch::make();
            b->reserve_more(n * 420);
            for (size_t i = 0; i < n; ++i) write_one(*b);
            made += n;
            if (!out.emit(std::move(b))) break;
        }
        ctx.log().info("generated {} events", made);
    }

private:
    struct Device {
        std::string name;
        uint8_t group;
    };

    void build_fleet() {
        Rng r{o_.seed ^ 0x4842666f7277ULL};
        for (uint32_t i = 0; i < o_.devices; ++i) {
            const char* model = kModels[r.below(std::size(kModels))];
            std::string name = fmt::format("{}-{}{}", model, kRoles[r.below(std::size(kRoles))], i + 1);
            if (r.below(5) == 0) name += fmt::format(".{}", kSites[r.below(std::size(kSites))]);
            devices_.push_back({name, uint8_t(r.below(std::size(kGroups)))});
        }
        int total = 0;
        for (const auto& k : kRules) total += k.weight;
        for (size_t i = 0; i < kNumRules; ++i)
            for (int w = 0; w < kRules[i].weight; ++w) rule_pick_.push_back(uint8_t(i));
        (void)total;
        state_.assign(size_t(o_.devices) * kNumRules * 8, 0);
        rng_.s = o_.seed;
    }

    void key_value(KeyKind k, uint32_t inst, std::string& out) {
        switch (k) {
            case KeyKind::interface: {
                const char* p = kIfPrefixes[inst % 4];
                if (inst % 4 == 3) fmt::format_to(std::back_inserter(out), "ae{}", inst % 48);
                else if (inst % 7 == 2) fmt::format_to(std::back_inserter(out), "{}-{}/{}/{}:{}", p, inst % 2, inst % 4, inst % 12, inst % 4);
                else fmt::format_to(std::back_inserter(out), "{}-{}/{}/{}", p, inst % 3, (inst / 3) % 4, inst % 24);
                break;
            }
            case KeyKind::neighbor4: fmt::format_to(std::back_inserter(out), "10.{}.{}.{}", inst % 8, (inst * 7) % 256, 1 + inst % 250); break;
            case KeyKind::neighbor6: fmt::format_to(std::back_inserter(out), "2001:db8:0:{:x}::{:x}", inst % 64, 1 + inst % 9); break;
            case KeyKind::slot: fmt::format_to(std::back_inserter(out), "{}", inst % 2); break;
            case KeyKind::fpc: fmt::format_to(std::back_inserter(out), "{}", inst % 8); break;
            case KeyKind::rpm: fmt::format_to(std::back_inserter(out), "probe-{}", inst % 6); break;
            case KeyKind::isis: fmt::format_to(std::back_inserter(out), "et-0/0/{}.0", inst % 8); break;
            case KeyKind::lsp: fmt::format_to(std::back_inserter(out), "lsp-to-pe{}", inst % 16); break;
            case KeyKind::none: break;
        }
    }


    // One notification: which alarm changed, and to which level.
    struct Change {
        uint32_t dev, ri, inst;
        uint8_t level;  // 0 normal, 1 major, 2 minor
    };

    void write_one(Batch& b) {
        const Change ch = next_change();
        const Rule& rule = kRules[ch.ri];
        const char* sev = ch.level == 0 ? "normal" : ch.level == 1 ? "major" : "minor";
        std::string_view tmpl = ch.level == 0 ? rule.normal : ch.level == 1 ? rule.major : rule.minor;

        key_.clear();
        key_value(rule.keys, ch.inst + ch.dev * 3, key_);
        format_message(tmpl);
        append_event(b, devices_[ch.dev], rule, sev);
    }

    // Picks the next change of state. About 45% of notifications clear a raised alarm; the rest
    // raise one or change its colour. The order of rng_ draws is part of the output: keep it.
    Change next_change() {
        // Storms: one device raising many alarms within seconds.
        if (storm_left_ == 0 && rng_.below(2000) == 0) {
            storm_left_ = 20 + rng_.below(40);
            storm_device_ = rng_.below(o_.devices);
        }
        if (!storm_left_ && !active_.empty() && rng_.below(100) < 45) return clear_one();
        return raise_one();
    }

    Change clear_one() {
        uint32_t pick = rng_.below(uint32_t(active_.size()));
        uint32_t id = active_[pick];
        active_[pick] = active_.back();
        active_.pop_back();
        state_[id] = 0;
        return {uint32_t(id / (kNumRules * 8)), uint32_t((id / 8) % kNumRules), id % 8, 0};
    }

    Change raise_one() {
        uint32_t dev = storm_left_ ? storm_device_ : rng_.below(o_.devices);
        if (storm_left_) --storm_left_;
        uint32_t ri = rule_pick_[rng_.below(uint32_t(rule_pick_.size()))];
        uint32_t inst = rng_.below(8);
        uint32_t id = (dev * uint32_t(kNumRules) + ri) * 8 + inst;
        uint8_t& st = state_[id];
        bool has_minor = !kRules[ri].minor.empty();
        uint8_t next;
        if (st == 0) {
            next = (!has_minor || rng_.below(100) < 48) ? 1 : 2;
            active_.push_back(id);
        } else {
            next = (st == 1 && has_minor) ? 2 : 1;
        }
        st = next;
        return {dev, ri, inst, next};
    }

    // msg_ = tmpl with {k} replaced by key_; about 1% get quotes, non-ASCII or ~1 KB appended.
    void format_message(std::string_view tmpl) {
        msg_.clear();
        for (size_t i = 0; i < tmpl.size(); ++i) {
            if (tmpl.substr(i, 3) == "{k}") { msg_ += key_; i += 2; }
            else msg_.push_back(tmpl[i]);
        }
        uint32_t odd = rng_.below(100);
        if (odd == 0) {
            switch (rng_.below(3)) {
                case 0: msg_ += " (description \"uplink to C:\\\\core\\\\po1\")"; break;
                case 1: msg_ += " — Überlast am Standort Zürich, 東京 POP"; break;
                default:
                    for (int i = 0; i < 14; ++i) msg_ += " extended diagnostics: counters sampled over five intervals;";
            }
        }
    }

    // The field under "keys" that holds key_; nullptr: the rule has none.
    static const char* key_field_name(KeyKind k) {
        switch (k) {
            case KeyKind::interface: return "interface-name";
            case KeyKind::neighbor4:
            case KeyKind::neighbor6: return "neighbor-address";
            case KeyKind::slot: return "slot";
            case KeyKind::fpc: return "fpc";
            case KeyKind::rpm: return "test-name";
            case KeyKind::isis: return "interface-name";
            case KeyKind::lsp: return "lsp-name";
            case KeyKind::none: break;
        }
        return nullptr;
    }

    // Writes the document with sorted keys and HealthBot's separators (see the file comment).
    void append_event(Batch& b, const Device& d, const Rule& rule, const char* sev) {
        auto& s = b.buf;
        b.begin_event();
        s += "{\"device-id\": \"";
        s += d.name;
        s += "\", \"group\": \"";
        s += kGroups[d.group];
        s += "\", \"keys\": {\"_instance_id\": \"[\\\"";
        s += rule.instance;
        s += "\\\"]\", \"_playbook_name\": \"";
        s += rule.playbook;
        s += '"';
        if (rule.keys == KeyKind::rpm) s += ", \"owner\": \"sla-probes\"";
        if (const char* key_name = key_field_name(rule.keys)) {
            s += ", \"";
            s += key_name;
            s += "\": ";
            append_json_string(s, key_);
        }
        s += "}, \"message\": ";
        append_json_string(s, msg_);
        s += ", \"rule\": \"";
        s += rule.rule;
        s += "\", \"severity\": \"";
        s += sev;
        s += "\", \"topic\": \"";
        s += rule.topic;
        s += "\", \"trigger\": \"";
        s += rule.trigger;
        s += '"';
        if (!seq_field_.empty()) {
            s += ", ";
            append_json_string(s, seq_field_);
            fmt::format_to(std::back_inserter(s), ": {}", seq_++);
        }
        s += '}';
        b.finish_event();
    }

    GenOptions o_;
    std::vector<Device> devices_;
    std::vector<uint8_t> rule_pick_;
    std::vector<uint8_t> state_;
    std::vector<uint32_t> active_;  // ids of raised alarms
    Rng rng_{0};
    uint32_t storm_left_ = 0, storm_device_ = 0;
    std::string key_, msg_;
    std::string seq_field_;
    uint64_t seq_ = 0;
};

HBF_REGISTER_INPUT("generate", Generate, kGenerateSchema, "Synthetic HealthBot notifications (benchmarks, demos).");

}  // namespace
}  // namespace hbf::stages
