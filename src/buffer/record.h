// The disk buffer's on-disk record: one whole batch, framed with its length and a CRC32C.
//
// A segment file is a run of records, back to back. Each record is (little-endian):
//   header, 32 bytes:
//     u32 magic        kMagic; lets a reader find the next record after a damaged one
//     u32 crc          CRC32C of everything after this field: the rest of the header, then the payload
//     u32 len          payload bytes
//     u32 events       number of events
//     u64 seq          the record's number in its buffer, increasing by one per record written
//     i64 received_ns  the batch's receive time (wall clock)
//   payload:
//     events x {u32 off, u32 len}   the batch's EventRefs, offsets into the text
//     text                          each event followed by '\n' (already NDJSON)
// A batch whose events do not cover its buffer back to back is compacted as it is encoded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batch.h"

namespace hbf::buffer {

inline constexpr uint32_t kMagic = 0x524248FE;  // bytes FE 'H' 'B' 'R': 0xFE never occurs in UTF-8
inline constexpr size_t kHeaderBytes = 32;
inline constexpr uint32_t kMaxPayload = 1u << 30;  // larger lengths are damage, not data

struct RecordHeader {
    uint32_t magic = kMagic;
    uint32_t crc = 0;
    uint32_t len = 0;
    uint32_t events = 0;
    uint64_t seq = 0;
    int64_t received_ns = 0;
};
static_assert(sizeof(RecordHeader) == kHeaderBytes);

// Bytes the record of `b` takes on disk.
size_t record_bytes(const Batch& b);
// Appends the record of `b` numbered `seq` to `out`.
void append_record(std::string& out, const Batch& b, uint64_t seq);

enum class ReadStatus { ok, bad, short_read };

// Reads the record at `off` of `fd` (whose readable end is `end`) into `into` (cleared first;
// its buffer keeps Batch::kPadding spare bytes). `bad`: not a whole valid record; `short_read`:
// a valid-looking header whose record runs past `end`.
ReadStatus read_record(int fd, uint64_t off, uint64_t end, Batch& into, RecordHeader& h);

// The offset of the first valid record after `from` whose seq is at least `min_seq`, or `end`
// when there is none. `scratch` receives each candidate while it is checked.
uint64_t next_valid_record(int fd, uint64_t from, uint64_t end, uint64_t min_seq, Batch& scratch);

}  // namespace hbf::buffer
