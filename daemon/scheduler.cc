#include "daemon/scheduler.h"

#include <algorithm>
#include <unordered_set>

#include "common/log.h"
#include "common/packed.h"
#include "common/payload.h"
#include "daemon/host_payloads.h"

namespace jobd {
namespace {
// Above every worker's key (a generation count) and every node's.
constexpr uint64_t kNodeTaskHolder = uint64_t{1} << 63;
}  // namespace

Job& Scheduler::AddJob(JobSpec spec, Clock::time_point now) {
  if (spec.cost_key.empty()) spec.cost_key = spec.function;
  if (spec.metric_function.empty()) spec.metric_function = spec.function;
  const uint64_t id = next_job_++;
  Job& job = jobs_[id];
  job.id = id;
  job.spec = std::move(spec);
  job.started = now;
  return job;
}

Job* Scheduler::FindJob(uint64_t id) {
  auto found = jobs_.find(id);
  return found == jobs_.end() ? nullptr : &found->second;
}

Status Scheduler::AddItems(Job& job, wire::Items& items) {
  if (job.input_complete) {
    return Status::Error("job " + std::to_string(job.id) + " already received its last item");
  }
  if (items.first_index() != job.received) {
    return Status::Error("items out of sequence for job " + std::to_string(job.id) +
                         ": expected index " + std::to_string(job.received) + ", got " +
                         std::to_string(items.first_index()));
  }
  if (Status s = CheckSegments(job, items); !s.ok()) return s;
  for (std::string& name : *items.mutable_segments()) {
    if (segment_jobs_.try_emplace(name, job.id).second) job.segments.push_back(std::move(name));
  }
  const std::unordered_set<uint64_t> skipped(items.skipped().begin(), items.skipped().end());
  auto add = [&](QueuedItem item) {
    item.index = job.received++;
    if (skipped.count(item.index) > 0) {
      ++job.failed;  // the client reports its error itself
    } else {
      job.queue.push_back(std::move(item));
    }
  };
  if (items.has_packed()) {
    QueueBlock(items.mutable_packed(), add);
  } else {
    const int count = items.items_size();
    std::vector<wire::Payload*> payloads(count);
    items.mutable_items()->ExtractSubrange(0, count, payloads.data());
    for (wire::Payload* payload : payloads) add({0, nullptr, 0, 0, std::unique_ptr<wire::Payload>(payload)});
  }
  job.input_complete = items.last();
  if (!job.queue.empty()) MarkReady(job);
  if (job.finished()) finished_.push_back(job.id);  // an empty job
  return {};
}

Status Scheduler::CheckSegments(const Job& job, const wire::Items& items) const {
  auto owner = [&](const std::string& name) {
    auto found = segment_jobs_.find(name);
    return found == segment_jobs_.end() ? 0 : found->second;
  };
  for (const std::string& name : items.segments()) {
    if (SegmentCreator(name) != job.spec.client_pid || job.spec.client_pid == 0) {
      return Status::Error("job " + std::to_string(job.id) + " announced shared-memory segment " +
                           name + ", which its client (pid " + std::to_string(job.spec.client_pid) +
                           ") did not create; a job may use only segments its own client made");
    }
    if (const uint64_t other = owner(name); other != 0 && other != job.id) {
      return Status::Error("job " + std::to_string(job.id) + " announced shared-memory segment " +
                           name + ", which belongs to job " + std::to_string(other) +
                           "; a segment serves one job");
    }
  }
  for (int i = 0; i < items.items_size(); ++i) {
    const wire::Payload& payload = items.items(i);
    if (!payload.has_ref()) continue;
    const std::string& name = payload.ref().segment();
    const bool announced_here =
        std::find(items.segments().begin(), items.segments().end(), name) != items.segments().end();
    if (!announced_here && owner(name) != job.id) {
      return Status::Error("item " + std::to_string(items.first_index() + i + 1) + " of job " +
                           std::to_string(job.id) + " refers to shared-memory segment " + name +
                           ", which its client did not create and announce for this job (in "
                           "Items.segments); a job may read only its own segments");
    }
  }
  return {};
}

template <typename Add>
void Scheduler::QueueBlock(wire::Packed* packed, const Add& add) {
  auto block = std::make_shared<const std::string>(std::move(*packed->mutable_data()));
  uint32_t offset = 0;
  for (uint32_t length : packed->lengths()) {
    add({0, block, offset, length, nullptr});
    offset += length;
  }
}

void Scheduler::EraseJob(uint64_t id) {
  auto found = jobs_.find(id);
  if (found == jobs_.end()) return;
  for (const std::string& name : found->second.segments) {
    RemoveSegment(name);
    segment_jobs_.erase(name);
  }
  jobs_.erase(found);
  results_.erase(id);
  // Its entry in ready_ is skipped and dropped by NextTask.
}

void Scheduler::MarkReady(const Job& job) {
  std::deque<uint64_t>& ready = ready_[job.spec.pool];
  if (std::find(ready.begin(), ready.end(), job.id) == ready.end()) ready.push_back(job.id);
}

uint64_t Scheduler::QueuedItems(const std::string& pool) const {
  uint64_t queued = 0;
  for (const auto& [id, job] : jobs_) {
    if (job.spec.pool == pool) queued += job.queue.size() + job.delayed.size();
  }
  return queued;
}

uint64_t Scheduler::ItemCostNs(const std::string& pool, const std::string& function) const {
  auto found = cost_ns_.find({pool, function});
  return found == cost_ns_.end() ? 0 : static_cast<uint64_t>(found->second);
}

uint64_t Scheduler::NodeItemCostNs(uint64_t node, const std::string& pool,
                                   const std::string& function) const {
  auto found = node_cost_ns_.find({node, function});
  return found == node_cost_ns_.end() ? ItemCostNs(pool, function)
                                      : static_cast<uint64_t>(found->second);
}

void Scheduler::ForgetNode(uint64_t node) {
  node_cost_ns_.erase(node_cost_ns_.lower_bound({node, std::string()}),
                      node_cost_ns_.lower_bound({node + 1, std::string()}));
}

uint32_t Scheduler::ChunkSize(const Job& job, size_t pool_workers, uint64_t worker,
                              bool for_node) const {
  if (job.spec.chunksize != 0) return job.spec.chunksize;
  // A node's tasks are cut to the speed measured there.
  const uint64_t cost = for_node ? NodeItemCostNs(worker, job.spec.pool, job.spec.cost_key)
                                 : ItemCostNs(job.spec.pool, job.spec.cost_key);
  // Unknown cost: one item, so that the first results measure it quickly.
  if (cost == 0) return 1;
  uint64_t chunk =
      std::clamp<uint64_t>((for_node ? kTargetNodeTaskNs : kTargetTaskNs) / cost, 1, kMaxChunk);
  // Leave enough tasks for every worker to take a share of what is queued.
  const uint64_t share = job.queue.size() / (2 * std::max<size_t>(pool_workers, 1));
  return static_cast<uint32_t>(std::max<uint64_t>(1, std::min(chunk, share)));
}

const Task* Scheduler::NextTask(const std::string& pool, size_t pool_workers, uint64_t worker,
                                bool for_node) {
  auto ready_it = ready_.find(pool);
  if (ready_it == ready_.end()) return nullptr;
  std::deque<uint64_t>& ready = ready_it->second;
  for (size_t turns = ready.size(); turns > 0 && !ready.empty(); --turns) {
    const uint64_t job_id = ready.front();
    ready.pop_front();
    Job* job = FindJob(job_id);
    if (job == nullptr || job->queue.empty()) continue;
    // Each of a node's tasks runs on a worker of its own there.
    const uint64_t holder = for_node ? kNodeTaskHolder | next_task_ : worker;
    if (!job->CanUse(holder)) {
      ready.push_back(job_id);
      continue;
    }

    const uint32_t chunk = std::min<size_t>(ChunkSize(*job, pool_workers, worker, for_node), job->queue.size());
    const uint64_t id = next_task_++;
    Task& task = tasks_[id];
    task.job = job_id;
    task.worker = worker;
    task.for_node = for_node;
    task.holder = holder;
    ++job->workers[holder];
    task.pool = pool;
    task.message = std::make_unique<wire::Task>();
    task.message->set_id(id);
    task.message->set_function(job->spec.function);
    if (!for_node && !job->spec.remote) {
      task.message->set_output_segment(NewSegmentName(segment_owner_));
    }
    if (job->spec.exec) *task.message->mutable_exec() = *job->spec.exec;
    if (job->spec.python) *task.message->mutable_python() = *job->spec.python;
    task.message->set_job(job_id);
    task.message->set_starmap(job->spec.starmap);
    task.message->set_read_files(job->spec.read_files);
    task.message->set_retries(job->spec.retries);
    if (!job->spec.plugin.empty()) task.message->set_plugin(job->spec.plugin);
    task.indexes.reserve(chunk);
    // A task's items are all packed or all Payloads, as its message carries them.
    const bool packed = job->queue.front().packed();
    for (uint32_t i = 0; i < chunk && (i == 0 || task.bytes < kMaxTaskBytes) &&
                         !job->queue.empty() && job->queue.front().packed() == packed;
         ++i) {
      QueuedItem& item = job->queue.front();
      task.indexes.push_back(item.index);
      if (job->spec.exec) task.message->add_indexes(item.index);
      if (packed) {
        AppendPacked(task.message->mutable_packed(),
                     std::string_view(*item.block).substr(item.offset, item.length));
        task.bytes += item.length;
      } else {
        task.bytes += item.payload->data().size();
        task.message->mutable_items()->AddAllocated(item.payload.release());
      }
      job->queue.pop_front();
    }
    task.estimate_ns = ItemCostNs(pool, job->spec.cost_key) * task.indexes.size();
    if (!job->queue.empty()) ready.push_back(job_id);  // its turn comes again after the others
    if (!for_node && job->spec.remote) {
      // Its items came over TCP: the large ones go to the worker in shared memory.
      Result<std::string> shared = ShareForWorker(*task.message);
      if (shared.ok()) {
        task.input_segment = std::move(shared).value();
      } else {
        JOBD_LOG(kWarn) << "task " << id << " of job " << job_id
                        << " goes to its worker with its items in the message: "
                        << shared.message();
      }
    }
    return &task;
  }
  return nullptr;
}

const Task* Scheduler::FindTask(uint64_t id) const {
  auto found = tasks_.find(id);
  return found == tasks_.end() ? nullptr : &found->second;
}

void Scheduler::Deliver(Job& job, uint64_t index, wire::Outcome* outcome, wire::Results* results) {
  ++(outcome->has_error() ? CountsOf(job).failed : CountsOf(job).succeeded);
  if (outcome->has_error()) {
    ++job.failed;
    if (job.first_errors.size() < kErrorsKept) job.first_errors.emplace_back(index, outcome->error());
  } else {
    ++job.succeeded;
  }
  if (results == nullptr) results = &results_[job.id];
  results->set_job(job.id);
  wire::ItemResult* result = results->add_results();
  result->set_index(index);
  result->mutable_outcome()->Swap(outcome);
  if (job.finished()) finished_.push_back(job.id);
}

void Scheduler::DeliverValue(Job& job, uint64_t index, std::string_view value,
                             wire::Results& results) {
  ++job.succeeded;
  ++CountsOf(job).succeeded;
  results.set_job(job.id);
  results.add_value_indexes(index);
  AppendPacked(results.mutable_values(), value);
  if (job.finished()) finished_.push_back(job.id);
}

std::pair<Task, Job*> Scheduler::Land(uint64_t task_id) {
  auto found = tasks_.find(task_id);
  Task task = std::move(found->second);
  tasks_.erase(found);
  Job* job = FindJob(task.job);
  if (job != nullptr) {
    auto held = job->workers.find(task.holder);
    if (held != job->workers.end() && --held->second == 0) job->workers.erase(held);
  }
  return {std::move(task), job};
}

void Scheduler::Complete(uint64_t task_id, wire::TaskResult& result) {
  if (tasks_.count(task_id) == 0) return;
  auto [task, job] = Land(task_id);
  const std::string& output = task.message->output_segment();

  if (!task.input_segment.empty()) RemoveSegment(task.input_segment);

  bool wrote_output = false;
  for (const wire::Outcome& outcome : result.outcomes()) {
    if (output.empty()) break;
    wrote_output = wrote_output || (outcome.has_value() && outcome.value().has_ref());
  }
  if (job == nullptr) {  // cancelled meanwhile
    if (wrote_output) RemoveSegment(output);
    return;
  }
  ++CountsOf(*job).tasks;
  if (wrote_output && job->spec.remote) {  // its client is on another host: results go inline
    InlineResults(result, output);
    RemoveSegment(output);
  } else if (wrote_output) {
    job->segments.push_back(output);
  }

  const size_t items = task.indexes.size();
  const int outcomes = result.has_values() ? result.values().lengths_size() : result.outcomes_size();
  if (static_cast<size_t>(outcomes) != items) {
    for (uint64_t index : task.indexes) {
      wire::Outcome outcome;
      outcome.set_error("internal error: the worker returned " +
                        std::to_string(outcomes) + " outcomes for " +
                        std::to_string(items) + " items");
      Deliver(*job, index, &outcome);
    }
    return;
  }
  if (items > 0 && result.busy_ns() > 0) {
    const double per_item = static_cast<double>(result.busy_ns()) / static_cast<double>(items);
    auto learn = [per_item](double& cost, bool first) {
      cost = first ? per_item : 0.7 * cost + 0.3 * per_item;
    };
    if (task.for_node) {
      auto [cost, first] = node_cost_ns_.try_emplace({task.worker, job->spec.cost_key}, per_item);
      learn(cost->second, first);
    } else {
      auto [cost, first] = cost_ns_.try_emplace({task.pool, job->spec.cost_key}, per_item);
      learn(cost->second, first);
    }
  }
  wire::Results& results = results_[job->id];
  if (result.has_values()) {
    PackedReader values(result.values());
    for (size_t i = 0; i < items; ++i) DeliverValue(*job, task.indexes[i], values.Next(), results);
    return;
  }
  for (size_t i = 0; i < items; ++i) {
    wire::Outcome& outcome = *result.mutable_outcomes(static_cast<int>(i));
    // A worker may only point into the segment it was given for this task.
    if (outcome.has_value() && outcome.value().has_ref() &&
        outcome.value().ref().segment() != output) {
      outcome.set_error("internal error: the worker returned a result outside its segment");
    }
    Deliver(*job, task.indexes[i], &outcome, &results);
  }
}

void Scheduler::Requeue(uint64_t task_id, std::optional<uint32_t> running_item,
                        const std::string& cause, Clock::time_point now) {
  if (tasks_.count(task_id) == 0) return;
  auto [task, job] = Land(task_id);
  // The worker may have created the output segment before it died.
  if (!task.message->output_segment().empty()) RemoveSegment(task.message->output_segment());
  task.message->clear_output_segment();
  if (job != nullptr) ++CountsOf(*job).tasks_retried;
  if (!task.input_segment.empty()) {
    // Its items wait inline again, as they came; this jobd's segment goes.
    Status s = job == nullptr ? Status() : InlineItems(*task.message);
    RemoveSegment(task.input_segment);
    if (!s.ok()) {
      for (uint64_t index : task.indexes) {
        wire::Outcome outcome;
        outcome.set_error("internal error: its item was lost from shared memory: " + s.message());
        Deliver(*job, index, &outcome);
      }
      return;
    }
  }
  if (job == nullptr) return;

  std::vector<QueuedItem> items;
  if (task.message->has_packed()) {
    QueueBlock(task.message->mutable_packed(),
               [&](QueuedItem item) { items.push_back(std::move(item)); });
  } else {
    std::vector<wire::Payload*> payloads(task.indexes.size());
    task.message->mutable_items()->ExtractSubrange(0, static_cast<int>(payloads.size()),
                                                   payloads.data());
    for (wire::Payload* payload : payloads) {
      items.push_back({0, nullptr, 0, 0, std::unique_ptr<wire::Payload>(payload)});
    }
  }
  std::vector<QueuedItem> back;
  for (size_t i = 0; i < task.indexes.size(); ++i) {
    const uint64_t index = task.indexes[i];
    QueuedItem& item = items[i];
    item.index = index;
    if (running_item && *running_item == i) {
      const uint32_t crashes = ++job->crashes[index];
      if (crashes > job->spec.retries) {
        wire::Outcome outcome;
        outcome.set_error(cause + " while running this item, " + std::to_string(crashes) +
                          (crashes == 1 ? " time" : " times") + "; giving up (retries: " +
                          std::to_string(job->spec.retries) + ")");
        job->crashes.erase(index);
        Deliver(*job, index, &outcome);
        continue;
      }
      if (job->spec.retry_backoff_ms > 0) {
        const uint64_t backoff_ms =
            std::min<uint64_t>(uint64_t{job->spec.retry_backoff_ms} << std::min(crashes - 1, 20u),
                               kMaxBackoffMs);
        ++job->retried;
        ++CountsOf(*job).retried;
        job->delayed.push_back({now + std::chrono::milliseconds(backoff_ms), std::move(item)});
        continue;
      }
    }
    ++job->retried;
    ++CountsOf(*job).retried;
    back.push_back(std::move(item));
  }
  PutBack(*job, std::move(back));
}

void Scheduler::PutBack(Job& job, std::vector<QueuedItem> items) {
  if (items.empty()) return;
  std::sort(items.begin(), items.end(),
            [](const QueuedItem& a, const QueuedItem& b) { return a.index < b.index; });
  job.queue.insert(job.queue.begin(), std::make_move_iterator(items.begin()),
                   std::make_move_iterator(items.end()));
  MarkReady(job);
}

void Scheduler::ReleaseDelayed(Clock::time_point now) {
  for (auto& [id, job] : jobs_) {
    if (job.delayed.empty()) continue;
    auto due = std::partition(job.delayed.begin(), job.delayed.end(),
                              [&](const DelayedItem& d) { return d.due > now; });
    if (due == job.delayed.end()) continue;
    std::vector<QueuedItem> back;
    for (auto it = due; it != job.delayed.end(); ++it) back.push_back(std::move(it->item));
    job.delayed.erase(due, job.delayed.end());
    PutBack(job, std::move(back));
  }
}

std::optional<Clock::time_point> Scheduler::NextDelayed() const {
  std::optional<Clock::time_point> next;
  for (const auto& [id, job] : jobs_) {
    for (const DelayedItem& d : job.delayed) {
      if (!next || d.due < *next) next = d.due;
    }
  }
  return next;
}

}  // namespace jobd
