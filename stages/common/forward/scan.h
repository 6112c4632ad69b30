// Finds where one msgpack object ends in bytes that arrive piecemeal, without trusting its headers.
//
// A Forward peer sends a stream of msgpack objects (frames). MsgpackScanner walks one object
// element by element and stops where the bytes run out; called again with the same (grown)
// buffer it resumes there, so a 64 MiB frame read 64 KiB at a time is walked once, not 1000
// times. Every declared length is checked against `max_size` from its header: a 2^32-element
// map or a 4 GiB string is refused before anything is allocated for it. Nesting deeper than
// `max_depth` is refused too, so code that recurses over a scanned object cannot overflow the
// stack. Once complete() returned, the object's bytes are well-formed msgpack and msgpuck's
// unchecked mp_decode_* functions are safe on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hbf::forward {

enum class Scan { complete, incomplete, error };

class MsgpackScanner {
public:
    explicit MsgpackScanner(size_t max_size, unsigned max_depth = 64) : max_size_(max_size), max_depth_(max_depth) { reset(); }

    // Scans the object at p[0]; p[0..n) must start with the same bytes as on the previous call.
    Scan scan(const char* p, size_t n);
    // Size of the object once complete.
    size_t size() const { return pos_; }
    const char* error() const { return error_; }
    size_t error_offset() const { return pos_; }
    void reset() {
        pos_ = 0;
        stack_.clear();
        stack_.push_back(1);
        error_ = "";
    }
    void set_max_size(size_t m) { max_size_ = m; }

private:
    Scan fail(const char* why) {
        error_ = why;
        return Scan::error;
    }

    size_t max_size_;
    unsigned max_depth_;
    size_t pos_ = 0;
    std::vector<uint64_t> stack_;  // elements still expected at each open level
    const char* error_ = "";
};

// Scans a complete buffer: the size of the object at p, or 0 with `why` set (truncated, malformed).
size_t scan_whole(MsgpackScanner& s, const char* p, size_t n, const char** why);

}  // namespace hbf::forward
