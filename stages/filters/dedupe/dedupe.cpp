// filter "dedupe": suppresses repeats of the same alarm within a window.
//
// An alarm's identity is a 64-bit hash of the `fields` values; an object (HealthBot's `keys`) is
// hashed member by member and the members' hashes summed, so member order does not matter. The
// severity field is not part of the identity: it is remembered per alarm, and a change of severity
// (a clear, an escalation) always passes. Otherwise an alarm passes at most once per `window`,
// counted from the last time it passed. State is a fixed-size LRU table (max_entries).
#include <bit>

#include "../common/compact.h"
#include "../common/config_util.h"
#include "../common/hash.h"
#include "../common/lru_table.h"
#include "../common/splice.h"
#include "json_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::FieldReader;
using filters::FieldValue;
using namespace simdjson;

struct Alarm {
    uint64_t severity = 0;
    int64_t last_pass_ns = 0;
    uint32_t suppressed = 0;
};


struct DedupeOptions {
    StringList fields = {"group", "device-id", "topic", "rule", "trigger", "keys", "severity"};
    std::string severity_field = "severity";
    Duration window = std::chrono::minutes(5);
    int64_t max_entries = 100000;
    std::string repeat_count_field;
};

const OptionSchema<DedupeOptions> kDedupeSchema{
    {"fields", &DedupeOptions::fields, "Paths that make an alarm's identity (member order inside objects does not matter)."},
    {"severity_field", &DedupeOptions::severity_field, "Compared rather than hashed: a change of it always passes. Empty = none."},
    {"window", &DedupeOptions::window, "An alarm passes at most once per window unless its severity changed."},
    {"max_entries", &DedupeOptions::max_entries, "Most alarms remembered; the least recently seen is forgotten first.", at_least{1}},
    {"repeat_count_field", &DedupeOptions::repeat_count_field,
     "Member added to a passing event with how many repeats were suppressed before it; empty = off."},
};

class Dedupe final : public Filter {
public:
    Dedupe(const DedupeOptions& o, const StageConfig& c) : table_(size_t(o.max_entries)) {
        for (const auto& f : o.fields) {
            if (f == o.severity_field) continue;
            ids_.push_back(reader_.add(filters::path_option(c, "fields", f)));
        }
        if (ids_.empty()) c.fail("fields", "dedupe needs at least one identity field besides the severity");
        reader_.hash_objects(true);
        if (!o.severity_field.empty()) sev_ = int(reader_.add(filters::path_option(c, "severity_field", o.severity_field)));
        window_ns_ = o.window.count();
        if (!o.repeat_count_field.empty()) append_json_string(repeat_name_, o.repeat_count_field);
    }

    void start(StageContext& ctx) override {
        suppressed_ = &ctx.metrics().dropped("duplicate");
        evicted_ = &MetricsRegistry::global().counter("hbf_dedupe_evictions_total", "Alarms forgotten because the dedupe table was full.",
                                                      {{"stage", ctx.name()}});
    }

    void process(BatchPtr in, Emitter& out) override {
        Batch& b = *in;
        now_ns_ = std::max(now_ns_, b.received_ns);
        repeats_.resize(b.size());
        size_t kept = 0, evicted = 0;
        bool splice = false;
        auto pass = [&](size_t i) {
            std::string_view ev = b.event(i);
            reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
            uint64_t id = identity();
            uint64_t sev = sev_ >= 0 ? filters::value_hash(reader_.value(size_t(sev_))) : 0;
            Alarm* a = table_.find(id);
            uint32_t repeats = 0;
            if (!a) {
                bool ev_out = false;
                a = &table_.insert(id, &ev_out);
                evicted += ev_out;
            } else if (a->severity == sev && now_ns_ - a->last_pass_ns < window_ns_) {
                ++a->suppressed;
                return false;
            } else {
                repeats = a->suppressed;
            }
            a->severity = sev;
            a->last_pass_ns = now_ns_;
            a->suppressed = 0;
            repeats_[kept++] = repeats;
            splice |= repeats && !repeat_name_.empty();
            return true;
        };
        const bool any = filters::compact(b, *suppressed_, "duplicate alarm suppressed by dedupe", pass);
        if (evicted) evicted_->add(evicted);
        if (!any) return;
        out.emit(splice ? with_repeat_counts(b) : std::move(in));
    }

private:
    // The fields' hashes, each rotated by its position, summed and mixed once: no chain of
    // dependent multiplications from one field to the next, so the CPU hashes them in parallel.
    uint64_t identity() {
        uint64_t h = 0x9e3779b97f4a7c15ULL;
        for (size_t k = 0; k < ids_.size(); ++k) h += std::rotl(filters::value_hash(reader_.value(ids_[k])), int(k * 7 + 1));
        return filters::mix64(h);
    }

    // The passing events, each that followed suppressed repeats with their count spliced in.
    BatchPtr with_repeat_counts(Batch& b) {
        BatchPtr o = Batch::make();
        o->reserve_more(b.bytes() + b.size() * (repeat_name_.size() + 12));
        o->take_acks_from(b);
        for (size_t i = 0; i < b.size(); ++i) {
            std::string_view ev = b.event(i);
            size_t close = filters::object_close(ev);
            if (!repeats_[i] || close == std::string_view::npos) {
                o->append(ev);
                continue;
            }
            filters::MemberSplice s(*o);
            s.head(ev.substr(0, close));
            char num[16];
            int n = std::snprintf(num, sizeof num, "%u", repeats_[i]);
            s.member(repeat_name_, std::string_view(num, size_t(n)));
            s.finish(ev.substr(close));
        }
        return o;
    }

    FieldReader reader_;
    std::vector<size_t> ids_;
    int sev_ = -1;
    int64_t window_ns_ = 0;
    std::string repeat_name_;
    filters::LruTable<Alarm> table_;
    std::vector<uint32_t> repeats_;
    int64_t now_ns_ = 0;
    ondemand::parser parser_;
    Counter* suppressed_ = nullptr;
    Counter* evicted_ = nullptr;
};

HBF_REGISTER_FILTER("dedupe", Dedupe, kDedupeSchema, "Suppresses repeats of the same alarm within a window; severity changes always pass.");

}  // namespace
}  // namespace hbf::stages
