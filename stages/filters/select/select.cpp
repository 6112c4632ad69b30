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

class Select final : public Filter {
public:
    explicit Select(const StageConfig& c) : cond_(make_condition(c)) {}

    void start(StageContext& ctx) override { dropped_ = &ctx.metrics().dropped("filtered"); }

    void process(BatchPtr in, Emitter& out) override {
        Batch& b = *in;
        auto keep = [&](size_t i) {
            std::string_view ev = b.event(i);
            reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
            return cond_.eval(reader_) != drop_;
        };
        if (filters::compact(b, *dropped_, "filtered out by select", keep)) out.emit(std::move(in));
    }

private:
    Condition make_condition(const StageConfig& c) {
        bool w = c.has("where"), d = c.has("drop_where");
        if (w == d) c.fail(w ? "drop_where" : "where", "select needs exactly one of 'where' (keep matching events) and 'drop_where' (drop them)");
        drop_ = d;
        return filters::condition_option(c, d ? "drop_where" : "where", reader_);
    }

    FieldReader reader_;
    bool drop_ = false;
    Condition cond_;
    simdjson::ondemand::parser parser_;
    Counter* dropped_ = nullptr;
};

const std::vector<OptionSpec> kSelectSchema = {
    {"where", OptType::string, "", "Condition: keep the events that match it, drop the rest."},
    {"drop_where", OptType::string, "", "Condition: drop the events that match it, keep the rest."},
};
HBF_REGISTER_FILTER("select", Select, kSelectSchema, "Keeps (where) or drops (drop_where) events matching a condition.");

}  // namespace
}  // namespace hbf::stages
