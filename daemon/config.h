// jobd's configuration, read from YAML (the embedded default is etc/jobd.yaml).
#pragma once

#include <cstdint>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "jobd/status.h"

namespace jobd {

struct PoolConfig {
  std::string name;
  uint32_t workers = 1;  // "auto" resolves to the online cores (under Slurm, the step's CPUs)
  uint32_t retries = 2;  // crashes an item may cause before it fails alone
  uint32_t task_timeout_ms = 0;  // an item running longer has its worker killed; 0: none
  // An item that killed its worker waits this long before its retry, doubled
  // for each further crash (at most a minute).
  uint32_t retry_backoff_ms = 100;
  uint64_t memory_limit = 0;     // bytes of address space per worker (RLIMIT_AS); 0: none
  uint32_t max_tasks_per_worker = 0;  // replace a worker after this many tasks; 0: never
  // Restart intensity (OTP's rule): more than max_restarts deaths within
  // restart_window seconds make the pool degraded for a window.
  uint32_t max_restarts = 20;
  uint32_t restart_window_s = 10;
  // A worker holds more than one task only while their estimated run time
  // stays under this (tiny tasks flow in batches; a slow one never holds up
  // work another worker could do); 0: one task at a time.
  uint32_t credit_window_ms = 2;
  std::vector<std::string> plugins;   // absolute paths of plugins every worker loads
  // What jobs may run here: "function" (the pool's builtins and plugins),
  // "plugin" (a job's own --plugin), "exec" (a command per item), "stream".
  std::vector<std::string> kinds = {"function", "plugin", "exec", "stream", "python"};

  bool Accepts(const std::string& kind) const;
  // Whether workers started with `other` must be replaced to run with this.
  bool NeedsNewWorkers(const PoolConfig& other) const {
    return plugins != other.plugins || memory_limit != other.memory_limit;
  }
};

struct Config {
  std::string listen;  // ipc:// endpoint, environment variables expanded
  // Clients on other hosts: a tcp:// endpoint, and the cluster file written
  // there with the keys they need (both from the command line; "": none).
  std::string cluster_listen;
  std::string cluster_file;
  // This jobd's name (a node's among its head's; commands and Python
  // functions see it as $JOBD_NODE).
  std::string node_name;
  // As a node: the head's cluster file, and how long to wait for the file
  // and its head (from the command line; "": not a node).
  std::string join_cluster_file;
  std::chrono::seconds join_wait{0};
  LogLevel log_level = LogLevel::kInfo;
  std::string default_pool;
  // After SIGTERM or `jobctl shutdown`, running jobs have this long to finish.
  uint32_t drain_timeout_ms = 30'000;
  // jobd stops after this long without a job; 0: never.
  uint32_t idle_exit_ms = 0;
  // Workers told to stop are killed after this long.
  uint32_t stop_deadline_ms = 5'000;
  // How often /dev/shm is swept for segments whose creator has exited; 0: only at start.
  uint32_t reap_interval_ms = 60'000;
  // The log file stderr goes to (--detach --log-file, absolute): reopened on
  // SIGHUP for logrotate; "": none.
  std::string log_file;
  // Where Prometheus may GET /metrics ("HOST:PORT"); "": nowhere.
  std::string metrics_listen;
  // Finished jobs that `jobctl jobs` lists (the newest).
  uint32_t job_history = 100;
  // Where they are kept across restarts; "": beside the socket (NAME.jobs),
  // which a reboot clears.
  std::string job_history_file;
  std::vector<PoolConfig> pools;  // in file order, never empty

  const PoolConfig* FindPool(std::string_view name) const;
};

// Parses YAML text. `source` names it in errors ("FILE:LINE: ...").
Result<Config> ParseConfig(std::string_view yaml, const std::string& source);
// Reads and parses a file.
Result<Config> LoadConfigFile(const std::string& path);
// The embedded default configuration (the text of etc/jobd.yaml).
std::string_view DefaultConfigText();

}  // namespace jobd
