// The Supervisor's part in a cluster: as a head, the nodes that lend it their
// workers (daemon/nodes.h); as a node, the tasks of its head (daemon/head_link.h).
#include <unistd.h>

#include <algorithm>

#include "common/log.h"
#include "common/payload.h"
#include "common/wire.h"
#include "daemon/host_payloads.h"
#include "daemon/supervisor.h"

namespace jobd {
namespace {
// A node sends what its workers returned once this much has gathered, or at
// the end of each loop: reports stay far below the head's message limit.
constexpr size_t kMaxReportBytes = 16 << 20;
// The head's jobs are known on a node by their number plus this, so that
// they never meet a local job's in a worker's per-job state (a stream
// coprocess, a Python job's header, a cancel).
constexpr uint64_t kHeadJobBase = uint64_t{1} << 62;
}  // namespace

// ------------------------------------------------------------------ as a head

void Supervisor::HandleNodeHello(const std::string& client, const wire::NodeHello& hello) {
  for (auto it = nodes_.begin(); it != nodes_.end(); ++it) {
    if (it->second.name == hello.name() && it->first != client) {  // back on a new connection
      LoseNode(it, "it joined again");
      break;
    }
  }
  const auto now = Clock::now();
  auto [it, fresh] = nodes_.try_emplace(client);
  Node& node = it->second;
  if (fresh) {
    if (auto gone = gone_nodes_.find(hello.name()); gone != gone_nodes_.end()) {
      node.times_lost = gone->second.times_lost;
      node.rejoined = gone->second.rejoined + 1;
      node.tasks_done = gone->second.tasks_done;
      gone_nodes_.erase(gone);
    }
    node.client = client;
    node.key = ++generation_;
    node.joined = now;
  }
  node.name = hello.name();
  node.host = hello.host();
  node.pid = hello.pid();
  node.workers.clear();
  uint32_t total = 0;
  for (const auto& [pool, workers] : hello.pool_workers()) {
    if (pools_.count(pool) == 0) continue;  // a pool the head lacks gets no task
    node.workers[pool] = workers;
    total += workers;
  }
  node.last_heard = now;
  node.stopping = hello.pool_workers().empty();  // (LeaveHead)
  if (!fresh && node.stopping) {
    JOBD_LOG(kInfo) << "node " << node.name << " is stopping: it takes no more tasks";
  } else {
    JOBD_LOG(kInfo) << "node " << node.name << " (" << node.host << ", pid " << node.pid
                    << ") joined with " << total << " workers";
  }
  SendNodeTasks(node, {});
}

void Supervisor::HandleNodeReport(const std::string& client, wire::NodeReport& report) {
  auto it = nodes_.find(client);
  if (it == nodes_.end()) {
    ReplyError(client, "not a node of this head (it was taken for lost, or never joined)");
    return;
  }
  Node& node = it->second;
  node.last_heard = Clock::now();
  for (wire::TaskResult& result : *report.mutable_results()) {
    if (node.tasks.erase(result.id()) == 0) continue;  // not (or no longer) its
    ++node.tasks_done;
    scheduler_.Complete(result.id(), result);
  }
  for (const wire::LostTask& lost : report.lost()) {
    if (node.tasks.erase(lost.id()) == 0) continue;
    std::optional<uint32_t> running;
    const Task* task = scheduler_.FindTask(lost.id());
    if (lost.has_running_item() && task != nullptr && lost.running_item() < task->indexes.size()) {
      running = lost.running_item();
    }
    scheduler_.Requeue(lost.id(), running, "on node " + node.name + ": " + lost.cause(),
                       Clock::now());
  }
}

size_t Supervisor::NodeWorkers(const std::string& pool) const {
  size_t total = 0;
  for (const auto& [client, node] : nodes_) {
    if (auto found = node.workers.find(pool); found != node.workers.end()) total += found->second;
  }
  return total;
}

void Supervisor::DispatchToNodes() {
  for (auto& [client, node] : nodes_) {
    std::vector<const Task*> given;
    for (const auto& [pool, workers] : node.workers) {
      auto local = pools_.find(pool);
      const size_t size = NodeWorkers(pool) + (local == pools_.end() ? 0 : local->second.workers.size());
      while (node.HasCredit(pool)) {
        const Task* task = scheduler_.NextTask(pool, size, node.key, /*for_node=*/true);
        if (task == nullptr) break;
        node.tasks.emplace(task->message->id(), pool);
        task->message->set_pool(pool);
        if (Status s = InlineItems(*task->message); !s.ok()) {  // its items' segment is gone
          JOBD_LOG(kError) << "cannot send task " << task->message->id() << " to node "
                           << node.name << ": " << s.message();
          node.tasks.erase(task->message->id());
          scheduler_.Requeue(task->message->id(), 0, "its item could not be read: " + s.message(),
                             Clock::now());
          continue;
        }
        if (const Job* job = scheduler_.FindJob(task->job)) {
          task->message->set_timeout_ms(job->spec.timeout_ms);
        }
        given.push_back(task);
      }
    }
    if (!given.empty()) SendNodeTasks(node, given);
  }
}

void Supervisor::SendNodeTasks(Node& node, const std::vector<const Task*>& tasks) {
  wire::Reply reply;
  auto* out = reply.mutable_node_tasks()->mutable_tasks();
  // Lent to the message for serialisation, taken back below: no copy.
  for (const Task* task : tasks) out->AddAllocated(task->message.get());
  Reply(node.client, reply);
  while (!out->empty()) static_cast<void>(out->ReleaseLast());
  node.last_sent = Clock::now();
}

void Supervisor::LoseNode(std::map<std::string, Node>::iterator it, const std::string& why) {
  Node& node = it->second;
  if (node.stopping && node.tasks.empty()) {
    node.gone = "left";
    JOBD_LOG(kInfo) << "node " << node.name << " (" << node.host << ", pid " << node.pid
                    << ") left";
  } else {
    node.gone = "lost";
    ++node.times_lost;
    ++nodes_lost_;
    JOBD_LOG(kWarn) << "node " << node.name << " (" << node.host << ", pid " << node.pid
                    << ") lost: " << why
                    << (node.tasks.empty() ? "" : "; its tasks go to other workers");
  }
  // Not the items' fault: no retry is charged.
  for (const auto& [task_id, pool] : node.tasks) {
    scheduler_.Requeue(task_id, std::nullopt, "node " + node.name + " was lost", Clock::now());
  }
  node.tasks.clear();
  node.workers.clear();
  scheduler_.ForgetNode(node.key);
  // Kept for status, a bounded number of them.
  constexpr size_t kGoneNodesKept = 256;
  if (gone_nodes_.size() >= kGoneNodesKept && gone_nodes_.count(node.name) == 0) {
    gone_nodes_.erase(std::min_element(
        gone_nodes_.begin(), gone_nodes_.end(),
        [](const auto& a, const auto& b) { return a.second.last_heard < b.second.last_heard; }));
  }
  gone_nodes_[node.name] = std::move(node);
  nodes_.erase(it);
}

void Supervisor::CheckNodes(Clock::time_point now) {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    auto next = std::next(it);
    if (now - it->second.last_heard >= kNodeTimeout) {
      LoseNode(it, "nothing from it for " + std::to_string(kNodeTimeout.count()) + " s");
    } else if (now - it->second.last_sent >= kNodeHeartbeat) {
      SendNodeTasks(it->second, {});  // a heartbeat
    }
    it = next;
  }
}

// ------------------------------------------------------------------ as a node

std::unique_ptr<wire::Task> Supervisor::TakeHeadTask(const std::string& pool) {
  auto queue = head_queue_.find(pool);
  if (queue == head_queue_.end() || queue->second.empty()) return nullptr;
  std::unique_ptr<wire::Task> task = std::move(queue->second.front());
  queue->second.pop_front();
  // Known here by an id of its own (never one of the scheduler's).
  const uint64_t local = next_head_task_++;
  const uint32_t items = static_cast<uint32_t>(task->has_packed() ? task->packed().lengths_size()
                                                                  : task->items_size());
  HeadTask& known = head_tasks_[local];
  known = {task->id(), items, kHeadJobBase + task->job(), task->timeout_ms(), {}, {}};
  // Its items came inline; the large ones go to the worker in shared memory.
  if (Result<std::string> shared = ShareForWorker(*task); shared.ok()) {
    known.input_segment = std::move(shared).value();
    known.output_segment = task->output_segment();
  } else {
    JOBD_LOG(kWarn) << "task " << task->id() << " of the head goes to its worker with its items "
                    << "in the message: " << shared.message();
  }
  task->set_id(local);
  task->set_job(kHeadJobBase + task->job());
  if (task->has_exec()) SetNodeVariable(task->mutable_exec()->mutable_environment(), config_.node_name);
  if (task->has_python()) {
    SetNodeVariable(task->mutable_python()->mutable_environment(), config_.node_name);
  }
  return task;
}

bool Supervisor::ReportHeadTask(wire::TaskResult& result) {
  auto found = head_tasks_.find(result.id());
  if (found == head_tasks_.end()) return false;
  result.set_id(found->second.id);
  if (!found->second.output_segment.empty()) InlineResults(result, found->second.output_segment);
  DropHeadTask(found->first);
  const size_t size = result.ByteSizeLong();
  if (size > static_cast<size_t>(kMaxMessageBytes) - (1 << 20)) {
    // More than one message to the head may carry: its items fail, once.
    const std::string error = "the task's results (" + std::to_string(size) + " bytes) are more "
                              "than a node may send its head in one message (" +
                              std::to_string(kMaxMessageBytes >> 20) + " MiB)";
    const int outcomes = result.has_values() ? result.values().lengths_size() : result.outcomes_size();
    result.clear_values();
    result.clear_outcomes();
    for (int i = 0; i < outcomes; ++i) result.add_outcomes()->set_error(error);
  }
  if (head_report_.ByteSizeLong() + result.ByteSizeLong() > kMaxReportBytes) head_->Send(head_report_);
  head_report_.add_results()->Swap(&result);
  return true;
}

bool Supervisor::LoseHeadTask(uint64_t task_id, std::optional<uint32_t> running,
                              const std::string& cause) {
  auto found = head_tasks_.find(task_id);
  if (found == head_tasks_.end()) return false;
  wire::LostTask* lost = head_report_.add_lost();
  lost->set_id(found->second.id);
  if (running && *running < found->second.items) lost->set_running_item(*running);
  lost->set_cause(cause);
  DropHeadTask(found->first);
  return true;
}

void Supervisor::DropHeadTask(uint64_t task_id) {
  auto found = head_tasks_.find(task_id);
  if (!found->second.input_segment.empty()) RemoveSegment(found->second.input_segment);
  if (!found->second.output_segment.empty()) RemoveSegment(found->second.output_segment);
  head_tasks_.erase(found);
}

void Supervisor::CancelOnNodes(uint64_t job) {
  for (auto& [client, node] : nodes_) {
    const bool holds = std::any_of(node.tasks.begin(), node.tasks.end(), [&](const auto& task) {
      const Task* known = scheduler_.FindTask(task.first);
      return known != nullptr && known->job == job;
    });
    if (!holds) continue;
    wire::Reply reply;
    reply.mutable_node_tasks()->add_cancelled_jobs(job);
    Reply(node.client, reply);
    node.last_sent = Clock::now();
  }
}

void Supervisor::CancelHeadJob(uint64_t job) {
  const uint64_t local = kHeadJobBase + job;
  for (auto& [pool, queue] : head_queue_) {  // not started: dropped, and said so
    for (auto it = queue.begin(); it != queue.end();) {
      if ((*it)->job() != job) {
        ++it;
        continue;
      }
      wire::LostTask* lost = head_report_.add_lost();
      lost->set_id((*it)->id());
      lost->set_cause("its job ended");
      it = queue.erase(it);
    }
  }
  StopOnWorkers(local, [&](uint64_t id) {
    auto found = head_tasks_.find(id);
    return found != head_tasks_.end() && found->second.job == local;
  });
}

void Supervisor::HandleHeadMessages() {
  std::vector<std::unique_ptr<wire::Task>> tasks;
  std::vector<uint64_t> cancelled;
  if (Status s = head_->Receive(&tasks, &cancelled); !s.ok()) {
    JOBD_LOG(kWarn) << s.message();
  }
  for (uint64_t job : cancelled) CancelHeadJob(job);
  for (std::unique_ptr<wire::Task>& task : tasks) {
    auto pool = pools_.find(task->pool());
    if (pool == pools_.end() || pool->second.removed || shutting_down_) {
      wire::LostTask* lost = head_report_.add_lost();
      lost->set_id(task->id());
      lost->set_cause("this node has no pool '" + task->pool() + "'");
      continue;
    }
    head_queue_[task->pool()].push_back(std::move(task));
  }
}

void Supervisor::FlushHeadReport() {
  if (!head_) return;
  if (head_report_.results_size() > 0 || head_report_.lost_size() > 0 ||
      head_->Quiet(Clock::now())) {
    head_->Send(head_report_);
  }
}

void Supervisor::LeaveHead() {
  if (!head_) return;
  for (auto& [pool, queue] : head_queue_) {
    for (const std::unique_ptr<wire::Task>& task : queue) {
      wire::LostTask* lost = head_report_.add_lost();
      lost->set_id(task->id());
      lost->set_cause("node " + config_.node_name + " is stopping");
    }
  }
  head_queue_.clear();
  head_->Send(head_report_);
  head_->Greet({});  // no workers: no more tasks
}

void Supervisor::GreetHead() {
  if (!head_ || shutting_down_) return;
  std::map<std::string, uint32_t> workers;
  for (const auto& [name, pool] : pools_) {
    if (!pool.removed) workers[name] = pool.config.workers;
  }
  for (auto queue = head_queue_.begin(); queue != head_queue_.end();) {
    if (workers.count(queue->first) > 0) {
      ++queue;
      continue;
    }
    for (const std::unique_ptr<wire::Task>& task : queue->second) {
      wire::LostTask* lost = head_report_.add_lost();
      lost->set_id(task->id());
      lost->set_cause("node " + config_.node_name + " no longer has pool '" + queue->first + "'");
    }
    queue = head_queue_.erase(queue);
  }
  head_->Send(head_report_);
  head_->Greet(workers);
}

void Supervisor::CheckHead(Clock::time_point now) {
  if (!head_ || shutting_down_) return;
  if (head_->Lost(now)) {
    head_queue_.clear();
    BeginShutdown("the head at " + head_->endpoint() + " is gone (nothing from it for " +
                  std::to_string(kNodeTimeout.count()) + " s)");
  }
}

}  // namespace jobd
