// The jobd supervisor: one thread around one poll loop over the client
// socket, the worker socket and a signalfd. It forks and execs the workers,
// feeds them tasks from the Scheduler, forwards results to clients, replaces
// workers that die, and drains on shutdown. No locks: all state below is
// owned by the loop.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/log.h"
#include "common/payload.h"
#include "common/trusted_dir.h"
#include "jobd/status.h"
#include "daemon/config.h"
#include "daemon/head_link.h"
#include "daemon/history.h"
#include "daemon/metrics.h"
#include "daemon/metrics_http.h"
#include "daemon/nodes.h"
#include "daemon/remote.h"
#include "daemon/scheduler.h"
#include "daemon/service_notify.h"

namespace jobd {

class Supervisor {
 public:
  // Takes the endpoint's lock, starts every pool's workers, waits until they
  // are ready, then binds the client endpoint. Fails with a message for the
  // user: the endpoint is already served, a worker cannot start, ...
  // `config_path` is read again on SIGHUP; empty: the embedded default.
  // `overrides` (the command line's) apply to every configuration read.
  static Result<std::unique_ptr<Supervisor>> Start(Config config, std::string config_path,
                                                   std::string worker_binary,
                                                   std::function<void(Config&)> overrides = {});
  ~Supervisor();

  // Serves until shut down (jobctl shutdown, SIGTERM or SIGINT); returns the
  // process exit status.
  int Run();

  const std::string& endpoint() const { return config_.listen; }

 private:
  // What becomes of a worker once the tasks it holds are done.
  enum class Fate {
    kServe,    // takes more
    kReplace,  // stops and is replaced (max_tasks_per_worker, new plugins)
    kLeave,    // stops for good (its pool shrank or was removed)
  };
  struct Worker {
    uint32_t slot = 0;  // stable position in its pool, survives restarts
    uint64_t key = 0;   // unique to this incarnation
    std::string pool;
    pid_t pid = 0;
    // Routing id of this incarnation and the secret it proves itself with in
    // its Hello: random, handed over on an inherited pipe (never in argv or
    // a file), so no other process can pose as it or take its place.
    std::string identity;
    std::string secret;
    bool ready = false;    // said Hello
    std::deque<uint64_t> tasks;  // in flight, in the order the worker runs them
    uint64_t estimate_ns = 0;    // sum of the estimates of those tasks
    uint32_t unestimated = 0;    // how many of them have no estimate
    uint64_t tasks_done = 0;       // over every incarnation
    uint64_t tasks_this_life = 0;  // since this incarnation started
    Fate fate = Fate::kServe;
    bool stop_sent = false;        // told to stop: a clean exit is expected
    std::string killed_because;    // set when we killed it (a timeout)
    uint32_t restarts = 0;
    Clock::time_point started;
    std::unique_ptr<Segment> running_item;  // the worker's RunningItem page
  };
  struct PoolState {
    PoolConfig config;
    std::vector<std::unique_ptr<Worker>> workers;
    wire::FunctionList::Pool functions;  // from the Hello of its newest worker
    uint64_t functions_from = 0;         // the key of that worker
    bool removed = false;  // no longer in the config: finishes its jobs, then goes
    // After a reload that replaces the workers (new plugins or memory_limit):
    // the settings before it, kept until a worker with the new ones (a key
    // above replaced_after) says Hello; if they keep dying as they start, the
    // pool goes back to these.
    std::optional<PoolConfig> previous;
    uint64_t replaced_after = 0;
    uint32_t failed_starts = 0;
    std::deque<Clock::time_point> deaths;  // unexpected worker deaths in the window
    std::string degraded;                  // why, while degraded; empty when healthy
    Clock::time_point degraded_until;
    PayloadBytes moved;  // items to its workers and their results
    uint64_t worker_starts = 0;
    uint64_t worker_crashes = 0;  // unexpected deaths
    Histogram job_seconds;        // of its jobs that finished
  };
  struct Respawn {
    Clock::time_point at;
    Worker* worker;
  };

  Supervisor(Config config, std::string config_path, std::string worker_binary);
  Status Listen();
  Status Spawn(Worker& worker);
  Status WaitForWorkers(Clock::time_point deadline);

  void HandleWorkerMessages();
  // The requests waiting on the local socket, or the remote one.
  void HandleClientMessages(bool remote);
  void HandleSignals();
  // SIGHUP: reads the config file again and applies it, or logs why not.
  void Reload();
  // SIGHUP: a log file that logrotate moved is opened anew at its path.
  void ReopenLogFile();
  // Starts or stops workers so that `pool` has `count` serving ones.
  void Resize(PoolState& pool, uint32_t count);
  // Seals the fate of a worker that has run max_tasks_per_worker tasks, and
  // tells a worker whose fate is sealed to stop once it holds no task.
  void StopIfDone(Worker& worker);
  // Drops slots whose workers left, and removed pools that emptied.
  void Compact();
  void HandleTimers(Clock::time_point now);
  // Kills workers whose current item has run past its job's timeout.
  void EnforceTimeouts();
  void Reap(pid_t pid, int wait_status);
  // Counts an unexpected death of one of `pool`'s workers; too many in the
  // pool's window make it degraded: its jobs fail, its workers rest a window.
  void CountDeath(PoolState& pool, const std::string& how, Clock::time_point now);
  void HandleRequest(const std::string& client, const zmq::message_t& body);
  // Logs a message on the workers' socket that is refused, described by
  // `why` (rate-limited, and described only when logged: a flood of
  // impostors must flood neither the log nor the loop).
  void RefuseWorkerMessage(const std::function<std::string()>& why);
  // `sender_pid`: the client's pid as the kernel tells it; 0 if unknown.
  void Submit(const std::string& client, pid_t sender_pid, wire::Submit& submit);
  void Dispatch();
  // Whether `worker` may be sent another task; `plenty_queued`: its pool has
  // more items queued than workers (a worker may then hold one task ahead).
  bool HasCredit(const Worker& worker, const PoolConfig& pool, bool plenty_queued) const;
  void SendStop(const Worker& worker);
  void Untrack(Worker& worker, uint64_t task_id);
  void FlushResults();
  void EndJob(uint64_t job_id, const std::string& why);
  // Erases the job and kills the commands its tasks are running; its record
  // goes to the history, ended as `ending` (`why`: what ended it early).
  void CancelJob(uint64_t job_id, JobEnding ending, const std::string& why);
  void BeginShutdown(const std::string& why);
  bool Drained() const;

  // As a head (daemon/cluster.cc): the nodes that lend it their workers.
  void HandleNodeHello(const std::string& client, const wire::NodeHello& hello);
  void HandleNodeReport(const std::string& client, wire::NodeReport& report);
  size_t NodeWorkers(const std::string& pool) const;
  void DispatchToNodes();
  void SendNodeTasks(Node& node, const std::vector<const Task*>& tasks);
  void LoseNode(std::map<std::string, Node>::iterator it, const std::string& why);
  // Heartbeats to the nodes; loses those that said nothing for kNodeTimeout.
  void CheckNodes(Clock::time_point now);
  // As a node: the head's tasks, run on the local workers after local jobs'.
  std::unique_ptr<wire::Task> TakeHeadTask(const std::string& pool);
  // A worker's result or death for a head's task goes to the head; false if
  // the task is not the head's.
  bool ReportHeadTask(wire::TaskResult& result);
  bool LoseHeadTask(uint64_t task_id, std::optional<uint32_t> running, const std::string& cause);
  // Forgets a head's task that landed, and removes its segments.
  void DropHeadTask(uint64_t task_id);
  void HandleHeadMessages();
  void FlushHeadReport();
  // Stops this node once its head is gone.
  void CheckHead(Clock::time_point now);
  // As a node that drains: tells its head it takes no more, and hands back
  // the tasks it has not started.
  void LeaveHead();
  // As a node whose pools changed (a reload): tells its head its workers now,
  // and hands back the tasks of pools it no longer has.
  void GreetHead();

  // Makes the workers skip the rest of job `job` (as workers number it) and
  // stops what runs for it now; `of_job` tells which of a worker's tasks are its.
  void StopOnWorkers(uint64_t job, const std::function<bool(uint64_t task)>& of_job);
  // As a head: tells the nodes holding tasks of `job` that it ended.
  void CancelOnNodes(uint64_t job);
  // As a node: the head's job `job` ended.
  void CancelHeadJob(uint64_t job);

  void Reply(const std::string& client, const wire::Reply& reply);
  void ReplyError(const std::string& client, const std::string& message, uint64_t job = 0);
  wire::StatusReport BuildStatus() const;
  // What jobctl metrics and the metrics endpoint show.
  std::string MetricsText() const;
  // jobctl jobs (`job` 0) or jobctl job ID.
  wire::JobList ListJobs(uint64_t job) const;
  // What a reload left to do in `pool`, for status ("": nothing).
  std::string ReloadLeft(const std::string& name, const PoolState& pool) const;
  // What a shutdown waits for, for status.
  std::string DrainLeft() const;
  // What systemd shows for the service (STATUS=).
  std::string ServiceStatus() const;
  Worker* FindWorker(const std::string& identity);
  // "worker 3 of pool cpu (pid 4711)"; `pid` for one already reaped.
  static std::string Describe(const Worker& worker, pid_t pid = 0);
  std::chrono::milliseconds NextTimeout(Clock::time_point now) const;

  Config config_;
  std::string config_path_;
  std::function<void(Config&)> overrides_;
  std::string worker_binary_;
  std::string worker_endpoint_;
  Clock::time_point started_;
  TrustedDir runtime_dir_;   // holds the sockets and the lock
  std::string socket_name_;  // the client socket's name in it
  UniqueFd lock_;
  bool owns_endpoint_ = false;  // we hold the endpoint's lock
  int signal_fd_ = -1;
  zmq::context_t context_{1};
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  std::unique_ptr<RemoteListener> remote_;  // clients on other hosts, if configured
  std::unique_ptr<MetricsEndpoint> metrics_;  // GET /metrics, if configured
  std::map<std::string, Node> nodes_;      // as a head: by client key
  std::map<std::string, Node> gone_nodes_;  // nodes that left or were lost, by name
  uint32_t nodes_lost_ = 0;
  std::unique_ptr<HeadLink> head_;         // as a node
  struct HeadTask {
    uint64_t id;     // the head's
    uint32_t items;
    uint64_t job;          // as the workers know it (kHeadJobBase + the head's)
    uint32_t timeout_ms;   // per item; 0: none
    // This node's segments for its large items and its results (ShareForWorker).
    std::string input_segment, output_segment;
  };
  std::map<std::string, std::deque<std::unique_ptr<wire::Task>>, std::less<>> head_queue_;
  std::unordered_map<uint64_t, HeadTask> head_tasks_;  // given to a worker, by local id
  uint64_t next_head_task_ = uint64_t{1} << 62;        // above the scheduler's ids
  wire::NodeReport head_report_;                        // to send
  std::map<std::string, PoolState, std::less<>> pools_;
  std::map<std::string, Worker*, std::less<>> by_identity_;
  std::map<pid_t, Worker*> by_pid_;
  std::deque<std::string> departed_;  // routing ids of the last workers reaped
  RefusalLog refusals_;  // of messages on the workers' socket
  std::vector<Respawn> respawns_;
  uint64_t generation_ = 0;
  Scheduler scheduler_;
  JobHistory history_{0};
  Clock::time_point next_liveness_check_;
  Clock::time_point next_timeout_check_;
  Clock::time_point next_reap_;
  Clock::time_point next_trim_;
  Clock::time_point last_timers_ = Clock::now();  // when HandleTimers last ran
  ServiceNotifier notifier_;
  Clock::time_point last_job_seen_;  // for idle_exit
  bool shutting_down_ = false;
  Clock::time_point drain_deadline_;
  Clock::time_point kill_deadline_;
  bool workers_stopping_ = false;
};

}  // namespace jobd
