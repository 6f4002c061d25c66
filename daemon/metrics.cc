#include "daemon/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <functional>

namespace jobd {
namespace {

// A label value, escaped as the format wants (backslash, quote, newline).
std::string Quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out + "\"";
}

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

class Writer {
 public:
  // Starts metric family `name`.
  void Family(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
              double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        out_ += (i ? "," : "") + labels[i].first + "=" + Quoted(labels[i].second);
      }
      out_ += "}";
    }
    out_ += " " + Number(value) + "\n";
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

void Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++in_bucket_[i];
      break;
    }
  }
  ++count_;
  sum_ += seconds;
}

std::array<uint64_t, Histogram::kBounds.size()> Histogram::buckets() const {
  std::array<uint64_t, kBounds.size()> cumulative{};
  uint64_t total = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) cumulative[i] = total += in_bucket_[i];
  return cumulative;
}

std::string RenderMetrics(const MetricsSnapshot& snapshot) {
  Writer out;
  using Items = std::map<std::pair<std::string, std::string>, ItemCounts>;
  auto item_family = [&](const std::string& name, const char* help,
                         const std::function<uint64_t(const ItemCounts&)>& field) {
    out.Family(name, "counter", help);
    for (const Items::value_type& entry : snapshot.items) {
      out.Sample(name, {{"pool", entry.first.first}, {"function", entry.first.second}},
                 static_cast<double>(field(entry.second)));
    }
  };
  item_family("jobd_items_succeeded_total", "Items whose function returned a value.",
              [](const ItemCounts& c) { return c.succeeded; });
  item_family("jobd_items_failed_total", "Items that failed (an error, or too many crashes).",
              [](const ItemCounts& c) { return c.failed; });
  item_family("jobd_items_retried_total", "Items run again after their worker or node was lost.",
              [](const ItemCounts& c) { return c.retried; });
  item_family("jobd_tasks_total", "Tasks (runs of items) that workers returned.",
              [](const ItemCounts& c) { return c.tasks; });
  item_family("jobd_tasks_retried_total",
              "Tasks put back in the queue because their worker or node was lost.",
              [](const ItemCounts& c) { return c.tasks_retried; });

  auto pool_family = [&](const std::string& name, const char* type, const char* help,
                         const std::function<double(const MetricsSnapshot::Pool&)>& field) {
    out.Family(name, type, help);
    for (const MetricsSnapshot::Pool& pool : snapshot.pools) {
      out.Sample(name, {{"pool", pool.name}}, field(pool));
    }
  };
  pool_family("jobd_worker_starts_total", "counter", "Worker processes started.",
              [](const auto& p) { return static_cast<double>(p.worker_starts); });
  pool_family("jobd_worker_crashes_total", "counter", "Workers that died unexpectedly.",
              [](const auto& p) { return static_cast<double>(p.worker_crashes); });
  pool_family("jobd_queued_items", "gauge", "Items waiting for a worker.",
              [](const auto& p) { return static_cast<double>(p.queued); });
  out.Family("jobd_workers", "gauge", "Workers by state.");
  for (const MetricsSnapshot::Pool& pool : snapshot.pools) {
    out.Sample("jobd_workers", {{"pool", pool.name}, {"state", "busy"}}, pool.busy);
    out.Sample("jobd_workers", {{"pool", pool.name}, {"state", "idle"}}, pool.idle);
    out.Sample("jobd_workers", {{"pool", pool.name}, {"state", "starting"}}, pool.starting);
  }
  out.Family("jobd_payload_bytes_total", "counter",
             "Item and result bytes between jobd and its workers, by the way they went.");
  for (const MetricsSnapshot::Pool& pool : snapshot.pools) {
    out.Sample("jobd_payload_bytes_total", {{"pool", pool.name}, {"way", "inline"}},
               static_cast<double>(pool.payload_inline));
    out.Sample("jobd_payload_bytes_total", {{"pool", pool.name}, {"way", "shared_memory"}},
               static_cast<double>(pool.payload_shared));
  }
  out.Family("jobd_job_duration_seconds", "histogram", "Time from submission to the last result.");
  for (const MetricsSnapshot::Pool& pool : snapshot.pools) {
    const auto buckets = pool.job_seconds.buckets();
    for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
      out.Sample("jobd_job_duration_seconds_bucket",
                 {{"pool", pool.name}, {"le", Number(Histogram::kBounds[i])}},
                 static_cast<double>(buckets[i]));
    }
    out.Sample("jobd_job_duration_seconds_bucket", {{"pool", pool.name}, {"le", "+Inf"}},
               static_cast<double>(pool.job_seconds.count()));
    out.Sample("jobd_job_duration_seconds_sum", {{"pool", pool.name}}, pool.job_seconds.sum());
    out.Sample("jobd_job_duration_seconds_count", {{"pool", pool.name}},
               static_cast<double>(pool.job_seconds.count()));
  }
  out.Family("jobd_jobs_running", "gauge", "Jobs running now.");
  out.Sample("jobd_jobs_running", {}, static_cast<double>(snapshot.jobs_running));
  out.Family("jobd_nodes", "gauge", "Nodes that lend this head their workers.");
  out.Sample("jobd_nodes", {}, static_cast<double>(snapshot.nodes));
  out.Family("jobd_nodes_lost_total", "counter", "Nodes declared lost.");
  out.Sample("jobd_nodes_lost_total", {}, static_cast<double>(snapshot.nodes_lost));
  out.Family("jobd_uptime_seconds", "gauge", "Time since jobd started.");
  out.Sample("jobd_uptime_seconds", {}, snapshot.uptime_seconds);
  out.Family("jobd_resident_memory_bytes", "gauge", "jobd's own resident memory (not its workers').");
  out.Sample("jobd_resident_memory_bytes", {}, static_cast<double>(snapshot.resident_bytes));
  return out.Take();
}

uint64_t ResidentBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "re");
  if (statm == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int read = std::fscanf(statm, "%llu %llu", &size, &resident);
  std::fclose(statm);
  return read == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace jobd
