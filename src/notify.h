// Telling systemd how the service is doing (Type=notify): READY once every stage runs,
// RELOADING/READY around a reload, STOPPING on shutdown, and the watchdog's keep-alive.
//
// Each call is a no-op when the process was not started by systemd with NOTIFY_SOCKET set, so the
// hooks cost one branch outside systemd. sd_notify is one datagram: any thread may call these,
// except watchdog_tick (the main loop's).
#pragma once

#include <string>

namespace hbf::notify {

void ready(const std::string& status);
void reloading();
void stopping();
// Sends WATCHDOG=1 when systemd asked for it (WatchdogSec=) and half its interval has passed
// since the last one; cheap to call on every turn of the main loop.
void watchdog_tick();

}  // namespace hbf::notify
