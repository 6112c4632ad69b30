// filter "throttle": lets at most `rate` events per `per` interval through for each key.
//
// The key is a field template such as "{device-id}" or "{group|none}/{device-id}", the syntax of
// the Kafka output's topic: the values of the named fields are hashed, no string is built; a
// missing field counts as its fallback if it has one. The literal text between fields plays no
// part. Each key counts in fixed windows that start with its first event. The excess is dropped
// and counted, or with on_excess = "sample" one in `sample` passes (the first of each run of
// `sample`). State is a fixed-size LRU table (max_entries).
#include "../common/compact.h"
#include "../common/config_util.h"
#include "../common/hash.h"
#include "../common/lru_table.h"
#include "field_template.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::FieldReader;
using filters::FieldValue;

struct Bucket {
    int64_t window_start = 0;
    uint64_t count = 0;
    uint64_t excess = 0;
};

struct ThrottleOptions {
    int64_t rate = 0;
    Duration per = std::chrono::seconds(1);
    std::string key;
    std::string on_excess = "drop";
    int64_t sample = 10;
    int64_t max_entries = 100000;
};

using O = ThrottleOptions;
const OptionSchema<O> kThrottleSchema{
    {"rate", &O::rate, "Most events per interval and key.", required{}, at_least{1}},
    {"per", &O::per, "The interval.", at_least{1e-9}},
    {"key", &O::key, "Key template naming fields in braces, e.g. \"{device-id}\"; empty = one limit for all events."},
    {"on_excess", &O::on_excess, "drop: the excess is dropped and counted; sample: one in `sample` of the excess passes.",
     one_of{"drop", "sample"}},
    {"sample", &O::sample, "With on_excess = \"sample\", one in this many excess events passes.", at_least{1}},
    {"max_entries", &O::max_entries, "Most keys remembered; the least recently seen is forgotten first.", at_least{1}},
};

class Throttle final : public Filter {
public:
    Throttle(const ThrottleOptions& o, const StageConfig& c) : table_(size_t(o.max_entries)) {
        rate_ = uint64_t(o.rate);
        per_ns_ = o.per.count();
        if (o.on_excess == "sample") sample_ = uint64_t(o.sample);
        FieldTemplate tmpl;
        try {
            tmpl = FieldTemplate(o.key);
        } catch (const std::invalid_argument& err) {
            c.fail("key", std::string("invalid key template: ") + err.what());
        }
        for (const auto& piece : tmpl.pieces()) {
            if (piece.field.empty()) continue;
            FieldValue fallback;
            if (piece.has_fallback) fallback.kind = FieldValue::Kind::string, fallback.str = piece.fallback;
            slots_.push_back({reader_.add(filters::path_option(c, "key", piece.field)), filters::value_hash(fallback)});
        }
        if (!o.key.empty() && slots_.empty())
            c.fail("key", "key template '" + o.key + "' names no field: write fields in braces, such as \"{device-id}\"");
    }

    void start(StageContext& ctx) override { dropped_ = &ctx.metrics().dropped("throttled"); }

    void process(BatchPtr in, Emitter& out) override {
        Batch& b = *in;
        now_ns_ = std::max(now_ns_, b.received_ns);
        auto pass = [&](size_t i) {
            Bucket* bk = bucket(key_of(b, i));
            if (now_ns_ - bk->window_start >= per_ns_) *bk = Bucket{now_ns_, 0, 0};
            if (bk->count < rate_) {
                ++bk->count;
                return true;
            }
            ++bk->excess;
            return sample_ && (bk->excess - 1) % sample_ == 0;
        };
        if (filters::compact(b, *dropped_, "throttled", pass)) out.emit(std::move(in));
    }

private:
    struct Slot {
        size_t reader_slot;
        uint64_t missing_hash;  // the fallback's hash, or a missing value's
    };

    uint64_t key_of(const Batch& b, size_t i) {
        uint64_t key = 0x7468726f;
        if (slots_.empty()) return key;
        std::string_view ev = b.event(i);
        reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
        for (size_t k = 0; k < slots_.size(); ++k) {
            const FieldValue& v = reader_.value(slots_[k].reader_slot);
            key = filters::mix64(key ^ ((v.present() ? filters::value_hash(v) : slots_[k].missing_hash) + k));
        }
        return key;
    }

    Bucket* bucket(uint64_t key) {
        if (Bucket* bk = table_.find(key)) return bk;
        Bucket* bk = &table_.insert(key);
        bk->window_start = now_ns_;
        return bk;
    }

    FieldReader reader_;
    std::vector<Slot> slots_;
    uint64_t rate_ = 0, sample_ = 0;
    int64_t per_ns_ = 0, now_ns_ = 0;
    filters::LruTable<Bucket> table_;
    simdjson::ondemand::parser parser_;
    Counter* dropped_ = nullptr;
};

HBF_REGISTER_FILTER("throttle", Throttle, kThrottleSchema, "Lets at most `rate` events per `per` interval through per key; drops or samples the excess.");

}  // namespace
}  // namespace hbf::stages
