#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <string_view>
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

namespace {
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};

LogLevel LevelOf(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LogLevel::kDebug;
    case spdlog::level::info: return LogLevel::kInfo;
    case spdlog::level::warn: return LogLevel::kWarn;
    default: return LogLevel::kError;
  }
}

// %Q: the journal's "<N>" priority prefix (sd-daemon(3)), when stderr is the journal.
class JournalPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& out) override {
    static constexpr std::string_view kPriorities[] = {"<7>", "<6>", "<4>", "<3>"};
    if (!StderrIsJournal()) return;
    const std::string_view priority = kPriorities[static_cast<int>(LevelOf(message.level))];
    out.append(priority.data(), priority.data() + priority.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriority>();
  }
};

// %J: jobd's names for the levels (debug, info, warn, error); %N: the program.
class LevelName : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& out) override {
    const std::string_view name = kNames[static_cast<int>(LevelOf(message.level))];
    out.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelName>();
  }
};
class ProgramName : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& out) override {
    out.append(g_name.data(), g_name.data() + g_name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ProgramName>();
  }
};

// One line per event on stderr (the terminal, the --log-file, or the
// journal), written at once: lines of several processes never interleave.
spdlog::logger& Logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto made = std::make_shared<spdlog::logger>(
        "jobd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JournalPriority>('Q').add_flag<ProgramName>('N').add_flag<LevelName>('J');
    formatter->set_pattern("%Q%Y-%m-%dT%H:%M:%S.%eZ %N[%P] %J: %v");
    made->set_formatter(std::move(formatter));
    made->set_level(spdlog::level::trace);  // LogEnabled filters first
    made->flush_on(spdlog::level::trace);
    return made;
  }();
  return *logger;
}
}  // namespace

void WriteLog(LogLevel level, const std::string& text) {
  static constexpr spdlog::level::level_enum kLevels[] = {
      spdlog::level::debug, spdlog::level::info, spdlog::level::warn, spdlog::level::err};
  Logger().log(kLevels[static_cast<int>(level)], "{}", text);
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
