#include "daemon/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>

namespace jobd {

ServiceNotifier::ServiceNotifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void ServiceNotifier::Send(const std::string& state) { sd_notify(0, state.c_str()); }

void ServiceNotifier::Ready(const std::string& status) {
  status_ = status;
  Send("READY=1\nSTATUS=" + status);
}

void ServiceNotifier::Status(const std::string& status) {
  if (status == status_) return;
  status_ = status;
  Send("STATUS=" + status);
}

void ServiceNotifier::Reloading() {
  // The time lets systemd (Type=notify-reload) tell this reload from an earlier one.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1'000'000 +
                        static_cast<uint64_t>(now.tv_nsec) / 1000;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceNotifier::Stopping(const std::string& status) {
  status_ = status;
  Send("STOPPING=1\nSTATUS=" + status);
}

void ServiceNotifier::Watchdog(Clock::time_point now) {
  if (watchdog_.count() == 0 || now - petted_ < watchdog_ / 2) return;
  petted_ = now;
  Send("WATCHDOG=1");
}

std::optional<ServiceNotifier::Clock::time_point> ServiceNotifier::NextWatchdog() const {
  if (watchdog_.count() == 0) return std::nullopt;
  return petted_ + watchdog_ / 2;
}

}  // namespace jobd
