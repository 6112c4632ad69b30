// The file output's own rotation: when the active file passes max_size or max_age it is renamed
// to "<path>.<UTC time>" (e.g. alarms.ndjson.20261129T175400Z), a new file is opened, and a
// background thread compresses the rotated file ("<name>.gz" / "<name>.zst") and deletes the
// oldest rotated files beyond `keep`. The write path only renames; it never waits for the
// compressor. A rotated file left uncompressed by a stop is compressed after the next start.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hbf::stages::file {

struct RotatePolicy {
    uint64_t max_size = 0;                       // bytes; 0 = no size limit
    std::chrono::nanoseconds max_age{0};         // 0 = no age limit
    size_t keep = 10;                            // rotated files kept (the active one not counted)
    std::string compress = "none";               // "none", "gzip", "zstd"
    bool enabled() const { return max_size > 0 || max_age.count() > 0; }
};

// Compresses `from` into `to` (a new file, fsync'ed). Returns "" or the reason it failed.
std::string compress_file(const std::string& from, const std::string& to, const std::string& codec);

class Rotator {
public:
    using Report = std::function<void(const std::string& error)>;  // called from the worker thread
    Rotator(std::string path, RotatePolicy policy, Report on_error);
    ~Rotator();
    Rotator(const Rotator&) = delete;
    Rotator& operator=(const Rotator&) = delete;

    // Whether a file of `size` bytes, opened (or created) at `born`, is due to rotate.
    bool due(uint64_t size, std::chrono::system_clock::time_point born) const;
    // Renames the (closed or open) active file aside and hands it to the worker. Returns 0 or errno.
    int rotate();
    // Queues rotated files a previous run left uncompressed, and prunes. Starts the worker.
    void start();
    // Stops the worker after the file it is on; what is left waits for the next start().
    void stop();

    // Rotated files of this path, oldest first (compressed or not).
    std::vector<std::string> rotated() const;
    const std::string& path() const { return path_; }

private:
    void work();
    void prune();
    std::string rotated_name(std::chrono::system_clock::time_point t) const;

    std::string path_;
    RotatePolicy policy_;
    Report on_error_;
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::string> pending_;
    bool stopping_ = false;
    std::thread worker_;
    std::chrono::system_clock::time_point last_{};  // the stamp of the last rotation
};

}  // namespace hbf::stages::file
