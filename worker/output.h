// Where a worker puts the results of one task: small results inline in the
// reply, large ones written once, in place, into the task's output segment.
#pragma once

#include <string>
#include <string_view>

#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

// The results of one task, item after item. The output segment (named by the
// supervisor in the task) is created on the first large result, grows by
// doubling, and is cut to what was used by Finish(). Only its reserved ranges
// are allocated, so a full /dev/shm fails an item instead of raising SIGBUS.
class TaskOutput {
 public:
  // Large results go to segment `segment_name`; none (empty): every result
  // is inline, for a client on another host.
  explicit TaskOutput(std::string segment_name) : name_(std::move(segment_name)) {}
  ~TaskOutput();
  TaskOutput(const TaskOutput&) = delete;
  TaskOutput& operator=(const TaskOutput&) = delete;

  // For the current item: space for a result of up to `capacity` bytes, valid
  // until Commit; null (and the item failed) if it cannot be had. Called again,
  // it keeps what was written (the space may move, like realloc).
  char* Reserve(size_t capacity);
  // The item's result is the first `size` bytes of the reserved space.
  void Commit(size_t size);
  // The item fails with `message`.
  void Fail(std::string message);
  // Reserve, copy, Commit.
  void Set(std::string_view bytes);
  // The item's result is [offset, offset + length) of segment `segment`, which
  // the function's own process wrote: renamed to be this task's segment (no
  // copy) while the task has none yet, else copied. `segment` is gone after.
  Status Adopt(const std::string& segment, uint64_t offset, uint64_t length);
  // Ends the current item, adding its outcome to `result` (an error if the
  // function left no result): packed with the others while every outcome of
  // the task is an inline value, one by one from the first that is not.
  void TakeOutcome(wire::TaskResult* result);
  // Cuts the segment to the bytes used and unmaps it; call before replying.
  void Finish();

 private:
  Status Grow(size_t end);

  std::string name_;
  int fd_ = -1;
  char* base_ = nullptr;
  size_t capacity_ = 0;  // mapped bytes
  size_t used_ = 0;      // bytes of committed results
  // The current item.
  enum class State { kEmpty, kInline, kShared, kDone } state_ = State::kEmpty;
  std::string inline_;
  size_t reserved_ = 0;
  size_t committed_ = 0;  // shared bytes the current item committed
  wire::Outcome outcome_;
};

}  // namespace jobd
