// output "null": counts events and lets them go (benchmarks).
#include "registry.h"

namespace hbf::stages {
namespace {

struct NullOptions {};  // none

class Null final : public Output {
public:
    explicit Null(NullOptions) {}
    void start(StageContext& ctx) override { m_ = &ctx.metrics(); }
    void write(BatchPtr b) override {
        m_->events_out.add(b->size());
        m_->bytes_out.add(b->bytes());
        b->mark(AckStatus::delivered);
    }

private:
    StageMetrics* m_ = nullptr;
};

const OptionSchema<NullOptions> kNullSchema{};
HBF_REGISTER_OUTPUT("null", Null, kNullSchema, "Counts events and discards them (benchmarks).");

}  // namespace
}  // namespace hbf::stages
