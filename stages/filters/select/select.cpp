// filter "select": keeps the events matching `where` (or drops those matching `drop_where`).
//
// The batch is compacted in place: kept events keep their text where it is and only the offsets
// move, so nothing is copied. A batch left empty is acknowledged as dropped.
#include "../common/compact.h"
#include "../common/config_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::Condition;
using filters::FieldReader;

struct SelectOptions {
    std::optional<std::string> where, drop_where;
};

const OptionSchema<SelectOptions> kSelectSchema{
    {"where", &SelectOptions::where, "Condition: keep the events that match it, drop the rest."},
    {"drop_where", &SelectOptions::drop_where, "Condition: drop the events that match it, keep the rest."},
};

class Select final : public Filter {
public:
    Select(const SelectOptions& o, const StageConfig& c) : drop_(c.has("drop_where")) {
        if (c.has("where") == drop_)
            c.fail(drop_ ? "drop_where" : "where", "select needs exactly one of 'where' (keep matching events) and 'drop_where' (drop them)");
        const char* key = drop_ ? "drop_where" : "where";
        if (const auto& text = drop_ ? o.drop_where : o.where) cond_ = filters::condition_option(c, key, *text, reader_);
    }

    void start(StageContext& ctx) override { dropped_ = &ctx.metrics().dropped("filtered"); }

    void process(BatchPtr in, Emitter& out) override {
        Batch& b = *in;
        auto keep = [&](size_t i) {
            std::string_view ev = b.event(i);
            reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
            return cond_->eval(reader_) != drop_;
        };
        if (filters::compact(b, *dropped_, "filtered out by select", keep)) out.emit(std::move(in));
    }

private:
    FieldReader reader_;
    bool drop_ = false;
    std::optional<Condition> cond_;  // set unless the stage has a problem (and is not built)
    simdjson::ondemand::parser parser_;
    Counter* dropped_ = nullptr;
};

HBF_REGISTER_STATELESS_FILTER("select", Select, kSelectSchema, "Keeps (where) or drops (drop_where) events matching a condition.");

}  // namespace
}  // namespace hbf::stages
