// What the supervisor tells about itself: `jobctl status`, `jobctl jobs`,
// the metrics, and the STATUS= line systemd shows.
#include <unistd.h>

#include <algorithm>

#include "daemon/supervisor.h"

#ifndef JOBD_VERSION
#define JOBD_VERSION "0"
#endif

namespace jobd {

using std::chrono::seconds;

std::string Supervisor::MetricsText() const {
  MetricsSnapshot snapshot;
  for (const auto& [name, pool] : pools_) {
    MetricsSnapshot::Pool& out = snapshot.pools.emplace_back();
    out.name = name;
    for (const auto& worker : pool.workers) {
      if (worker->pid == 0) continue;
      ++(!worker->ready ? out.starting : worker->tasks.empty() ? out.idle : out.busy);
    }
    out.queued = scheduler_.QueuedItems(name);
    out.worker_starts = pool.worker_starts;
    out.worker_crashes = pool.worker_crashes;
    out.payload_inline = pool.moved.inline_bytes;
    out.payload_shared = pool.moved.shared_bytes;
    out.job_seconds = pool.job_seconds;
  }
  snapshot.items = scheduler_.counts();
  snapshot.jobs_running = scheduler_.jobs().size();
  snapshot.nodes = nodes_.size();
  snapshot.nodes_lost = nodes_lost_;
  snapshot.uptime_seconds = SecondsSince(started_);
  snapshot.resident_bytes = ResidentBytes();
  return RenderMetrics(snapshot);
}

wire::JobList Supervisor::ListJobs(uint64_t id) const {
  wire::JobList list;
  for (const auto& [job_id, job] : scheduler_.jobs()) {
    if (id != 0 && job_id != id) continue;
    *list.add_jobs() = RecordOf(job, job.ended ? JobEnding::kDone : JobEnding::kRunning, id != 0);
  }
  for (const wire::JobRecord& record : history_.records()) {
    if (id != 0 && record.id() != id) continue;
    wire::JobRecord* out = list.add_jobs();
    *out = record;
    if (id == 0) out->clear_errors();
  }
  return list;
}

std::string Supervisor::ReloadLeft(const std::string& name, const PoolState& pool) const {
  uint64_t jobs = 0;
  for (const auto& [id, job] : scheduler_.jobs()) jobs += job.spec.pool == name;
  if (pool.removed) {
    return "removed by a reload: it goes once its " + std::to_string(jobs) + " jobs end";
  }
  std::vector<std::string> left;
  if (pool.previous) {
    const auto old = std::count_if(pool.workers.begin(), pool.workers.end(), [&](const auto& w) {
      return w->pid != 0 && w->key <= pool.replaced_after;
    });
    left.push_back(std::to_string(old) + " workers still to replace (new plugins or memory_limit)"
                   ", each once its tasks end");
  }
  const auto leaving = std::count_if(pool.workers.begin(), pool.workers.end(), [](const auto& w) {
    return w->fate == Fate::kLeave && w->pid != 0;
  });
  if (leaving > 0) {
    left.push_back(std::to_string(leaving) + " workers leaving (the pool shrank), each once its "
                   "tasks end");
  }
  std::string text;
  for (const std::string& part : left) text += (text.empty() ? "" : "; ") + part;
  return text;
}

std::string Supervisor::DrainLeft() const {
  const auto now = Clock::now();
  if (workers_stopping_) {
    size_t alive = 0;
    for (const auto& [name, pool] : pools_) {
      for (const auto& worker : pool.workers) alive += worker->pid != 0;
    }
    return "stopping: " + std::to_string(alive) + " workers still to exit, killed in " +
           std::to_string(std::max<int64_t>(0, std::chrono::duration_cast<seconds>(
                                                   kill_deadline_ - now).count())) + " s";
  }
  uint64_t items = 0;
  for (const auto& [id, job] : scheduler_.jobs()) items += job.received - job.done();
  return "draining: " + std::to_string(scheduler_.jobs().size()) + " jobs still running (" +
         std::to_string(items) + " items without a result), ended in at most " +
         std::to_string(std::max<int64_t>(0, std::chrono::duration_cast<seconds>(
                                                 drain_deadline_ - now).count())) +
         " s (drain_timeout)";
}

std::string Supervisor::ServiceStatus() const {
  size_t workers = 0, busy = 0;
  for (const auto& [name, pool] : pools_) {
    for (const auto& worker : pool.workers) {
      if (worker->pid == 0) continue;
      ++workers;
      busy += !worker->tasks.empty();
    }
  }
  std::string status = std::to_string(scheduler_.jobs().size()) + " jobs running; " +
                       std::to_string(busy) + " of " + std::to_string(workers) + " workers busy";
  if (!nodes_.empty()) status += "; " + std::to_string(nodes_.size()) + " nodes";
  if (head_) status += "; a node of " + head_->endpoint();
  return status;
}

wire::StatusReport Supervisor::BuildStatus() const {
  wire::StatusReport report;
  report.set_pid(static_cast<uint32_t>(getpid()));
  report.set_version(JOBD_VERSION);
  report.set_uptime_seconds(SecondsSince(started_));
  report.set_default_pool(config_.default_pool);
  for (const auto& [name, pool] : pools_) {
    wire::StatusReport::Pool* out = report.add_pools();
    out->set_name(name);
    out->set_retries(pool.config.retries);
    out->set_degraded(pool.degraded);
    out->set_reload(ReloadLeft(name, pool));
    out->set_payload_bytes_inline(pool.moved.inline_bytes);
    out->set_payload_bytes_shared(pool.moved.shared_bytes);
    for (const auto& worker : pool.workers) {
      if (worker->fate == Fate::kLeave && worker->pid == 0) continue;  // gone
      wire::StatusReport::Worker* w = out->add_workers();
      w->set_slot(worker->slot);
      w->set_pid(static_cast<uint32_t>(worker->pid));
      w->set_state(worker->fate == Fate::kLeave ? "leaving"
                   : !worker->ready             ? "starting"
                   : worker->tasks.empty()      ? "idle"
                                                : "busy");
      w->set_tasks_done(worker->tasks_done);
      w->set_restarts(worker->restarts);
    }
  }
  const auto now = Clock::now();
  std::vector<const Node*> nodes;
  for (const auto& [client, node] : nodes_) nodes.push_back(&node);
  for (const auto& [name, node] : gone_nodes_) nodes.push_back(&node);
  std::sort(nodes.begin(), nodes.end(), [](const Node* a, const Node* b) { return a->name < b->name; });
  for (const Node* node_ptr : nodes) {
    const Node& node = *node_ptr;
    wire::StatusReport::Node* out = report.add_nodes();
    out->set_name(node.name);
    out->set_host(node.host);
    out->set_pid(node.pid);
    uint32_t workers = 0;
    for (const auto& [pool, count] : node.workers) workers += count;
    out->set_workers(workers);
    out->set_tasks_running(static_cast<uint32_t>(node.tasks.size()));
    out->set_tasks_done(node.tasks_done);
    out->set_seconds_since_heard(std::chrono::duration<double>(now - node.last_heard).count());
    out->set_seconds_joined(std::chrono::duration<double>(now - node.joined).count());
    out->set_state(node.State(now));
    out->set_times_lost(node.times_lost);
    out->set_rejoined(node.rejoined);
  }
  report.set_nodes_lost(nodes_lost_);
  if (shutting_down_) report.set_draining(DrainLeft());
  if (head_) report.set_head(head_->endpoint());
  for (const auto& [id, job] : scheduler_.jobs()) {
    wire::StatusReport::Job* out = report.add_jobs();
    out->set_id(id);
    out->set_function(JobLabel(job.spec));
    out->set_pool(job.spec.pool);
    out->set_client_pid(static_cast<uint32_t>(job.spec.client_pid));
    out->set_received(job.received);
    out->set_done(job.done());
    out->set_failed(job.failed);
    out->set_input_complete(job.input_complete);
    out->set_seconds(SecondsSince(job.started));
  }
  return report;
}

}  // namespace jobd
