// output "stdout": NDJSON to standard output.
#include <cstring>
#include <unistd.h>

#include "fileio.h"
#include "registry.h"

namespace hbf::stages {
namespace {

struct StdoutOptions {};  // none

class Stdout final : public Output {
public:
    explicit Stdout(StdoutOptions) {}
    void start(StageContext& ctx) override { ctx_ = &ctx; }
    void write(BatchPtr b) override {
        if (int err = write_batch(STDOUT_FILENO, *b)) {
            ctx_->metrics().errors.add();
            std::string why = std::string("write to stdout failed: ") + std::strerror(err);
            log_limited(rl_, ctx_->log(), spdlog::level::err, "{}", why);
            b->mark(AckStatus::failed, why);
            return;
        }
        ctx_->metrics().events_out.add(b->size());
        ctx_->metrics().bytes_out.add(b->bytes());
        b->mark(AckStatus::delivered);
    }

private:
    StageContext* ctx_ = nullptr;
    RateLimit rl_;
};

const OptionSchema<StdoutOptions> kStdoutSchema{};
HBF_REGISTER_OUTPUT("stdout", Stdout, kStdoutSchema, "Writes events as NDJSON to standard output.");

}  // namespace
}  // namespace hbf::stages
