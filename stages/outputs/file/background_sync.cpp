#include "background_sync.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include "thread_name.h"

namespace hbf::stages::file {

int fsync_errno(int fd) {
    if (::fsync(fd) == 0) return 0;
    return errno == EINVAL || errno == EROFS ? 0 : errno;
}

BackgroundSync::BackgroundSync(const std::string& stage, Counter& done) : done_(done), thread_([this, stage] { run(stage); }) {}

int BackgroundSync::finish() {
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return take_error();
}

int BackgroundSync::wait() {
    {
        std::unique_lock lk(m_);
        idle_.wait(lk, [this] { return !busy_; });
    }
    return take_error();
}

bool BackgroundSync::start(int fd) {
    std::lock_guard lk(m_);
    if (busy_ || stop_) return false;
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        error_.store(errno);
        return true;  // reported as the fsync's failure: the data is not known to be on disk
    }
    fd_ = dup;
    busy_ = true;
    cv_.notify_one();
    return true;
}

void BackgroundSync::run(const std::string& stage) {
    name_this_thread(stage, "/sync");
    std::unique_lock lk(m_);
    for (;;) {
        cv_.wait(lk, [this] { return fd_ >= 0 || stop_; });
        if (fd_ < 0) return;  // stopping, nothing left to sync
        const int fd = fd_;
        fd_ = -1;
        lk.unlock();
        if (int err = fsync_errno(fd)) error_.store(err);
        else done_.add();
        ::close(fd);
        lk.lock();
        busy_ = false;
        idle_.notify_all();
    }
}

}  // namespace hbf::stages::file
