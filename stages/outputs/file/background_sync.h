// The file output's periodic fsync (every fsync_interval), on a thread of its own. An fsync of
// a file on a busy disk takes tens of milliseconds; on the output's thread it held every write
// behind it once a second (and, with the webhook's ack = "delivered", every reply). The fsyncs
// that must finish before something else goes on (before a roll-over, a rotation, a close, and
// with fsync_interval = 0 before each batch is acknowledged) stay on the output's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "metrics.h"

namespace hbf::stages::file {

// fsync(fd)'s errno, where a FIFO or a device that has nothing to sync (EINVAL, EROFS) is no failure.
int fsync_errno(int fd);

class BackgroundSync {
public:
    // Its thread is named "<stage>/sync"; each fsync that finished adds one to `done`.
    BackgroundSync(const std::string& stage, Counter& done);
    ~BackgroundSync() { finish(); }
    BackgroundSync(const BackgroundSync&) = delete;
    BackgroundSync& operator=(const BackgroundSync&) = delete;

    // Starts an fsync of fd's file, through a duplicate of fd (the caller may close fd meanwhile).
    // False when the one before is still running: the caller tries again at its next interval.
    bool start(int fd);
    // The errno of an fsync that failed since the last call, or 0. The duplicate shares the open
    // file with the caller's descriptor, so an error it reports is not reported again there.
    int take_error() { return error_.exchange(0); }
    // Waits for the fsync in progress, if any; returns take_error().
    int wait();
    // Waits for the fsync in progress and ends the thread; returns take_error().
    int finish();

private:
    void run(const std::string& stage);

    std::mutex m_;
    std::condition_variable cv_, idle_;
    int fd_ = -1;  // the duplicate to fsync, or -1
    bool busy_ = false, stop_ = false;
    std::atomic<int> error_{0};
    Counter& done_;
    std::thread thread_;  // last: started once the rest is set
};

}  // namespace hbf::stages::file
