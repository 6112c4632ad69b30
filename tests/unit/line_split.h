// The line splitter (src/lines.h) driven as the file input drives it, beside a plain split of the
// same text: shared by the unit test (tests/unit/stages_test.cpp) and the fuzz target
// (tests/fuzz/lines.cpp).
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lines.h"

namespace hbf::test {

struct Split {
    std::vector<std::string> lines;
    size_t dropped = 0;
    bool batches_ok = true;  // every batch handed over dense, each event followed by '\n', padding kept
};

// What splitting `text` must give: every line without its CR, empty ones skipped, those longer
// than max_line dropped (counted), the last one whether or not a newline ends it.
inline Split split_plainly(std::string_view text, size_t max_line) {
    Split s;
    for (size_t start = 0; start < text.size();) {
        size_t nl = text.find('\n', start);
        std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        start = nl == std::string_view::npos ? text.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max_line) ++s.dropped;
        else if (!line.empty()) s.lines.emplace_back(line);
    }
    return s;
}

// Reads `text` into batches through a LineSplitter: each read asks for 1..max_read bytes of room
// and fills 1..max_read of them (the fewer), and after a read the batch is handed over when
// next() % 3 == 0. `next` returns random numbers.
template <typename Next>
Split split_in_place(std::string_view text, size_t max_line, size_t max_read, Next&& next) {
    Split s;
    LineSplitter ls(max_line);
    BatchPtr b = Batch::make();
    auto take = [&](const Batch& batch) {
        for (size_t i = 0; i < batch.size(); ++i) s.lines.emplace_back(batch.event(i));
    };
    auto hand_over = [&] {
        ls.end(*b);
        s.batches_ok &= b->dense() && b->buf.capacity() >= b->buf.size() + Batch::kPadding;
        for (const EventRef& e : b->events) s.batches_ok &= b->buf[e.off + e.len] == '\n';
        take(*b);
        b = Batch::make();
    };
    ls.begin(*b);
    for (size_t pos = 0; pos < text.size();) {
        const size_t ask = 1 + next() % max_read, fill = std::min({ask, size_t(1 + next() % max_read), text.size() - pos});
        std::memcpy(ls.room(*b, ask), text.data() + pos, fill);
        s.dropped += ls.commit(*b, fill);
        pos += fill;
        if (next() % 3 == 0) {
            hand_over();
            ls.begin(*b);
        }
    }
    hand_over();
    s.dropped += ls.finish(*b);
    take(*b);
    return s;
}

}  // namespace hbf::test
