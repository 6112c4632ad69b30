// Growing a std::string for bytes that are about to be written over (by a read(), or by a copy's
// stores) without zeroing them first: what C++23's resize_and_overwrite is for.
//
// The file input reads into a batch's buffer, and `s.resize(n)` wrote zeros over the 128 KiB of
// room before every read: that memset was 3.7% of the bulk pipeline's samples, and the CPU per
// event fell 6% without it (bench/README.md, eighth round).
#pragma once

#include <cstddef>
#include <string>

namespace hbf {

// s.resize(n) for n >= s.size(), leaving the new bytes as they are: the caller writes every byte
// it reads back, and shrinks the string to what it wrote. Reserves when n > capacity.
void resize_uninitialized(std::string& s, size_t n);

}  // namespace hbf
