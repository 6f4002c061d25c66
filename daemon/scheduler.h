// Jobs, their queued items, the tasks in flight, and the policy that cuts
// items into tasks: fair across the jobs of a pool, chunk size adapted to the
// measured cost of an item, retries charged to the item that killed a worker.
//
// Pure bookkeeping: no sockets, no processes, no clock of its own (callers
// pass the time), so it is tested directly. Owned by the supervisor loop;
// never shared between threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "jobd/status.h"
#include "jobd.pb.h"

namespace jobd {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct JobSpec {
  std::string client;  // the submitter's connection (Supervisor's client key)
  pid_t client_pid = 0;  // 0 for a client on another host
  uid_t client_uid = 0;
  std::string client_command;  // its command line, when known (for jobctl jobs)
  bool remote = false;   // its client is on another host: results travel inline
  std::string function;
  // What the measured cost of an item is kept under: the function, or what
  // tells one command or Python function from another (CostKey).
  std::string cost_key;
  std::string pool;
  uint32_t chunksize = 0;  // 0: adaptive
  uint32_t max_workers = 0;  // at most this many workers at once; 0: no limit
  uint32_t retries = 2;    // crashes one item may cause before it fails
  uint32_t timeout_ms = 0;  // an item running longer is stopped; 0: never
  uint32_t retry_backoff_ms = 0;  // first wait before an item that crashed runs again
  std::shared_ptr<const wire::Exec> exec;  // set for a command per item
  std::shared_ptr<const wire::Python> python;  // set for a Python function
  std::string plugin;                      // the job's own plugin, if any
  bool starmap = false;                    // items are packed argument tuples
  bool read_files = false;                 // items name files the worker reads
  // The function for metrics: the function's name, or exec, stream, python
  // (a command or a Python function would make a label per job).
  std::string metric_function;
};

// Items and tasks of one (pool, function), since jobd started.
struct ItemCounts {
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;  // run again after a worker or node was lost
  uint64_t tasks = 0;    // tasks that returned
  uint64_t tasks_retried = 0;  // tasks put back because their worker or node was lost
};

// An item waiting for a worker. Small items that came packed share their
// message's bytes (a task copies them into its own Packed); others keep their
// Payload, which changes hands between messages and queues by pointer
// (protobuf's ExtractSubrange / AddAllocated).
struct QueuedItem {
  uint64_t index;
  std::shared_ptr<const std::string> block;  // set: the item is block[offset, offset + length)
  uint32_t offset = 0;
  uint32_t length = 0;
  std::unique_ptr<wire::Payload> payload;  // otherwise

  bool packed() const { return block != nullptr; }
};

// An item that crashed its worker, waiting out its backoff before its retry.
struct DelayedItem {
  Clock::time_point due;
  QueuedItem item;
};

struct Job {
  uint64_t id = 0;
  JobSpec spec;
  Clock::time_point started;
  double started_unix = 0;       // the same, as Unix time (for jobctl jobs)
  std::string error;             // why it ended early, if it did
  // The first failed items' errors (index, error), for jobctl job ID.
  std::vector<std::pair<uint64_t, std::string>> first_errors;
  std::deque<QueuedItem> queue;  // items waiting for a worker, by index
  std::vector<DelayedItem> delayed;  // items waiting for their retry
  uint64_t received = 0;         // items received so far (next expected index)
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;  // items re-queued after a worker died
  bool input_complete = false;
  bool ended = false;  // JobEnd was sent; waiting for Release
  std::vector<std::string> segments;             // its own; removed when the job is erased
  std::unordered_map<uint64_t, uint32_t> crashes;  // item index -> crashes charged
  // Worker key -> tasks it holds; a task on a node has a key of its own
  // (Task::holder), as it runs on a worker of its own there.
  std::unordered_map<uint64_t, uint32_t> workers;

  // Whether a task of this job may go to the worker with `key` (a new one,
  // for a node).
  bool CanUse(uint64_t key) const {
    return spec.max_workers == 0 || workers.count(key) > 0 || workers.size() < spec.max_workers;
  }

  // Whether a message on connection `client` from process `pid` is its
  // client's: a routing id alone may be reused by another peer.
  bool From(const std::string& client, pid_t pid) const {
    return spec.client == client && spec.client_pid == pid;
  }

  uint64_t done() const { return succeeded + failed; }
  bool finished() const { return input_complete && done() == received; }
};

struct Task {
  uint64_t job = 0;
  uint64_t worker = 0;  // key of the worker it was handed to
  std::string pool;
  std::vector<uint64_t> indexes;         // item index of each payload in message
  std::unique_ptr<wire::Task> message;  // what the worker is sent
  uint64_t estimate_ns = 0;             // expected run time; 0 if unknown
  size_t bytes = 0;                     // inline item bytes
  bool for_node = false;                // given to a node (worker is its key)
  uint64_t holder = 0;                  // its key in Job::workers
  // For a remote client's task on a worker of this host: the segment this
  // jobd put its large items in (ShareForWorker), removed when it lands.
  std::string input_segment;
};

class Scheduler {
 public:
  // Adapted chunks aim at tasks of about this run time.
  static constexpr uint64_t kTargetTaskNs = 5'000'000;
  // A node's tasks are longer: each costs the head a message each way over
  // TCP, and the node holds the next ones ready (its prefetch) meanwhile.
  static constexpr uint64_t kTargetNodeTaskNs = 20'000'000;
  static constexpr uint32_t kMaxChunk = 4096;
  // Inline bytes per task (one item may exceed it): messages to workers stay
  // far below the size limit, whatever chunksize a client asks for.
  static constexpr size_t kMaxTaskBytes = 4 << 20;
  // Failed items whose errors a job keeps (for jobctl job ID).
  static constexpr size_t kErrorsKept = 20;
  // The longest a retry waits, however often its item crashed.
  static constexpr uint64_t kMaxBackoffMs = 60'000;

  // `segment_owner`: the pid named in output segment names (the supervisor).
  explicit Scheduler(pid_t segment_owner) : segment_owner_(segment_owner) {}

  Job& AddJob(JobSpec spec, Clock::time_point now);
  // Jobs are numbered from `next` on (after those an earlier jobd recorded).
  void NumberJobsFrom(uint64_t next) { next_job_ = std::max(next_job_, next); }
  Job* FindJob(uint64_t id);
  const std::map<uint64_t, Job>& jobs() const { return jobs_; }
  // Appends a window of items; they must continue the job's numbering. The
  // segments they announce must be the job's own: made by its client (the
  // creator pid in their names is spec.client_pid) and by no other job's; an
  // item in shared memory must lie in a segment its job announced. Anything
  // else is an error for this job alone, and nothing of another job's is
  // read or removed.
  Status AddItems(Job& job, wire::Items& items);
  // Drops the job: queued items, segments, and the results of its tasks still
  // running (they are discarded when they arrive).
  void EraseJob(uint64_t id);

  // The next task for worker `worker` (any key unique to the worker) of
  // `pool`, which has `pool_workers` workers, taken from its jobs in turn.
  // Null if no item waits that this worker may run. For a node (`for_node`),
  // the task's payloads are all inline and it has no output segment.
  const Task* NextTask(const std::string& pool, size_t pool_workers, uint64_t worker,
                       bool for_node = false);
  const Task* FindTask(uint64_t id) const;
  // A worker returned the outcomes of a task (they are moved out of `result`).
  void Complete(uint64_t task_id, wire::TaskResult& result);
  // The worker running a task died at `now`. `running_item` is the task's
  // item it was running, if known: that item is charged one crash, and fails
  // with `cause` once it has more crashes than its job's retries; otherwise it
  // waits its backoff. Everything else goes back to the front of its job's queue.
  void Requeue(uint64_t task_id, std::optional<uint32_t> running_item, const std::string& cause,
               Clock::time_point now);
  // Queues the items whose backoff is over by `now`.
  void ReleaseDelayed(Clock::time_point now);
  // When the next backoff ends, if any item waits for one.
  std::optional<Clock::time_point> NextDelayed() const;

  // Results produced since the last call, per job.
  std::map<uint64_t, wire::Results> TakeResults() { return std::exchange(results_, {}); }
  // Jobs that became finished since the last call.
  std::vector<uint64_t> TakeFinished() { return std::exchange(finished_, {}); }
  // By (pool, JobSpec::metric_function).
  const std::map<std::pair<std::string, std::string>, ItemCounts>& counts() const { return counts_; }
  // Items waiting in `pool` (queued, or waiting out a retry's backoff).
  uint64_t QueuedItems(const std::string& pool) const;
  // Measured run time of one item of `function` in `pool` on this host's
  // workers; 0 if unknown yet.
  uint64_t ItemCostNs(const std::string& pool, const std::string& function) const;
  // The same on the node with key `node`: falls back to this host's.
  uint64_t NodeItemCostNs(uint64_t node, const std::string& pool,
                          const std::string& function) const;
  // Drops what was measured on the node with key `node` (it is gone).
  void ForgetNode(uint64_t node);

 private:
  Status CheckSegments(const Job& job, const wire::Items& items) const;
  uint32_t ChunkSize(const Job& job, size_t pool_workers, uint64_t worker, bool for_node) const;
  // Moves `outcome` into the results for the client, into `results` if given.
  void Deliver(Job& job, uint64_t index, wire::Outcome* outcome, wire::Results* results = nullptr);
  // Adds an inline value to the packed results for the client.
  void DeliverValue(Job& job, uint64_t index, std::string_view value, wire::Results& results);
  // Takes the bytes of `packed` and calls `add` with a QueuedItem for each of
  // its strings, in order (their index left to `add`).
  template <typename Add>
  void QueueBlock(wire::Packed* packed, const Add& add);
  void MarkReady(const Job& job);
  ItemCounts& CountsOf(const Job& job) { return counts_[{job.spec.pool, job.spec.metric_function}]; }
  // Puts retried items at the front of the job's queue, in index order, so
  // that ordered output is not held up.
  void PutBack(Job& job, std::vector<QueuedItem> items);
  // Takes the task out of flight; returns it with its job (null if erased).
  std::pair<Task, Job*> Land(uint64_t task_id);

  pid_t segment_owner_;
  uint64_t next_job_ = 1;
  uint64_t next_task_ = 1;
  std::map<uint64_t, Job> jobs_;
  std::unordered_map<std::string, uint64_t> segment_jobs_;  // client segment -> its job
  std::unordered_map<uint64_t, Task> tasks_;  // in flight, by id
  // Per pool, the jobs with queued items, in the order they are served.
  std::map<std::string, std::deque<uint64_t>, std::less<>> ready_;
  std::map<std::pair<std::string, std::string>, double> cost_ns_;  // (pool, function)
  // Per node, as nodes differ: (node's key, function).
  std::map<std::pair<uint64_t, std::string>, double> node_cost_ns_;
  std::map<uint64_t, wire::Results> results_;
  std::map<std::pair<std::string, std::string>, ItemCounts> counts_;
  std::vector<uint64_t> finished_;
};

}  // namespace jobd
