#include "notify.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <fmt/format.h>
#include <systemd/sd-daemon.h>

namespace hbf::notify {

namespace {
bool enabled() {
    static const bool on = std::getenv("NOTIFY_SOCKET") != nullptr;
    return on;
}

uint64_t monotonic_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}
}  // namespace

void ready(const std::string& status) {
    if (!enabled()) return;
    sd_notify(0, fmt::format("READY=1\nSTATUS={}", status).c_str());
}

void reloading() {
    if (!enabled()) return;
    // MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) tell this reload from an older one.
    sd_notify(0, fmt::format("RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC={}", monotonic_usec()).c_str());
}

void stopping() {
    if (!enabled()) return;
    sd_notify(0, "STOPPING=1\nSTATUS=draining queues and flushing outputs");
}

void watchdog_tick() {
    if (!enabled()) return;
    static uint64_t interval_us = [] {
        uint64_t us = 0;
        return sd_watchdog_enabled(0, &us) > 0 ? us : 0;
    }();
    if (!interval_us) return;
    static uint64_t next = 0;
    uint64_t now = monotonic_usec();
    if (now < next) return;
    next = now + interval_us / 2;
    sd_notify(0, "WATCHDOG=1");
}

}  // namespace hbf::notify
