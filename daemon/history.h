// What `jobctl jobs` and `jobctl job ID` show: a record of each running job
// (made on request) and of the last finished ones (kept when they end).
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "common/trusted_dir.h"
#include "daemon/scheduler.h"
#include "jobd.pb.h"

namespace jobd {

// What a job runs, for people: its function, "exec CMD" or "stream CMD" (the
// command's first word), "python MODULE:FUNCTION" or "python (jobd.Pool)".
std::string JobLabel(const JobSpec& spec);

// How a job ended, for its record.
enum class JobEnding { kRunning, kDone, kFailed, kCancelled };

// The record of `job`; with `errors`, its failed items' first errors too.
wire::JobRecord RecordOf(const Job& job, JobEnding ending, bool errors);

// The newest finished jobs' records, newest first; kept in a file (one JSON
// record per line, appended as jobs end) so that they outlive jobd.
class JobHistory {
 public:
  explicit JobHistory(size_t capacity) : capacity_(capacity) {}
  void set_capacity(size_t capacity);
  // Reads the records `file` holds (open read-write, in append mode), then
  // appends to it. Lines it cannot read are skipped.
  void Load(UniqueFd file);
  void Add(wire::JobRecord record);
  const std::deque<wire::JobRecord>& records() const { return records_; }
  const wire::JobRecord* Find(uint64_t id) const;
  // The highest job number recorded; 0 if none.
  uint64_t last_id() const { return last_id_; }

 private:
  // Writes the records kept, oldest first, in place of what the file holds.
  void Rewrite();

  size_t capacity_;
  std::deque<wire::JobRecord> records_;
  UniqueFd file_;
  size_t lines_ = 0;  // in the file, which is rewritten at twice the capacity
  uint64_t last_id_ = 0;
};

// The command line of process `pid` (its arguments joined by spaces), or ""
// if it cannot be read.
std::string CommandLineOf(pid_t pid);

}  // namespace jobd
