// output "null": counts events and lets them go (benchmarks).
#include "registry.h"

namespace hbf::stages {
namespace {

class Null final : public Output {
public:
    explicit Null(const StageConfig&) {}
    void start(StageContext& ctx) override { m_ = &ctx.metrics(); }
    void write(BatchPtr b) override {
        m_->events_out.add(b->size());
        m_->bytes_out.add(b->bytes());
        b->mark(AckStatus::delivered);
    }

private:
    StageMetrics* m_ = nullptr;
};

const std::vector<OptionSpec> kNullSchema = {};
HBF_REGISTER_OUTPUT("null", Null, kNullSchema, "Counts events and discards them (benchmarks).");

}  // namespace
}  // namespace hbf::stages
