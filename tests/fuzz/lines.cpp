// libFuzzer target: the line splitter of the file and stdin inputs (src/lines.cpp), which cuts
// lines out of the batch's buffer in place. The first byte picks max_line (1-64) and a seed for
// the sizes of the reads and for where batches are handed over; the rest is the stream.
// Checked besides "no crash": the events and the count of dropped lines are exactly those of a
// plain split (every line without its CR, empty ones skipped, those over max_line dropped), and
// each batch handed over is dense, every event followed by its newline, the padding kept.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lines.h"

using namespace hbf;

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t max_line = 1 + data[0] % 64;
    uint32_t rng = 0x9E3779B9u * (data[0] + 1u);
    auto next = [&] { return rng = rng * 1103515245u + 12345u, (rng >> 16) & 0x7FFF; };
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    std::vector<std::string> want;
    size_t want_dropped = 0;
    for (size_t start = 0; start < text.size();) {
        size_t nl = text.find('\n', start);
        std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        start = nl == std::string_view::npos ? text.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max_line) ++want_dropped;
        else if (!line.empty()) want.emplace_back(line);
    }

    LineSplitter ls(max_line);
    std::vector<std::string> got;
    size_t dropped = 0;
    BatchPtr b = Batch::make();
    auto hand_over = [&] {
        ls.end(*b);
        require(b->dense() && b->buf.capacity() >= b->buf.size() + Batch::kPadding);
        for (size_t i = 0; i < b->size(); ++i) {
            require(b->buf[b->events[i].off + b->events[i].len] == '\n');
            got.emplace_back(b->event(i));
        }
        b = Batch::make();
    };
    ls.begin(*b);
    for (size_t pos = 0; pos < text.size();) {
        const size_t ask = 1 + next() % 96, fill = std::min({ask, size_t(1 + next() % 96), text.size() - pos});
        std::memcpy(ls.room(*b, ask), text.data() + pos, fill);
        dropped += ls.commit(*b, fill);
        pos += fill;
        if (next() % 4 == 0) {
            hand_over();
            ls.begin(*b);
        }
    }
    hand_over();
    dropped += ls.finish(*b);
    for (size_t i = 0; i < b->size(); ++i) got.emplace_back(b->event(i));
    require(got == want && dropped == want_dropped);
    return 0;
}
