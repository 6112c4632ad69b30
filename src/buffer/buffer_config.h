// `buffer = { ... }` on an output: which queue feeds it (memory, the default, or a disk buffer).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "buffer/disk_buffer.h"
#include "options.h"

namespace hbf::buffer {

struct BufferConfig {
    bool disk = false;
    uint64_t max_size = 0;
    WhenFull when_full = WhenFull::block;
    SyncMode sync = SyncMode::batch;
    std::chrono::nanoseconds sync_interval{0};
};

// Reads `buffer` from an output's table (absent = memory), appending problems with their
// locations; `what` is "outputs.NAME".
BufferConfig load_buffer_config(const toml::table& stage, const std::string& what, const std::string& file,
                                std::vector<Diagnostic>& diags);

}  // namespace hbf::buffer
