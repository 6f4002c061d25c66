#include "worker/worker.h"

#include <unistd.h>

#include <chrono>
#include <optional>
#include <zmq.hpp>

#include "common/args.h"
#include "common/packed.h"
#include "common/log.h"
#include "common/payload.h"
#include "common/peer.h"
#include "common/running_item.h"
#include "common/wire.h"
#include "worker/exec.h"
#include "worker/files.h"
#include "worker/output.h"
#include "worker/plugins.h"
#include "worker/stream.h"

namespace jobd {
namespace {

using Clock = std::chrono::steady_clock;

// A stream coprocess whose job sends no task for this long is stopped; a
// warm Python interpreter lasts longer, for the next program's jobs.
constexpr std::chrono::milliseconds kCoprocessIdle(2000);
constexpr std::chrono::milliseconds kInterpreterIdle(600'000);

class TaskRunner {
 public:
  TaskRunner(const FunctionRegistry& functions, Plugins& plugins, RunningItem* running,
             uint32_t slot)
      : functions_(functions), plugins_(plugins), running_(running), slot_(slot) {}

  // Runs every item of `task` and fills `result`. The running-item page keeps
  // naming the task's last item until Idle(): a death while storing results
  // is charged to the task, so a task that always kills its worker ends.
  void Run(const wire::Task& task, wire::TaskResult* result) {
    result->set_id(task.id());
    running_->task.store(0, std::memory_order_relaxed);
    running_->item.store(0, std::memory_order_relaxed);
    running_->task.store(task.id(), std::memory_order_relaxed);
    const Clock::time_point start = Clock::now();
    TaskOutput output(task.output_segment());
    packed_items_.clear();
    for (PackedReader items(task.packed()); !items.done();) packed_items_.push_back(items.Next());
    const int count = task.has_packed() ? task.packed().lengths_size() : task.items_size();
    if (task.has_python() || (task.has_exec() && task.exec().mode() != wire::Exec::PER_ITEM)) {
      RunStream(task, count, output, result);
    } else {
      const Result<const Function*> function = Resolve(task);
      for (int i = 0; i < count; ++i) {
        if (running_->cancelled_job.load(std::memory_order_relaxed) == task.job()) {
          output.Fail("the job was cancelled");
          output.TakeOutcome(result);
          continue;
        }
        running_->item_started_ns.store(MonotonicNs(), std::memory_order_relaxed);
        running_->item.store(static_cast<uint32_t>(i), std::memory_order_relaxed);
        Compute(function, task, i, output);
        output.TakeOutcome(result);
      }
    }
    output.Finish();
    files_.Clear();
    result->set_busy_ns(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }

  // The results of every task run so far have been sent.
  void Idle() { running_->task.store(0, std::memory_order_relaxed); }
  // Unmaps input segments, so that memory of finished jobs is not held.
  void ForgetInputs() { inputs_.Clear(); }
  // A stream coprocess waits for more items of its job, an interpreter for
  // more jobs, for a while after its last task: how much of that is left
  // (zero: stop it now), if one runs.
  std::optional<std::chrono::milliseconds> CoprocessIdle() const {
    if (!coprocess_.running()) return std::nullopt;
    const auto left = (coprocess_.warm() ? kInterpreterIdle : kCoprocessIdle) -
                      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last_used_);
    return std::max(left, std::chrono::milliseconds(0));
  }
  void StopCoprocess() {
    coprocess_.Stop();
    running_->coprocess.store(0, std::memory_order_relaxed);
  }

 private:
  // Item `i` of `task`: in the task's message, or mapped from shared memory;
  // for a job whose items name files, the contents of the file it names.
  Result<std::string_view> Item(const wire::Task& task, int i) {
    Result<std::string_view> bytes =
        task.has_packed() ? packed_items_[i] : inputs_.Read(task.items(i));
    if (!bytes.ok()) return Status::Error("cannot read the item: " + bytes.message());
    if (!task.read_files()) return bytes;
    return files_.Map(std::string(*bytes));
  }

  void RunStream(const wire::Task& task, int count, TaskOutput& output, wire::TaskResult* result) {
    std::vector<Coprocess::Item> items(count);
    for (int i = 0; i < count; ++i) {
      Result<std::string_view> item = Item(task, i);
      Result<std::vector<std::string_view>> args =
          !item.ok() ? Result<std::vector<std::string_view>>(item.status())
          : task.starmap() ? UnpackArgs(*item)
                             : Result<std::vector<std::string_view>>(
                                   std::vector<std::string_view>{*item});
      if (args.ok()) {
        items[i].args = std::move(args).value();
        if (!task.has_packed() && task.items(i).has_ref() && !task.read_files()) {
          // a warm interpreter may map it too
          items[i].segment = task.items(i).ref().segment();
          items[i].segment_start = item->data() - task.items(i).ref().offset();
        }
      } else {
        items[i].error = args.message();
      }
    }
    if (!coprocess_.Serves(Coprocess::KeyOf(task))) coprocess_.Stop();  // another job's, or another Python
    running_->coprocess_job.store(task.job(), std::memory_order_relaxed);
    coprocess_.Run(
        task, items, slot_ + 1, output, result,
        [this](int i) {
          running_->item_started_ns.store(MonotonicNs(), std::memory_order_relaxed);
          running_->item.store(static_cast<uint32_t>(i), std::memory_order_relaxed);
          running_->coprocess.store(coprocess_.pid(), std::memory_order_relaxed);
        },
        [this, job = task.job()] {
          return running_->cancelled_job.load(std::memory_order_relaxed) == job;
        });
    last_used_ = Clock::now();
    // It may have exited at the end: jobd must never kill a group by a stale pid.
    running_->coprocess.store(coprocess_.running() ? coprocess_.pid() : 0,
                              std::memory_order_relaxed);
  }

  // The function a task names: builtin or from the pool's plugins, or from the
  // job's plugin. Null for commands (exec).
  Result<const Function*> Resolve(const wire::Task& task) {
    if (task.has_exec()) return static_cast<const Function*>(nullptr);
    const FunctionRegistry* registry = &functions_;
    if (!task.plugin().empty()) {
      Result<const FunctionRegistry*> loaded = plugins_.ForJob(task.plugin());
      if (!loaded.ok()) return loaded.status();
      registry = *loaded;
    }
    if (const Function* function = registry->Find(task.function())) return function;
    return Status::Error(task.plugin().empty()
                             ? "this worker has no function '" + task.function() + "'"
                             : "plugin " + task.plugin() + " has no function '" + task.function() + "'");
  }

  // Runs one item; an allocation that fails (the pool's memory_limit) fails
  // that item alone with "out of memory", and the worker goes on.
  void Compute(const Result<const Function*>& function, const wire::Task& task, int i,
               TaskOutput& out) {
    try {
      ComputeItem(function, task, i, out);
    } catch (const std::bad_alloc&) {
      out.Fail("out of memory: the item needed more than its worker may use (the pool's "
               "memory_limit)");
    }
  }

  void ComputeItem(const Result<const Function*>& function, const wire::Task& task, int i,
                   TaskOutput& out) {
    if (!function.ok()) return out.Fail(function.message());
    Result<std::string_view> item = Item(task, i);
    if (!item.ok()) return out.Fail(item.message());
    std::vector<std::string_view> args{*item};
    std::string joined;  // a starmap item's arguments, as {} sees them
    if (task.starmap()) {
      Result<std::vector<std::string_view>> unpacked = UnpackArgs(*item);
      if (!unpacked.ok()) return out.Fail(unpacked.message());
      args = std::move(unpacked).value();
      for (size_t a = 0; a < args.size(); ++a) (joined += a ? " " : "").append(args[a]);
    }
    if (*function != nullptr && (*function)->write) return (*function)->write(args, out);
    if (*function != nullptr && args.size() != 1) {
      return out.Fail(task.function() + " takes one argument; the item has " +
                      std::to_string(args.size()));
    }
    auto started = [this](pid_t pgid) { running_->command.store(pgid, std::memory_order_relaxed); };
    Result<std::string> value =
        *function != nullptr
            ? (*function)->body(args[0])
            : task.starmap()
                  ? RunCommand(task.exec(), joined, task.indexes(i) + 1, slot_ + 1, started, args)
                  : RunCommand(task.exec(), *item, task.indexes(i) + 1, slot_ + 1, started);
    value.ok() ? out.Set(*value) : out.Fail(value.message());
  }

  const FunctionRegistry& functions_;
  Plugins& plugins_;
  RunningItem* running_;
  uint32_t slot_;
  SegmentReader inputs_;
  MappedFiles files_;  // of the task running, if its items name files
  std::vector<std::string_view> packed_items_;  // of the task running, if packed
  Coprocess coprocess_;
  Clock::time_point last_used_;  // of the coprocess: when its last task ended
};

}  // namespace

int RunWorker(const WorkerOptions& options) {
  FunctionRegistry functions = BuiltinFunctions();
  // Declared before the registry users below, so plugins are unloaded last.
  Plugins plugins;
  for (const std::string& path : options.plugins) {
    if (Status s = plugins.Load(path, functions); !s.ok()) {
      JOBD_LOG(kError) << s.message();
      return 3;
    }
  }
  Result<Segment> page = Segment::Open(options.running_item, /*writable=*/true);
  if (!page.ok() || page->size() < sizeof(RunningItem)) {
    JOBD_LOG(kError) << "cannot map the running-item page: "
                     << (page.ok() ? "segment too small" : page.message());
    return 2;
  }
  auto* running = reinterpret_cast<RunningItem*>(page->data());
  TaskRunner runner(functions, plugins, running, options.slot);

  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::routing_id, options.identity);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(options.endpoint);

  wire::FromWorker hello;
  hello.set_version(wire::VERSION_CURRENT);
  hello.mutable_hello()->set_pid(static_cast<uint32_t>(getpid()));
  hello.mutable_hello()->set_secret(options.secret);
  for (const Function* function : functions.List()) {
    wire::FunctionInfo* info = hello.mutable_hello()->add_functions();
    info->set_name(function->name);
    info->set_summary(function->summary);
  }
  socket.send(Encode(hello), zmq::send_flags::none);

  wire::ToWorker incoming;
  wire::FromWorker outgoing;
  outgoing.set_version(wire::VERSION_CURRENT);
  zmq::message_t message;
  while (true) {
    // Before waiting for work, let go of the segments the last tasks read; a
    // stream coprocess goes once its job has sent nothing for a while.
    // (An interpreter unused for long goes even while other work keeps
    // this worker busy.)
    const auto idle = runner.CoprocessIdle();
    if (idle && idle->count() == 0) runner.StopCoprocess();
    if (!(socket.get(zmq::sockopt::events) & ZMQ_POLLIN)) {
      runner.ForgetInputs();
      if (idle && idle->count() > 0) {
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, *idle) == 0) runner.StopCoprocess();
      }
    }
    if (!socket.recv(message, zmq::recv_flags::none)) continue;
    // Tasks come from the jobd that started us, or from nobody.
    if (const std::optional<ucred> sender = PeerOf(message);
        !sender || sender->uid != getuid() || sender->pid != options.supervisor) {
      JOBD_LOG(kError) << "refusing a message on " << options.endpoint << " that is not from jobd (pid "
                       << options.supervisor << "); stopping";
      return 2;
    }
    Status decoded = DecodeToWorker(message.to_string_view(), &incoming);
    if (!decoded.ok()) {
      JOBD_LOG(kError) << "refusing a message from the supervisor: " << decoded.message();
      return 2;
    }
    if (incoming.has_stop()) return 0;
    wire::TaskResults* results = outgoing.mutable_results();
    results->Clear();
    for (const wire::Task& task : incoming.tasks().tasks()) runner.Run(task, results->add_results());
    socket.send(Encode(outgoing), zmq::send_flags::none);
    runner.Idle();
  }
}

}  // namespace jobd
