#include <spdlog/sinks/ostream_sink.h>
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
