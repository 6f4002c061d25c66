// What systemd hears from jobd under Type=notify (sd_notify(3)): READY=1 once
// it serves, STATUS= with what it does, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 when it drains, and WATCHDOG=1 from the loop when the
// unit sets WatchdogSec=. Without $NOTIFY_SOCKET every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace jobd {

class ServiceNotifier {
 public:
  using Clock = std::chrono::steady_clock;

  // Reads the watchdog's interval from the environment systemd set.
  ServiceNotifier();

  void Ready(const std::string& status);
  // Sent only when it differs from the last one.
  void Status(const std::string& status);
  void Reloading();
  void Stopping(const std::string& status);
  // Pets the watchdog when half its interval has passed since the last time.
  void Watchdog(Clock::time_point now);
  // When the loop must wake to pet it next; none without a watchdog.
  std::optional<Clock::time_point> NextWatchdog() const;

 private:
  void Send(const std::string& state);

  std::chrono::microseconds watchdog_{0};
  Clock::time_point petted_{};
  std::string status_;
};

}  // namespace jobd
