// input "stdin": NDJSON lines from standard input; EOF ends the input.
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

#include "lines.h"
#include "registry.h"

namespace hbf::stages {
namespace {

struct StdinOptions {
    Size max_line = Size(1 << 20);
};

const OptionSchema<StdinOptions> kStdinSchema{
    {"max_line", &StdinOptions::max_line,
     "Longest accepted line; longer ones are dropped and counted (hbf_events_dropped_total{reason=\"line_too_long\"}).", at_least{2}},
};

class Stdin final : public Input {
public:
    explicit Stdin(const StdinOptions& o) : max_line_(o.max_line) {}

    void run(StageContext& ctx, Emitter& out) override {
        LineSplitter lines(max_line_);
        Counter& too_long = ctx.metrics().dropped("line_too_long");
        std::vector<char> buf(256 << 10);
        BatchPtr b = Batch::make();
        uint64_t total = 0;
        auto flush = [&] {
            if (b->empty()) return true;
            total += b->size();
            ctx.metrics().events_in.add(b->size());
            bool ok = out.emit(std::move(b));
            b = Batch::make();
            return ok;
        };
        for (;;) {
            if (ctx.stopping()) break;
            pollfd pfd{STDIN_FILENO, POLLIN, 0};
            int pr = ::poll(&pfd, 1, 100);
            if (pr == 0) {  // quiet: hand over what we have
                if (!flush()) break;
                continue;
            }
            ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                ctx.log().error("read from stdin failed: {}", std::strerror(errno));
                break;
            }
            if (n == 0) {
                if (size_t d = lines.finish(*b)) too_long.add(d);
                break;
            }
            if (size_t d = lines.feed(buf.data(), size_t(n), *b)) {
                too_long.add(d);
                ctx.log().warn("dropped {} line(s) longer than max_line ({} bytes)", d, max_line_);
            }
            if (b->size() >= ctx.batch_events || b->bytes() >= (1u << 20))
                if (!flush()) break;
        }
        flush();
        ctx.log().info("stdin ended after {} events", total);
    }

private:
    size_t max_line_;
};

HBF_REGISTER_INPUT("stdin", Stdin, kStdinSchema, "Reads NDJSON lines from standard input until EOF.");

}  // namespace
}  // namespace hbf::stages
