// Splits a byte stream into NDJSON lines appended to batches; shared by the stdin and file inputs.
//
// The file input reads straight into a batch's buffer, behind the unfinished line, and the lines
// become events where they lie: no copy per line. CR before a newline, empty lines and lines over
// max_line are cut out by moving what follows them down, so a batch stays dense (its events back to
// back, each followed by '\n') whatever the input. Between batches the unfinished line waits in
// the splitter.
//
//   ls.begin(b);                                   // b gets the unfinished line back at its end
//   n = ::read(fd, ls.room(b, kRead), kRead);      // room for a read behind it
//   dropped += ls.commit(b, n < 0 ? 0 : n);        // the complete lines become b's events
//   ls.end(b);                                     // the unfinished line leaves b: it may be emitted
#pragma once

#include <string>
#include <string_view>

#include "batch.h"
#include "metrics.h"

namespace hbf {

class LineSplitter {
public:
    explicit LineSplitter(size_t max_line) : max_line_(max_line) {}

    // Puts the unfinished line at the end of `b` (whose buffer must end after an event, as it
    // does between the calls here), so reads go behind it.
    void begin(Batch& b);
    // Grows b's buffer by `n` bytes to read into; returns where they start. commit() must follow.
    char* room(Batch& b, size_t n);
    // `got` of the room's bytes were filled (the rest is cut off): every complete line becomes an
    // event of `b` (empty lines skipped, a CR before the newline removed). Returns how many lines
    // were too long and dropped.
    size_t commit(Batch& b, size_t got);
    // Takes the unfinished line out of `b` again, to wait for the next begin().
    void end(Batch& b);

    // The same for bytes already in memory: begin, a copy into the room, commit, end.
    size_t feed(const char* p, size_t n, Batch& b);
    // At end of input: the last line without its newline.
    size_t finish(Batch& b);
    // Bytes held back in an unfinished line (between end() and begin()).
    size_t pending() const { return carry_.size() + (skipping_ ? 1 : 0); }
    void reset() { carry_.clear(); skipping_ = false; }

private:
    size_t max_line_;
    std::string carry_;      // the unfinished line between end() and begin()
    bool skipping_ = false;  // inside a line longer than max_line
    // Inside begin() ... end(), offsets in the batch's buffer:
    size_t next_ = 0;   // where the next event goes (after the last one)
    size_t line_ = 0;   // where the unfinished line starts (next_ until a line is cut out)
    size_t room_ = 0;   // bytes of room() not yet committed
};

}  // namespace hbf
