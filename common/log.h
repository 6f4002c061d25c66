// Logging to stderr: one line per event, "2026-11-25T15:52:06.123Z jobd[pid] level: text".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>

namespace jobd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn" or "error".
bool ParseLogLevel(std::string_view text, LogLevel* level);
void SetLogLevel(LogLevel level);
void SetLogName(std::string name);  // the program name in each line
bool LogEnabled(LogLevel level);
void WriteLog(LogLevel level, const std::string& text);

// Collects one line and writes it when destroyed.
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine() { WriteLog(level_, out_.str()); }
  template <typename T>
  LogLine& operator<<(const T& value) {
    out_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream out_;
};

// Warnings about what a flood may repeat (refused peers): at most one line a
// second, the next one counting those held back; the text is built only for
// a line that is written (it may cost a lookup).
class RefusalLog {
 public:
  void Warn(const std::function<std::string()>& text);

 private:
  std::chrono::steady_clock::time_point next_{};
  uint64_t unlogged_ = 0;
};

}  // namespace jobd

#define JOBD_LOG(level)                                       \
  if (!::jobd::LogEnabled(::jobd::LogLevel::level)) {         \
  } else                                                      \
    ::jobd::LogLine(::jobd::LogLevel::level)
