// Dropping events from a batch in place, as select, throttle and dedupe do: the kept events keep
// their text where it is and only their offsets move, so nothing is copied.
#pragma once

#include <cstddef>

#include "batch.h"
#include "metrics.h"

namespace hbf::filters {

// Keeps, in order, the events `keep(i)` says to keep (called once per event, in order; it may read
// b.event(i)). The others are counted on `dropped`. Returns false when none is left: a batch that
// had events is then settled as dropped with `why`, and the caller emits nothing.
template <typename Keep>
bool compact(Batch& b, Counter& dropped, const char* why, Keep&& keep) {
    size_t kept = 0;
    for (size_t i = 0; i < b.size(); ++i)
        if (keep(i)) b.events[kept++] = b.events[i];
    if (size_t n = b.size() - kept) dropped.add(n);
    if (kept == 0) {
        if (!b.empty()) b.mark(AckStatus::dropped, why);
        return false;
    }
    b.events.resize(kept);
    return true;
}

}  // namespace hbf::filters
