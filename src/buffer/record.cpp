#include "buffer/record.h"

#include <cerrno>
#include <cstring>
#include <sys/uio.h>
#include <unistd.h>

#include "buffer/crc32c.h"

namespace hbf::buffer {

namespace {

size_t payload_text_bytes(const Batch& b) {
    if (b.dense()) return b.buf.size();
    size_t n = 0;
    for (const auto& e : b.events) n += e.len + 1;
    return n;
}

// pread until `len` bytes or EOF; returns bytes read, or -1 on error.
ssize_t pread_full(int fd, void* p, size_t len, uint64_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = ::pread(fd, static_cast<char*>(p) + got, len - got, off_t(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += size_t(r);
    }
    return ssize_t(got);
}

bool plausible(const RecordHeader& h) {
    return h.magic == kMagic && h.len <= kMaxPayload && uint64_t(h.events) * sizeof(EventRef) <= h.len;
}

}  // namespace

size_t record_bytes(const Batch& b) { return kHeaderBytes + b.events.size() * sizeof(EventRef) + payload_text_bytes(b); }

void append_record(std::string& out, const Batch& b, uint64_t seq) {
    const size_t start = out.size();
    const size_t refs = b.events.size() * sizeof(EventRef);
    const bool dense = b.dense();
    const size_t text = dense ? b.buf.size() : payload_text_bytes(b);
    RecordHeader h;
    h.len = uint32_t(refs + text);
    h.events = uint32_t(b.events.size());
    h.seq = seq;
    h.received_ns = b.received_ns;
    out.resize(start + kHeaderBytes + refs + text);
    char* p = out.data() + start;
    char* ev = p + kHeaderBytes;
    char* tx = ev + refs;
    if (dense) {
        std::memcpy(ev, b.events.data(), refs);
        std::memcpy(tx, b.buf.data(), text);
    } else {
        uint32_t pos = 0;
        for (size_t i = 0; i < b.events.size(); ++i) {
            EventRef r{pos, b.events[i].len};
            std::memcpy(ev + i * sizeof(EventRef), &r, sizeof r);
            std::memcpy(tx + pos, b.buf.data() + b.events[i].off, r.len);
            tx[pos + r.len] = '\n';
            pos += r.len + 1;
        }
    }
    std::memcpy(p, &h, kHeaderBytes);
    h.crc = crc32c(p + 8, kHeaderBytes - 8 + refs + text);
    std::memcpy(p + 4, &h.crc, 4);
}

ReadStatus read_record(int fd, uint64_t off, uint64_t end, Batch& into, RecordHeader& h) {
    into.clear();
    if (off + kHeaderBytes > end) return ReadStatus::short_read;
    if (pread_full(fd, &h, kHeaderBytes, off) != ssize_t(kHeaderBytes)) return ReadStatus::short_read;
    if (!plausible(h)) return ReadStatus::bad;
    if (off + kHeaderBytes + h.len > end) return ReadStatus::short_read;
    const size_t refs = size_t(h.events) * sizeof(EventRef);
    const size_t text = h.len - refs;
    into.events.resize(h.events);
    into.reserve_more(text);
    into.buf.resize(text);
    iovec iov[2] = {{into.events.data(), refs}, {into.buf.data(), text}};
    size_t want = refs + text, got = 0;
    while (got < want) {
        // Advance the iovecs past what was read (rare: a short preadv).
        iovec v[2];
        int cnt = 0;
        size_t skip = got;
        for (auto& x : iov) {
            if (skip >= x.iov_len) { skip -= x.iov_len; continue; }
            v[cnt++] = {static_cast<char*>(x.iov_base) + skip, x.iov_len - skip};
            skip = 0;
        }
        ssize_t r = ::preadv(fd, v, cnt, off_t(off + kHeaderBytes + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            into.clear();
            return ReadStatus::short_read;
        }
        got += size_t(r);
    }
    uint32_t c = crc32c(reinterpret_cast<const char*>(&h) + 8, kHeaderBytes - 8);
    c = crc32c(into.events.data(), refs, c);
    c = crc32c(into.buf.data(), text, c);
    bool ok = c == h.crc;
    // A valid CRC over refs that point outside the text would be our own bug; never hand it on.
    for (size_t i = 0; ok && i < into.events.size(); ++i)
        ok = uint64_t(into.events[i].off) + into.events[i].len < text + 1;
    if (!ok) {
        into.clear();
        return ReadStatus::bad;
    }
    into.received_ns = h.received_ns;
    return ReadStatus::ok;
}

uint64_t next_valid_record(int fd, uint64_t from, uint64_t end, uint64_t min_seq, Batch& scratch) {
    constexpr size_t kChunk = 64 * 1024;
    char buf[kChunk];
    const uint32_t magic = kMagic;
    uint64_t pos = from;
    while (pos + kHeaderBytes <= end) {
        size_t want = size_t(std::min<uint64_t>(kChunk, end - pos));
        ssize_t n = pread_full(fd, buf, want, pos);
        if (n < 4) return end;
        // Candidates at every offset of the chunk that starts a magic (the last 3 bytes overlap the next chunk).
        size_t i = 0;
        while (i + 4 <= size_t(n)) {
            void* hit = memmem(buf + i, size_t(n) - i, &magic, 4);
            if (!hit) break;
            size_t at = size_t(static_cast<char*>(hit) - buf);
            RecordHeader h;
            if (read_record(fd, pos + at, end, scratch, h) == ReadStatus::ok && h.seq >= min_seq) {
                scratch.clear();
                return pos + at;
            }
            i = at + 1;
        }
        if (size_t(n) < want) return end;
        pos += size_t(n) > 3 ? size_t(n) - 3 : size_t(n);
    }
    scratch.clear();
    return end;
}

}  // namespace hbf::buffer
