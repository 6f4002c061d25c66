// What `jobctl jobs` and `jobctl job ID` show: a record of each running job
// (made on request) and of the last finished ones (kept when they end).
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "daemon/scheduler.h"
#include "jobd.pb.h"

namespace jobd {

// How a job ended, for its record.
enum class JobEnding { kRunning, kDone, kFailed, kCancelled };

// The record of `job`; with `errors`, its failed items' first errors too.
wire::JobRecord RecordOf(const Job& job, const std::string& label, JobEnding ending,
                         bool errors);

// The newest finished jobs' records, newest first.
class JobHistory {
 public:
  explicit JobHistory(size_t capacity) : capacity_(capacity) {}
  void set_capacity(size_t capacity);
  void Add(wire::JobRecord record);
  const std::deque<wire::JobRecord>& records() const { return records_; }
  const wire::JobRecord* Find(uint64_t id) const;

 private:
  size_t capacity_;
  std::deque<wire::JobRecord> records_;
};

// The command line of process `pid` (its arguments joined by spaces), or ""
// if it cannot be read.
std::string CommandLineOf(pid_t pid);

}  // namespace jobd
