// libFuzzer target: the line splitter of the file and stdin inputs (src/lines.cpp), which cuts
// lines out of the batch's buffer in place. The first byte picks max_line (1-64) and a seed for
// the sizes of the reads and for where batches are handed over; the rest is the stream.
// Checked besides "no crash": the events and the count of dropped lines are exactly those of a
// plain split (every line without its CR, empty ones skipped, those over max_line dropped), and
// each batch handed over is dense, every event followed by its newline, the padding kept
// (tests/unit/line_split.h, which the unit test uses too).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "../unit/line_split.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t max_line = 1 + data[0] % 64;
    uint32_t rng = 0x9E3779B9u * (data[0] + 1u);
    auto next = [&] { return rng = rng * 1103515245u + 12345u, (rng >> 16) & 0x7FFF; };
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    hbf::test::Split want = hbf::test::split_plainly(text, max_line), got = hbf::test::split_in_place(text, max_line, 96, next);
    if (!got.batches_ok || got.lines != want.lines || got.dropped != want.dropped) std::abort();
    return 0;
}
