#include "cli/joblog.h"

#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <regex>

namespace jobd {
namespace {

constexpr const char* kHeader = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

double Now() {
  timeval now{};
  gettimeofday(&now, nullptr);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_usec) / 1e6;
}

// An item's text for the Command column: one line, no tabs.
std::string OneLine(std::string_view text) {
  std::string line(text.substr(0, 1000));
  for (char& c : line) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab - start));
    if (tab == std::string_view::npos) return fields;
    start = tab + 1;
  }
}

}  // namespace

std::pair<int, int> ExitOf(std::string_view error) {
  static const std::regex status("exited with status (\\d+)");
  static const std::regex signal("signal (\\d+)");
  std::cmatch found;
  const char* begin = error.data();
  const char* end = error.data() + error.size();
  if (std::regex_search(begin, end, found, status)) return {std::stoi(found[1]), 0};
  if (std::regex_search(begin, end, found, signal)) return {-1, std::stoi(found[1])};
  return {1, 0};
}

class JobLog::Source : public ItemSource, private ItemSink {
 public:
  Source(JobLog& log, ItemSource& inner) : log_(log), inner_(inner) {}
  int fd() const override { return inner_.fd(); }
  bool Buffered() const override { return inner_.Buffered(); }
  bool Files() const override { return inner_.Files(); }
  Result<bool> Read(ItemSink& sink, size_t max) override {
    sink_ = &sink;
    return inner_.Read(*this, max);
  }

 private:
  // Numbers the item; true if it goes on (noted under its index in the job).
  bool Take(std::string_view text, size_t bytes) {
    const uint64_t seq = ++seq_;
    if (log_.Skips(seq)) return false;
    log_.pending_[index_++] = {seq, Now(), bytes, OneLine(text)};
    return true;
  }
  Status Add(std::string_view bytes) override {
    return Take(bytes, bytes.size()) ? sink_->Add(bytes) : Status();
  }
  Status AddFile(const std::string& path) override {
    return Take(path, 0) ? sink_->AddFile(path) : Status();
  }
  Status AddArgs(const std::vector<std::string_view>& args) override {
    std::string joined;
    size_t bytes = 0;
    for (std::string_view arg : args) {
      (joined += joined.empty() ? "" : " ").append(arg);
      bytes += arg.size();
    }
    return Take(joined, bytes) ? sink_->AddArgs(args) : Status();
  }
  bool Full() const override { return sink_->Full(); }

  JobLog& log_;
  ItemSource& inner_;
  ItemSink* sink_ = nullptr;
  uint64_t seq_ = 0;    // input items read
  uint64_t index_ = 0;  // items passed on: the next one's index in the job
};

Result<std::unique_ptr<JobLog>> JobLog::Open(const std::string& path, Resume resume) {
  std::set<uint64_t> skip;
  if (resume != Resume::kNo) {
    if (FILE* old = std::fopen(path.c_str(), "re")) {
      char* line = nullptr;
      size_t capacity = 0;
      for (ssize_t n; (n = getline(&line, &capacity, old)) > 0;) {
        const std::vector<std::string_view> fields = Fields(std::string_view(line, n));
        if (fields.size() < 9 || fields[0] == "Seq") continue;  // the header, or a torn line
        const uint64_t seq = std::strtoull(std::string(fields[0]).c_str(), nullptr, 10);
        const bool succeeded = fields[6] == "0" && fields[7] == "0";
        if (seq > 0 && (resume == Resume::kDone || succeeded)) skip.insert(seq);
      }
      std::free(line);
      std::fclose(old);
    } else if (errno != ENOENT) {
      return Status::Error("--joblog " + path + ": " + std::strerror(errno));
    }
  }
  FILE* file = std::fopen(path.c_str(), "ae");
  if (file == nullptr) return Status::Error("--joblog " + path + ": " + std::strerror(errno));
  std::unique_ptr<JobLog> log(new JobLog(file, path));
  log->skip_ = std::move(skip);
  if (std::ftell(file) == 0) log->buffer_ = kHeader;
  return log;
}

JobLog::~JobLog() { std::fclose(file_); }

std::unique_ptr<ItemSource> JobLog::Wrap(ItemSource& source) {
  return std::make_unique<Source>(*this, source);
}

void JobLog::Log(const ItemResult& result) {
  auto found = pending_.find(result.index);
  if (found == pending_.end()) return;
  const Pending& item = found->second;
  const auto [exit, signal] = result.ok ? std::pair<int, int>{0, 0} : ExitOf(result.value);
  char times[64];
  std::snprintf(times, sizeof times, "%.3f\t%.3f", item.start, Now() - item.start);
  buffer_ += std::to_string(item.seq) + "\t:\t" + times + "\t" + std::to_string(item.bytes) +
             "\t" + std::to_string(result.ok ? result.value.size() : 0) + "\t" +
             std::to_string(exit) + "\t" + std::to_string(signal) + "\t" + item.command + "\n";
  pending_.erase(found);
}

Status JobLog::Flush() {
  if (buffer_.empty()) return {};
  const bool written = std::fwrite(buffer_.data(), 1, buffer_.size(), file_) == buffer_.size() &&
                       std::fflush(file_) == 0;
  buffer_.clear();
  if (!written) return Status::Error("--joblog " + path_ + ": " + std::strerror(errno));
  return {};
}

}  // namespace jobd
