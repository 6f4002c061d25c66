// Payloads of tasks that cross between hosts. Over TCP every payload travels
// inline, in its message; on each host, large ones sit in that host's shared
// memory for its workers, as a local client's do, so that they never cross a
// worker's socket. Used by a head for its remote clients' tasks and for the
// tasks it sends its nodes, and by a node for its head's tasks.
#pragma once

#include <string>

#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

// For a task whose items came over TCP, before it goes to a worker on this
// host: moves its large inline items into one new segment of this process
// and names an output segment, so that neither its items nor its results
// cross the worker's socket. Returns the input segment's name, empty if no
// item is large. On error (a full /dev/shm) the task is left as it was.
Result<std::string> ShareForWorker(wire::Task& task);

// For a task that goes to another host: every item inline, read from its
// segment where it is in shared memory.
Status InlineItems(wire::Task& task);

// For results that go to another host: the values a worker left in segment
// `output` are read into `result`, inline. A value that cannot be read, or
// that lies outside `output`, becomes its item's error.
void InlineResults(wire::TaskResult& result, const std::string& output);

}  // namespace jobd
