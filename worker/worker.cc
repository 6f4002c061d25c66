#include "worker/worker.h"

#include <unistd.h>

#include <chrono>
#include <zmq.hpp>

#include "common/log.h"
#include "common/payload.h"
#include "common/running_item.h"
#include "common/wire.h"
#include "worker/exec.h"

namespace jobd {
namespace {

using Clock = std::chrono::steady_clock;

class TaskRunner {
 public:
  TaskRunner(const FunctionRegistry& functions, RunningItem* running, uint32_t slot)
      : functions_(functions), running_(running), slot_(slot) {}

  // Runs every item of `task` and fills `result`. The running-item page keeps
  // naming the task's last item until Idle(): a death while storing results
  // is charged to the task, so a task that always kills its worker ends.
  void Run(const wire::Task& task, wire::TaskResult* result) {
    result->set_id(task.id());
    running_->task.store(0, std::memory_order_relaxed);
    running_->item.store(0, std::memory_order_relaxed);
    running_->task.store(task.id(), std::memory_order_relaxed);
    const Clock::time_point start = Clock::now();
    const Function* function = functions_.Find(task.function());
    std::vector<std::string> values(task.items_size());
    std::vector<bool> failed(task.items_size(), false);
    size_t large_bytes = 0;
    for (int i = 0; i < task.items_size(); ++i) {
      running_->item.store(static_cast<uint32_t>(i), std::memory_order_relaxed);
      Result<std::string> value = Compute(function, task, i);
      failed[i] = !value.ok();
      values[i] = value.ok() ? std::move(value).value() : value.message();
      if (value.ok() && values[i].size() > kInlineLimit) large_bytes += values[i].size();
    }
    std::optional<Segment> output;
    std::string output_error;
    if (large_bytes > 0) {
      Result<Segment> created = Segment::Create(task.output_segment(), large_bytes);
      Status allocated = created.ok() ? created->Allocate(0, large_bytes) : created.status();
      if (allocated.ok()) {
        output.emplace(std::move(created).value());
      } else {
        RemoveSegment(task.output_segment());
        output_error = "cannot store a large result: " + allocated.message();
      }
    }
    size_t used = 0;
    for (int i = 0; i < task.items_size(); ++i) {
      wire::Outcome* outcome = result->add_outcomes();
      std::string& value = values[i];
      if (failed[i]) {
        outcome->set_error(std::move(value));
      } else if (value.size() <= kInlineLimit) {
        outcome->mutable_value()->set_data(std::move(value));
      } else if (!output) {
        outcome->set_error(output_error);
      } else {
        std::memcpy(output->data() + used, value.data(), value.size());
        wire::SegmentRef* ref = outcome->mutable_value()->mutable_ref();
        ref->set_segment(task.output_segment());
        ref->set_offset(used);
        ref->set_length(value.size());
        used += value.size();
      }
    }
    result->set_busy_ns(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }

  // The results of every task run so far have been sent.
  void Idle() { running_->task.store(0, std::memory_order_relaxed); }
  // Unmaps input segments, so that memory of finished jobs is not held.
  void ForgetInputs() { inputs_.Clear(); }

 private:
  Result<std::string> Compute(const Function* function, const wire::Task& task, int i) {
    if (function == nullptr && !task.has_exec()) {
      return Status::Error("this worker has no function '" + task.function() + "'");
    }
    Result<std::string_view> item = inputs_.Read(task.items(i));
    if (!item.ok()) return Status::Error("cannot read the item: " + item.message());
    if (task.has_exec()) return RunCommand(task.exec(), *item, task.indexes(i) + 1, slot_ + 1);
    return function->body(*item);
  }

  const FunctionRegistry& functions_;
  RunningItem* running_;
  uint32_t slot_;
  SegmentReader inputs_;
};

std::string Encode(const google::protobuf::MessageLite& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

}  // namespace

int RunWorker(const WorkerOptions& options, const FunctionRegistry& functions) {
  Result<Segment> page = Segment::Open(options.running_item, /*writable=*/true);
  if (!page.ok() || page->size() < sizeof(RunningItem)) {
    JOBD_LOG(kError) << "cannot map the running-item page: "
                     << (page.ok() ? "segment too small" : page.message());
    return 2;
  }
  auto* running = reinterpret_cast<RunningItem*>(page->data());
  TaskRunner runner(functions, running, options.slot);

  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::routing_id, options.identity);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(options.endpoint);

  wire::FromWorker hello;
  hello.set_version(wire::VERSION_CURRENT);
  hello.mutable_hello()->set_pid(static_cast<uint32_t>(getpid()));
  for (const Function* function : functions.List()) {
    wire::FunctionInfo* info = hello.mutable_hello()->add_functions();
    info->set_name(function->name);
    info->set_summary(function->summary);
  }
  socket.send(zmq::buffer(Encode(hello)), zmq::send_flags::none);

  wire::ToWorker incoming;
  wire::FromWorker outgoing;
  outgoing.set_version(wire::VERSION_CURRENT);
  zmq::message_t message;
  while (true) {
    // Before waiting for work, let go of the segments the last tasks read.
    if (!(socket.get(zmq::sockopt::events) & ZMQ_POLLIN)) runner.ForgetInputs();
    if (!socket.recv(message, zmq::recv_flags::none)) continue;
    Status decoded = DecodeToWorker(message.to_string_view(), &incoming);
    if (!decoded.ok()) {
      JOBD_LOG(kError) << "refusing a message from the supervisor: " << decoded.message();
      return 2;
    }
    if (incoming.has_stop()) return 0;
    wire::TaskResults* results = outgoing.mutable_results();
    results->Clear();
    for (const wire::Task& task : incoming.tasks().tasks()) runner.Run(task, results->add_results());
    socket.send(zmq::buffer(Encode(outgoing)), zmq::send_flags::none);
    runner.Idle();
  }
}

}  // namespace jobd
