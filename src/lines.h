// Splits a byte stream into NDJSON lines appended to batches; shared by the stdin and file inputs.
#pragma once

#include <string>
#include <string_view>

#include "batch.h"
#include "metrics.h"

namespace hbf {

class LineSplitter {
public:
    explicit LineSplitter(size_t max_line) : max_line_(max_line) {}

    // Appends every complete line of [p, p+n) to `b` (empty lines skipped) and keeps the rest.
    // Returns how many lines were too long and dropped.
    size_t feed(const char* p, size_t n, Batch& b);
    // At end of input: the last line without its newline.
    size_t finish(Batch& b);
    // Bytes held back in an unfinished line.
    size_t pending() const { return carry_.size() + (skipping_ ? 1 : 0); }
    void reset() { carry_.clear(); skipping_ = false; }

private:
    size_t emit(std::string_view line, Batch& b);

    size_t max_line_;
    std::string carry_;
    bool skipping_ = false;  // inside a line longer than max_line
};

}  // namespace hbf
