#include "common/log.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

namespace jobd {
namespace {
LogLevel g_level = LogLevel::kInfo;
std::string g_name = "jobd";

// Whether stderr is the journal: systemd names the stream it gave as
// $JOURNAL_STREAM ("device:inode"); stderr may since have become a log file.
bool StderrIsJournal() {
  static const char* const stream = std::getenv("JOURNAL_STREAM");
  struct stat st{};
  if (stream == nullptr || fstat(STDERR_FILENO, &st) != 0) return false;
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) == stream;
}
}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  static constexpr std::pair<std::string_view, LogLevel> kLevels[] = {
      {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},   {"error", LogLevel::kError}};
  for (const auto& [name, value] : kLevels) {
    if (text == name) {
      *level = value;
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level = level; }
void SetLogName(std::string name) { g_name = std::move(name); }
bool LogEnabled(LogLevel level) { return level >= g_level; }

void WriteLog(LogLevel level, const std::string& text) {
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  timeval now{};
  gettimeofday(&now, nullptr);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  // The journal takes a line's priority from a "<N>" prefix (sd-daemon(3)).
  static constexpr const char* kPriorities[] = {"<7>", "<6>", "<4>", "<3>"};
  // One fprintf per line so that lines from several processes do not interleave.
  std::fprintf(stderr, "%s%s.%03ldZ %s[%d] %s: %s\n",
               StderrIsJournal() ? kPriorities[static_cast<int>(level)] : "", stamp,
               static_cast<long>(now.tv_usec / 1000), g_name.c_str(), static_cast<int>(getpid()),
               kNames[static_cast<int>(level)], text.c_str());
}

void RefusalLog::Warn(const std::function<std::string()>& text) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_) {
    ++unlogged_;
    return;
  }
  next_ = now + std::chrono::seconds(1);
  const uint64_t unlogged = std::exchange(unlogged_, 0);
  WriteLog(LogLevel::kWarn, text() + (unlogged > 0 ? " (and " + std::to_string(unlogged) +
                                                         " more refused since the last such line)"
                                                   : std::string()));
}

}  // namespace jobd
