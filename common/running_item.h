// A page of shared memory per worker saying which item it is running now.
// The worker is its only writer (two relaxed atomic stores per item); the
// supervisor reads it after the worker died, to charge the crash to the item
// that caused it and to no other. A garbage page charges nothing: the
// supervisor checks the values against the tasks it handed that worker.
#pragma once

#include <time.h>

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
  // CLOCK_MONOTONIC nanoseconds when the current item started: the
  // supervisor stops an item that runs past its timeout.
  std::atomic<uint64_t> item_started_ns{0};
  std::atomic<uint64_t> coprocess_job{0};  // the job the coprocess serves
  // Written by the supervisor, the one field it writes: a job it cancelled,
  // whose remaining items the worker then skips.
  std::atomic<uint64_t> cancelled_job{0};
};

// CLOCK_MONOTONIC now, in nanoseconds (the same clock in every process).
inline uint64_t MonotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}
static_assert(std::atomic<uint64_t>::is_always_lock_free);

}  // namespace jobd
