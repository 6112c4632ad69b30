// Logging: spdlog to stderr, one named logger per stage, and a rate limit for repeated errors.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace hbf {

// format: "text" or "json". Creates the default logger; stage loggers share its sink.
void setup_logging(const std::string& level, const std::string& format);
std::shared_ptr<spdlog::logger> make_logger(const std::string& name);
bool valid_log_level(const std::string& level);

// Lets one line through per interval and counts the rest: "... (repeated 532 times)".
class RateLimit {
public:
    explicit RateLimit(int64_t interval_ns = 5'000'000'000) : interval_ns_(interval_ns) {}
    // Returns true when the caller should log now; `suppressed` receives how many were held back.
    bool allow(uint64_t& suppressed);

private:
    int64_t interval_ns_;
    std::atomic<int64_t> next_ns_{0};
    std::atomic<uint64_t> suppressed_{0};
};

template <typename... Args>
void log_limited(RateLimit& rl, spdlog::logger& log, spdlog::level::level_enum lvl, fmt::format_string<Args...> f,
                 Args&&... args) {
    uint64_t n = 0;
    if (!rl.allow(n)) return;
    std::string msg = fmt::format(f, std::forward<Args>(args)...);
    if (n) log.log(lvl, "{} (repeated {} times since the last report)", msg, n);
    else log.log(lvl, "{}", msg);
}

}  // namespace hbf
