#include "daemon/history.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace jobd {

wire::JobRecord RecordOf(const Job& job, const std::string& label, JobEnding ending,
                         bool errors) {
  static constexpr const char* kStates[] = {"running", "done", "failed", "cancelled"};
  wire::JobRecord record;
  record.set_id(job.id);
  record.set_function(label);
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

void JobHistory::set_capacity(size_t capacity) {
  capacity_ = capacity;
  while (records_.size() > capacity_) records_.pop_back();
}

void JobHistory::Add(wire::JobRecord record) {
  if (capacity_ == 0) return;
  if (records_.size() == capacity_) records_.pop_back();
  records_.push_front(std::move(record));
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
