// jobd-worker: the task loop of one worker process. It says Hello to the
// supervisor, then runs the tasks it is sent, in order, one at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace jobd {

struct WorkerOptions {
  std::string endpoint;      // the supervisor's worker endpoint
  std::string identity;      // ZeroMQ routing id the supervisor knows this worker by
  std::string secret;        // proves to the supervisor that it started this worker
  std::string running_item;  // segment holding this worker's RunningItem page
  pid_t supervisor = 0;      // the jobd that started it: the only one it takes tasks from
  uint32_t slot = 0;         // position in its pool, from 0 (for exec's {%})
  std::vector<std::string> plugins;  // the pool's plugins, loaded at start
};

// Serves the builtin functions and the pool's plugins' until told to stop;
// returns the process exit status.
int RunWorker(const WorkerOptions& options);

}  // namespace jobd
