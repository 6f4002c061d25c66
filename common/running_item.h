// A page of shared memory per worker saying which item it is running now.
// The worker is its only writer (two relaxed atomic stores per item); the
// supervisor reads it after the worker died, to charge the crash to the item
// that caused it and to no other. A garbage page charges nothing: the
// supervisor checks the values against the tasks it handed that worker.
#pragma once

#include <atomic>
#include <cstdint>

namespace jobd {

struct RunningItem {
  std::atomic<uint64_t> task{0};  // 0: between tasks
  std::atomic<uint32_t> item{0};  // index within the task
  // Process groups of the worker's children (0: none): the command running
  // for the item, and the job's stream coprocess. The supervisor kills them
  // when the worker dies or the job is cancelled, so none outlives its use.
  std::atomic<int32_t> command{0};
  std::atomic<int32_t> coprocess{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

}  // namespace jobd
