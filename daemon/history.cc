#include "daemon/history.h"

#include <fcntl.h>
#include <unistd.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>

namespace jobd {

std::string JobLabel(const JobSpec& spec) {
  if (spec.exec) {
    return (spec.exec->mode() == wire::Exec::PER_ITEM ? "exec " : "stream ") + spec.exec->argv(0);
  }
  if (spec.python) {
    return "python " + (spec.python->pickled() ? std::string("(jobd.Pool)") : spec.python->function());
  }
  return spec.function;
}

wire::JobRecord RecordOf(const Job& job, JobEnding ending, bool errors) {
  static constexpr const char* kStates[] = {"running", "done", "failed", "cancelled"};
  wire::JobRecord record;
  record.set_id(job.id);
  record.set_function(JobLabel(job.spec));
  record.set_pool(job.spec.pool);
  record.set_uid(job.spec.client_uid);
  record.set_pid(static_cast<uint32_t>(job.spec.client_pid));
  record.set_command(job.spec.client_command);
  record.set_received(job.received);
  record.set_succeeded(job.succeeded);
  record.set_failed(job.failed);
  record.set_retried(job.retried);
  record.set_started(job.started_unix);
  record.set_seconds(std::chrono::duration<double>(Clock::now() - job.started).count());
  record.set_state(kStates[static_cast<int>(ending)]);
  record.set_error(job.error);
  if (errors) {
    for (const auto& [index, error] : job.first_errors) {
      wire::JobRecord::ItemError* out = record.add_errors();
      out->set_index(index);
      out->set_error(error);
    }
  }
  return record;
}

namespace {
std::string JsonLine(const wire::JobRecord& record) {
  std::string line;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(record, &line, options);
  return line + "\n";
}

void WriteAll(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return;  // (a full disk: the history in memory goes on)
    done += static_cast<size_t>(n);
  }
}
}  // namespace

void JobHistory::set_capacity(size_t capacity) {
  capacity_ = capacity;
  while (records_.size() > capacity_) records_.pop_back();
}

void JobHistory::Load(UniqueFd file) {
  file_ = std::move(file);
  std::string text;
  char buffer[65536];
  for (ssize_t n; (n = pread(file_.get(), buffer, sizeof buffer, static_cast<off_t>(text.size()))) > 0;) {
    text.append(buffer, static_cast<size_t>(n));
  }
  std::deque<wire::JobRecord> read;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    wire::JobRecord record;
    if (google::protobuf::util::JsonStringToMessage(text.substr(start, end - start), &record).ok()) {
      last_id_ = std::max(last_id_, record.id());
      read.push_front(std::move(record));
      if (read.size() > capacity_) read.pop_back();
    }
    ++lines_;
    start = end + 1;
  }
  records_ = std::move(read);
}

void JobHistory::Add(wire::JobRecord record) {
  last_id_ = std::max(last_id_, record.id());
  if (capacity_ == 0) return;
  if (records_.size() == capacity_) records_.pop_back();
  records_.push_front(std::move(record));
  if (file_.get() < 0) return;
  if (++lines_ > 2 * capacity_) {
    Rewrite();
  } else {
    WriteAll(file_.get(), JsonLine(records_.front()));
  }
}

void JobHistory::Rewrite() {
  std::string text;
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) text += JsonLine(*it);
  if (ftruncate(file_.get(), 0) != 0) return;
  WriteAll(file_.get(), text);  // (O_APPEND: at the new end, 0)
  lines_ = records_.size();
}

const wire::JobRecord* JobHistory::Find(uint64_t id) const {
  auto found = std::find_if(records_.begin(), records_.end(),
                            [&](const wire::JobRecord& record) { return record.id() == id; });
  return found == records_.end() ? nullptr : &*found;
}

std::string CommandLineOf(pid_t pid) {
  const int fd = open(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  if (n <= 0) return "";
  std::string line(buffer, static_cast<size_t>(n));
  while (!line.empty() && line.back() == '\0') line.pop_back();
  std::replace(line.begin(), line.end(), '\0', ' ');
  return line;
}

}  // namespace jobd
