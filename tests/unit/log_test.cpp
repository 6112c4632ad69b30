#include <spdlog/sinks/ostream_sink.h>
#include <atomic>
#include <sstream>
#include <thread>

#include "helpers.h"
#include "log.h"

using namespace hbf;

TEST_CASE("repeated errors are logged once per interval with how many were held back") {
    std::ostringstream os;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
    spdlog::logger log("stage-x", sink);
    log.set_pattern("[%n] %v");
    RateLimit rl(50'000'000);  // 50 ms
    for (int i = 0; i < 532; ++i) log_limited(rl, log, spdlog::level::err, "bad event {}", i);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    log_limited(rl, log, spdlog::level::err, "bad event {}", 999);
    CHECK(os.str() == "[stage-x] bad event 0\n[stage-x] bad event 999 (repeated 531 times since the last report)\n");
}

// A reload calls setup_logging on the API thread while every other thread logs through the default
// logger. It used to replace that logger, freeing it under them: ThreadSanitizer (and ASan, as a
// use after free) report this test against the old code.
TEST_CASE("setup_logging again, as a reload does, while other threads log through the default logger") {
    setup_logging("error", "text");
    spdlog::logger* first = spdlog::default_logger_raw();
    std::atomic<bool> stop{false};
    std::atomic<long> logged{0};
    std::thread t([&] {
        while (!stop.load()) {
            spdlog::debug("below the level: formats nothing, reads the logger {}", 1);
            logged.fetch_add(1);
        }
    });
    while (logged.load() == 0) std::this_thread::yield();
    for (int i = 0; i < 200; ++i) setup_logging(i % 2 ? "error" : "critical", i % 3 ? "text" : "json");
    stop = true;
    t.join();
    CHECK(spdlog::default_logger_raw() == first);
    CHECK(spdlog::default_logger()->name() == "hbforward");
    CHECK(spdlog::default_logger()->level() == spdlog::level::err);  // the last call's level (i = 199)
    setup_logging("info", "text");
}
