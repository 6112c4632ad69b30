// A fixed-capacity hash table keyed by 64-bit hashes, least recently used entry evicted when full.
//
// Everything is allocated up front (capacity entries, a power-of-two index of twice that), so the
// hot path never allocates. Open addressing with linear probing; erasing shifts back, no tombstones.
// Keys are 64-bit hashes of the identity: two identities sharing a hash count as one (odds ~n²/2⁶⁵).
// Each index slot holds its entry's number and the key's low 32 bits: a probe or a backward shift
// reads the entries (a cache miss each, once the table outgrows the cache) only on a likely match.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace hbf::filters {

template <typename V>
class LruTable {
public:
    explicit LruTable(size_t capacity) : entries_(capacity ? capacity : 1) {
        size_t n = 2;
        while (n < entries_.size() * 2) n <<= 1;  // at most 2^32 slots: the tag holds a home slot
        index_.assign(n, Slot{});
        mask_ = n - 1;
    }

    size_t size() const { return size_; }
    size_t capacity() const { return entries_.size(); }

    // The entry for `key`, made most recent; nullptr when absent.
    V* find(uint64_t key) {
        uint32_t tag = uint32_t(key);
        for (size_t i = key & mask_;; i = (i + 1) & mask_) {
            Slot s = index_[i];
            if (s.entry == kNone) return nullptr;
            if (s.tag == tag && entries_[s.entry].key == key) {
                to_front(s.entry);
                return &entries_[s.entry].val;
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
            erase_index(e);
            if (evicted) *evicted = true;
        }
        entries_[e].key = key;
        entries_[e].val = V{};
        size_t i = key & mask_;
        while (index_[i].entry != kNone) i = (i + 1) & mask_;
        index_[i] = {e, uint32_t(key)};
        link_front(e);
        return entries_[e].val;
    }

private:
    static constexpr uint32_t kNone = UINT32_MAX;
    struct Slot {
        uint32_t entry = kNone;
        uint32_t tag = 0;  // the key's low 32 bits: its home slot, and a filter before reading the entry
    };
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
    void erase_index(uint32_t e) {
        size_t i = entries_[e].key & mask_;
        while (index_[i].entry != e) i = (i + 1) & mask_;
        // Backward-shift deletion: move later members of the probe run into the hole.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; index_[j].entry != kNone; j = (j + 1) & mask_) {
            size_t home = index_[j].tag & mask_;
            bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
            if (movable) {
                index_[hole] = index_[j];
                hole = j;
            }
        }
        index_[hole] = Slot{};
    }

    std::vector<Entry> entries_;
    std::vector<Slot> index_;
    size_t mask_ = 0, size_ = 0;
    uint32_t head_ = kNone, tail_ = kNone;
};

}  // namespace hbf::filters
