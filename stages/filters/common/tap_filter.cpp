// The condition language also serves `hbforward tap --where`: a compiled condition per tap
// subscriber, evaluated on the events it samples.
#include "batch.h"
#include "condition.h"
#include "tap.h"

namespace hbf::filters {
namespace {

class ConditionTapFilter final : public TapFilter {
public:
    explicit ConditionTapFilter(const std::string& text) : cond_(text, reader_) {}
    bool match(const Batch& b, size_t i) override {
        std::string_view ev = b.event(i);
        reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
        return cond_.eval(reader_);
    }

private:
    FieldReader reader_;
    Condition cond_;
    simdjson::ondemand::parser parser_;
};

const bool registered = [] {
    tap_filter_compiler() = [](const std::string& text) -> std::unique_ptr<TapFilter> {
        try {
            return std::make_unique<ConditionTapFilter>(text);
        } catch (const ConditionError& e) {
            throw std::invalid_argument(std::string(e.what()) + "\n  " + text + "\n  " + std::string(e.column - 1, ' ') + "^");
        }
    };
    return true;
}();

}  // namespace
}  // namespace hbf::filters
