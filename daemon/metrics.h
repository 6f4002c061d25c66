// jobd's metrics in Prometheus' text exposition format (version 0.0.4), for
// `jobctl metrics` and the optional HTTP endpoint (metrics_listen:). The
// supervisor fills a MetricsSnapshot; RenderMetrics only formats it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "daemon/scheduler.h"

namespace jobd {

// Durations in seconds, in cumulative buckets.
class Histogram {
 public:
  static constexpr std::array<double, 9> kBounds = {0.01, 0.1, 0.5, 1, 5, 30, 60, 600, 3600};
  void Observe(double seconds);
  // Observations at or below each bound (cumulative), then the total.
  std::array<uint64_t, kBounds.size()> buckets() const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::array<uint64_t, kBounds.size()> in_bucket_{};  // not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

struct MetricsSnapshot {
  struct Pool {
    std::string name;
    uint32_t busy = 0, idle = 0, starting = 0;  // workers
    uint64_t queued = 0;                        // items waiting
    uint64_t worker_starts = 0, worker_crashes = 0;
    uint64_t payload_inline = 0, payload_shared = 0;  // bytes
    Histogram job_seconds;                            // of the jobs that finished
  };
  std::vector<Pool> pools;
  std::map<std::pair<std::string, std::string>, ItemCounts> items;  // (pool, function)
  uint64_t jobs_running = 0;
  uint64_t nodes = 0, nodes_lost = 0;
  double uptime_seconds = 0;
  uint64_t resident_bytes = 0;
};

std::string RenderMetrics(const MetricsSnapshot& snapshot);

// This process' resident memory, in bytes (0 if unknown).
uint64_t ResidentBytes();

}  // namespace jobd
