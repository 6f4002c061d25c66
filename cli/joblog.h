// GNU parallel's job log for jobctl map (--joblog FILE), and resuming an
// interrupted run from it (--resume, --resume-failed): one tab-separated line
// per item with a result, "Seq Host Starttime JobRuntime Send Receive Exitval
// Signal Command", Seq counting input items from 1.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "jobd/client.h"

namespace jobd {

class JobLog {
 public:
  enum class Resume { kNo, kDone, kSucceeded };  // skip: nothing, logged items, succeeded ones

  // Opens `path` to append to (with the header if it is new or empty), after
  // reading which items it shows done when resuming.
  static Result<std::unique_ptr<JobLog>> Open(const std::string& path, Resume resume);
  ~JobLog();

  // Whether input item `seq` is skipped: the log shows it done.
  bool Skips(uint64_t seq) const { return skip_.count(seq) > 0; }
  size_t skipped() const { return skip_.size(); }

  // Wraps `source`: passes on the items not skipped, noting each one's input
  // number, the time it was read and its text, by the index it gets in the job.
  std::unique_ptr<ItemSource> Wrap(ItemSource& source);
  // The input number (from 1) of the job's item `index`, until it is logged.
  uint64_t SeqOf(uint64_t index) const {
    auto found = pending_.find(index);
    return found == pending_.end() ? index + 1 : found->second.seq;
  }
  // Logs the result of the job's item `index` (buffered until Flush).
  void Log(const ItemResult& result);
  // Writes what was logged; call after the results themselves are out.
  Status Flush();

 private:
  struct Pending {
    uint64_t seq;
    double start;  // Unix time
    size_t bytes;
    std::string command;
  };
  class Source;
  JobLog(FILE* file, std::string path) : file_(file), path_(std::move(path)) {}

  FILE* file_;
  std::string path_;
  std::set<uint64_t> skip_;
  std::unordered_map<uint64_t, Pending> pending_;  // by the job's item index
  std::string buffer_;
};

// Exitval and Signal for a failed item's error text ("... exited with status
// 3", "... killed by signal 9 ..."); a failure of another kind is exit 1.
std::pair<int, int> ExitOf(std::string_view error);

}  // namespace jobd
