// A fixed-capacity hash table keyed by 64-bit hashes, least recently used entry evicted when full.
//
// Everything is allocated up front (capacity entries, a power-of-two index of twice that), so the
// hot path never allocates. Open addressing with linear probing; erasing shifts back, no tombstones.
// Keys are 64-bit hashes of the identity: two identities sharing a hash count as one (odds ~n²/2⁶⁵).
#pragma once

#include <cstdint>
#include <vector>

namespace hbf::filters {

template <typename V>
class LruTable {
public:
    explicit LruTable(size_t capacity) : entries_(capacity ? capacity : 1) {
        size_t n = 2;
        while (n < entries_.size() * 2) n <<= 1;
        index_.assign(n, kNone);
        mask_ = n - 1;
    }

    size_t size() const { return size_; }
    size_t capacity() const { return entries_.size(); }

    // The entry for `key`, made most recent; nullptr when absent.
    V* find(uint64_t key) {
        for (size_t i = key & mask_;; i = (i + 1) & mask_) {
            uint32_t e = index_[i];
            if (e == kNone) return nullptr;
            if (entries_[e].key == key) {
                to_front(e);
                return &entries_[e].val;
            }
        }
    }

    // Inserts `key` (absent) with a default value, evicting the least recent entry when full.
    V& insert(uint64_t key, bool* evicted = nullptr) {
        uint32_t e;
        if (size_ < entries_.size()) {
            e = uint32_t(size_++);
        } else {
            e = tail_;
            unlink(e);
            erase_index(entries_[e].key);
            if (evicted) *evicted = true;
        }
        entries_[e].key = key;
        entries_[e].val = V{};
        size_t i = key & mask_;
        while (index_[i] != kNone) i = (i + 1) & mask_;
        index_[i] = e;
        link_front(e);
        return entries_[e].val;
    }

private:
    static constexpr uint32_t kNone = UINT32_MAX;
    struct Entry {
        uint64_t key = 0;
        V val{};
        uint32_t prev = kNone, next = kNone;
    };

    void unlink(uint32_t e) {
        Entry& x = entries_[e];
        if (x.prev != kNone) entries_[x.prev].next = x.next;
        else head_ = x.next;
        if (x.next != kNone) entries_[x.next].prev = x.prev;
        else tail_ = x.prev;
        x.prev = x.next = kNone;
    }
    void link_front(uint32_t e) {
        Entry& x = entries_[e];
        x.prev = kNone;
        x.next = head_;
        if (head_ != kNone) entries_[head_].prev = e;
        head_ = e;
        if (tail_ == kNone) tail_ = e;
    }
    void to_front(uint32_t e) {
        if (head_ == e) return;
        unlink(e);
        link_front(e);
    }
    void erase_index(uint64_t key) {
        size_t i = key & mask_;
        while (entries_[index_[i]].key != key) i = (i + 1) & mask_;
        // Backward-shift deletion: move later members of the probe run into the hole.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; index_[j] != kNone; j = (j + 1) & mask_) {
            size_t home = entries_[index_[j]].key & mask_;
            bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
            if (movable) {
                index_[hole] = index_[j];
                hole = j;
            }
        }
        index_[hole] = kNone;
    }

    std::vector<Entry> entries_;
    std::vector<uint32_t> index_;
    size_t mask_ = 0, size_ = 0;
    uint32_t head_ = kNone, tail_ = kNone;
};

// Mixes a 64-bit value (splitmix64's finaliser).
inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

}  // namespace hbf::filters
