// jobd._client: the C++ client library (cli/include/jobd/client.h) for the
// Python package. One Job is one jobd job of a pickled Python function: the
// caller's threads put items and take results, while the connection's C++ thread runs
// Client::MapPython with the GIL released, so that windows, shared-memory
// payloads and resubmits have one implementation for C++, jobctl and Python.
//
//   connection = connect(endpoint)          # raises RuntimeError: no jobd, ...
//   job = Job(connection=connection, interpreter=..., path=[...], callable=b"...", ...)
//   job.put([[pickle, buffer, ...], ...])   # blocks while the input is full
//   job.close()                             # no more items
//   job.take(0.1)   # [(index, ok, bytearray), ...]; [] on timeout; None at the end
//
// An item's parts are bytes-like objects read in place: their memory is copied
// once, into the message or the shared-memory segment that carries it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/paths.h"
#include "jobd/client.h"
#include "jobd.pb.h"

namespace py = pybind11;

namespace {

// The input and the results of a job may hold this much between the caller
// and the C++ thread (besides the window that jobd holds).
constexpr size_t kMaxQueuedItems = 4096;
constexpr size_t kMaxQueuedBytes = size_t{64} << 20;

// The program's exit. Python ends a daemon thread that takes the GIL back
// while the interpreter finalizes, from inside gil_scoped_release's
// destructor, which C++ turns into std::terminate: the program would abort at
// exit (a helper thread woken in put() by terminate() did, one run in ten).
// So the waits without the GIL are counted, none starts once the program
// exits (PrepareExit, at atexit), and PrepareExit lets those under way out,
// and the connections' threads end their jobs, before it returns.
std::atomic<bool> g_exiting{false};
std::atomic<int> g_waiting{0};

class Job;
// Every Job of this process, for PrepareExit. A forked child starts with none
// (and no waits): the parent's are not its own, and their mutex may be held.
struct JobRegistry {
  std::mutex mutex;
  std::set<Job*> jobs;
};
JobRegistry* g_registry = new JobRegistry;  // never destroyed: Jobs may outlive static destruction
void ForgetJobsInChild() {
  g_registry = new JobRegistry;  // (the parent's copy is left: its mutex may be held)
  g_waiting = 0;
  g_exiting = false;
}

// The GIL released for a wait, counted (see g_exiting). Constructed with the
// GIL held, after checking g_exiting: the GIL orders that check with
// PrepareExit's.
class WaitWithoutGil {
 public:
  WaitWithoutGil() {
    ++g_waiting;
    release_.emplace();
  }
  ~WaitWithoutGil() {
    release_.reset();
    --g_waiting;
  }
  WaitWithoutGil(const WaitWithoutGil&) = delete;
  WaitWithoutGil& operator=(const WaitWithoutGil&) = delete;

 private:
  std::optional<py::gil_scoped_release> release_;
};

// A connection to jobd, used by one job at a time and kept for the next (a
// connection costs a new socket and a round trip), with the C++ thread that
// runs its jobs: made once, because a thread made for each job may wait a
// millisecond for a core on a busy machine before it submits the job.
// `broken` once a job ended in a way that may leave it unusable (jobd died,
// an error).
class Connection {
 public:
  explicit Connection(jobd::Client connected)
      : client(std::make_unique<jobd::Client>(std::move(connected))),
        runner_(std::make_unique<Runner>()) {
    runner_->thread = std::thread([runner = runner_.get()] { runner->Serve(); });
  }
  ~Connection() {
    if (getpid() != owner_) {
      // A forked child's copy: the thread, the waiters on its condition and
      // ZeroMQ's threads are the parent's, and ending any of them here would
      // wait for them forever. The child leaves them be.
      (void)runner_.release();
      (void)client.release();
      return;
    }
    {
      std::lock_guard lock(runner_->mutex);
      runner_->stopping = true;
    }
    runner_->changed.notify_all();
    runner_->thread.join();
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `job` on the connection's thread; returns at once.
  void Run(std::function<void()> job) {
    {
      std::lock_guard lock(runner_->mutex);
      runner_->next = std::move(job);
      runner_->busy = true;
    }
    runner_->changed.notify_all();
  }
  // Whether it runs a job now.
  bool Busy() {
    std::lock_guard lock(runner_->mutex);
    return runner_->busy;
  }
  // Waits until the job given to Run has returned.
  void WaitIdle() {
    std::unique_lock lock(runner_->mutex);
    runner_->changed.wait(lock, [&] { return !runner_->busy; });
  }

  std::unique_ptr<jobd::Client> client;
  bool broken = false;

 private:
  // The thread and what it waits on.
  struct Runner {
    void Serve() {
      std::unique_lock lock(mutex);
      while (true) {
        changed.wait(lock, [&] { return stopping || next; });
        if (!next) return;  // stopping, with no job left
        std::function<void()> job = std::exchange(next, nullptr);
        lock.unlock();
        job();
        lock.lock();
        busy = false;
        changed.notify_all();
      }
    }
    std::mutex mutex;
    std::condition_variable changed;
    std::function<void()> next;
    bool busy = false, stopping = false;
    std::thread thread;
  };

  const pid_t owner_ = getpid();
  std::unique_ptr<Runner> runner_;
};

// A new connection, made by `connect` (without the GIL: it waits for jobd's answer).
template <typename Connect>
std::shared_ptr<Connection> Connected(const Connect& connect) {
  if (g_exiting) throw std::runtime_error("the program is exiting: no new connection to jobd");
  jobd::Result<jobd::Client> client = [&] {
    WaitWithoutGil wait;
    return connect();
  }();
  if (!client.ok()) throw std::runtime_error(client.message());
  return std::make_shared<Connection>(std::move(*client));
}

std::shared_ptr<Connection> Connect(const std::string& endpoint) {
  return Connected([&] { return jobd::Client::Connect(endpoint); });
}

// A bytes-like object's memory, held (and read without the GIL) until released
// with the GIL.
struct Part {
  Py_buffer view{};
  Part() = default;
  Part(const Part&) = delete;
  Part(Part&& other) noexcept : view(other.view) { other.view.obj = nullptr; }
  ~Part() {
    if (view.obj != nullptr) PyBuffer_Release(&view);  // only ever destroyed with the GIL
  }
  std::string_view bytes() const { return {static_cast<const char*>(view.buf), static_cast<size_t>(view.len)}; }
};
using Item = std::vector<Part>;

// Results from this size on become Python objects on the C++ thread (taking
// the GIL briefly): a mapping of their shared memory, or one copy of them.
constexpr size_t kObjectFrom = 64 << 10;

// A result's bytes in shared memory, mapped copy-on-write: the caller's
// objects (numpy arrays unpickled on it) use the memory the worker wrote,
// without a copy, and may write to it. The segment's name may go (the client
// library removes it once the result is delivered); the mapping stays until
// the last object using it is gone.
class SharedBytes {
 public:
  static std::unique_ptr<SharedBytes> Map(const jobd::wire::SegmentRef& ref) {
    const int fd = shm_open(("/" + ref.segment()).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t start = ref.offset() / page * page;
    const size_t size = static_cast<size_t>(ref.offset() - start + ref.length());
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, static_cast<off_t>(start));
    close(fd);
    if (base == MAP_FAILED) return nullptr;
    return std::unique_ptr<SharedBytes>(new SharedBytes(
        static_cast<char*>(base), size, static_cast<size_t>(ref.offset() - start)));
  }
  ~SharedBytes() { munmap(base_, size_); }
  SharedBytes(const SharedBytes&) = delete;
  SharedBytes& operator=(const SharedBytes&) = delete;

  py::buffer_info Buffer() {
    return py::buffer_info(base_ + skip_, static_cast<py::ssize_t>(size_ - skip_), false);
  }

 private:
  SharedBytes(char* base, size_t size, size_t skip) : base_(base), size_(size), skip_(skip) {}
  char* base_;
  size_t size_;
  size_t skip_;  // bytes mapped before the result's (a mapping starts at a page)
};

struct Outcome {
  uint64_t index;
  bool ok;
  std::string value;  // small ones
  py::object object;  // large ones, a memoryview or bytearray (destroyed only with the GIL)
};

class Eventfd {
 public:
  Eventfd() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) throw std::runtime_error("eventfd failed");
  }
  ~Eventfd() { close(fd_); }
  int fd() const { return fd_; }
  void Signal() const {
    const uint64_t one = 1;
    (void)!write(fd_, &one, sizeof one);
  }
  void Clear() const {
    uint64_t value;
    (void)!read(fd_, &value, sizeof value);
  }

 private:
  int fd_;
};

// Raised by put() once the job has ended (cancelled, or failed).
class JobEnded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Job : public jobd::ItemSource {
 public:
  Job(std::shared_ptr<Connection> connection, const std::string& interpreter,
      std::vector<std::string> path, py::bytes callable, py::bytes initializer,
      uint32_t max_items, uint32_t chunk, const std::string& pool, uint32_t max_workers,
      uint32_t chunksize, bool ordered, std::optional<uint32_t> retries, double timeout)
      : connection_(std::move(connection)) {
    function_.pickled = true;
    function_.interpreter = interpreter;
    function_.path = std::move(path);
    function_.callable = callable;
    function_.initializer = initializer;
    function_.max_items = max_items;
    function_.chunk = chunk;
    options_.pool = pool;
    options_.max_workers = max_workers;
    options_.chunksize = chunksize;
    options_.ordered = ordered;
    options_.starmap = true;
    options_.retries = retries;
    options_.timeout_seconds = timeout;
    options_.cancel_fd = cancel_.fd();
    std::lock_guard lock(g_registry->mutex);
    g_registry->jobs.insert(this);
  }

  ~Job() override {
    if (getpid() != owner_) {
      // A forked child's copy: the parent's threads may wait on its
      // conditions, and destroying a condition waits for its waiters.
      (void)sync_.release();
      return;
    }
    {
      std::lock_guard lock(g_registry->mutex);
      g_registry->jobs.erase(this);
    }
    Cancel();
    Join();
  }

  // At the program's exit (atexit, before the interpreter finalizes): every
  // job is cancelled, and this returns once no thread waits without the GIL
  // and no connection's thread runs a job (see g_exiting).
  static void PrepareExit() {
    g_exiting = true;
    {
      std::lock_guard lock(g_registry->mutex);
      for (Job* job : g_registry->jobs) job->Cancel();
    }
    py::gil_scoped_release release;  // the waiters take it back on their way out
    for (int waited = 0; waited < 10'000; ++waited) {  // (bounded: 10 s)
      bool busy = g_waiting > 0;
      {
        std::lock_guard lock(g_registry->mutex);
        for (const Job* job : g_registry->jobs) busy = busy || job->connection_->Busy();
      }
      if (!busy) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Adds items (each a list of bytes-like parts); waits while the input is
  // full, if `block` (a signal, as Ctrl-C, interrupts the wait); `last`: no
  // more items after these. Returns the position in the job's input of the
  // first. The job starts at the first put (or close): what the first put
  // brings travels with the job's submission.
  uint64_t Put(const py::list& items, bool block, bool last) {
    std::vector<Item> batch;
    batch.reserve(items.size());
    size_t bytes = 0;
    for (const py::handle item : items) {
      Item parts;
      for (const py::handle object : item) {
        Part part;
        if (PyObject_GetBuffer(object.ptr(), &part.view, PyBUF_SIMPLE) != 0) throw py::error_already_set();
        bytes += static_cast<size_t>(part.view.len);
        parts.push_back(std::move(part));
      }
      batch.push_back(std::move(parts));
    }
    uint64_t first = 0;
    auto room = [&] {
      return !block || done_ || cancelled_ || input_.empty() ||
             (input_.size() < kMaxQueuedItems && input_bytes_ < kMaxQueuedBytes);
    };
    while (true) {
      if (g_exiting) throw JobEnded("the program is exiting");
      {
        WaitWithoutGil wait;
        std::unique_lock lock(mutex_);
        if (closed_) throw std::runtime_error("the job's input is closed");
        if (room_.wait_for(lock, std::chrono::milliseconds(100), room)) {
          if (!done_ && !cancelled_) {
            first = put_;
            put_ += batch.size();
            for (Item& item : batch) input_.push_back(std::move(item));
            input_bytes_ += bytes;
            closed_ = last;
            input_ready_.Signal();
            batch.clear();
          }
          break;
        }
      }
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C while waiting
    }
    Start();
    ReleaseSent();
    // An ended job takes nothing more (the batch is released here, with the GIL).
    if (!batch.empty()) throw JobEnded("the job has ended");
    return first;
  }

  // No more items.
  void Close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      input_ready_.Signal();
    }
    Start();
  }

  // Results that have arrived, waiting up to `timeout` seconds for the first;
  // None once the job has ended and everything was taken. The job's error is
  // raised once its results are taken.
  py::object Take(double timeout) {
    if (g_exiting) return py::none();  // (its job was cancelled)
    std::deque<Outcome> taken;
    bool ended = false;
    std::string error;
    {
      WaitWithoutGil wait;
      std::unique_lock lock(mutex_);
      results_ready_.wait_for(lock, std::chrono::duration<double>(timeout),
                              [&] { return done_ || !results_.empty(); });
      taken.swap(results_);
      results_bytes_ = 0;
      ended = done_ && taken.empty();
      if (ended) error = std::exchange(error_, "");
      room_.notify_all();
    }
    ReleaseSent();
    if (ended) {
      if (!error.empty()) throw std::runtime_error(error);
      return py::none();
    }
    py::list list(taken.size());
    size_t i = 0;
    for (Outcome& outcome : taken) {
      // Writable, like what multiprocessing returns: arrays unpickled on it are too.
      py::object value = outcome.object ? std::move(outcome.object)
                                        : py::bytearray(outcome.value.data(), outcome.value.size());
      list[i++] = py::make_tuple(outcome.index, outcome.ok, std::move(value));
    }
    return list;
  }

  // Ends the job in jobd now; what is queued is dropped. A job not started
  // yet never reaches jobd.
  void Cancel() {
    cancel_.Signal();
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      room_.notify_all();
    }
    Start();
  }

  // Waits until the job has left the connection's thread (after its end, or Cancel).
  // Several Python threads may call it at once (a job's collector, exit).
  void Join() {
    {
      std::optional<WaitWithoutGil> wait;
      if (!g_exiting) wait.emplace();  // exiting: the connections are idle (PrepareExit)
      {
        std::lock_guard start(start_mutex_);
        started_ = true;  // not started by now: never (running_ stays as it is from here)
      }
      std::lock_guard join(join_mutex_);
      if (running_) connection_->WaitIdle();
      running_ = false;
    }
    ReleaseSent();
    std::lock_guard lock(mutex_);
    input_.clear();
  }

  // ItemSource, on the C++ thread.
  int fd() const override { return input_ready_.fd(); }
  bool Buffered() const override {
    std::lock_guard lock(mutex_);
    return !input_.empty();
  }
  jobd::Result<bool> Read(jobd::ItemSink& sink, size_t max) override {
    input_ready_.Clear();
    std::unique_lock lock(mutex_);
    size_t added = 0;
    while (added < max && !input_.empty() && !sink.Full()) {
      Item item = std::move(input_.front());
      input_.pop_front();
      lock.unlock();  // the copy into the payload is the slow part
      std::vector<std::string_view> args;
      args.reserve(item.size());
      size_t bytes = 0;
      for (const Part& part : item) {
        args.push_back(part.bytes());
        bytes += part.bytes().size();
      }
      jobd::Status added_ok = sink.AddArgs(args);
      lock.lock();
      input_bytes_ -= bytes;
      sent_.push_back(std::move(item));  // released by a Python thread, with the GIL
      if (!added_ok.ok()) return added_ok;
      ++added;
    }
    room_.notify_all();
    return !(closed_ && input_.empty());
  }

 private:
  void RunJob() {
    jobd::Result<jobd::JobSummary> summary = connection_->client->MapPython(
        function_, *this, options_, [this](const jobd::ItemResult& result) -> jobd::Status {
          Outcome outcome{result.index, result.ok, {}, {}};
          if (result.value.size() >= kObjectFrom) {
            if (g_exiting || _Py_IsFinalizing()) return jobd::Status::Error("the program is exiting");
            std::unique_ptr<SharedBytes> shared =
                result.segment != nullptr ? SharedBytes::Map(*result.segment) : nullptr;
            py::gil_scoped_acquire gil;  // before the lock: Python threads take it holding the GIL
            if (shared) {
              outcome.object = py::memoryview(py::cast(std::move(shared)));
            } else {
              outcome.object = py::bytearray(result.value.data(), result.value.size());
            }
          } else {
            outcome.value = std::string(result.value);
          }
          std::unique_lock lock(mutex_);
          room_.wait(lock, [&] {
            return cancelled_ || results_.empty() ||
                   (results_.size() < kMaxQueuedItems && results_bytes_ < kMaxQueuedBytes);
          });
          if (cancelled_) {
            lock.unlock();
            if (outcome.object) {
              py::gil_scoped_acquire gil;  // the object goes with the GIL
              outcome.object = py::object();
            }
            return jobd::Status::Error("cancelled");
          }
          results_.push_back(std::move(outcome));
          results_bytes_ += result.value.size();
          results_ready_.notify_all();
          return {};
        });
    std::lock_guard lock(mutex_);
    if (!summary.ok()) {
      connection_->broken = true;
      if (!cancelled_) error_ = summary.message();
    }
    done_ = true;
    results_ready_.notify_all();
    room_.notify_all();
  }

  // Starts the C++ thread running the job, once.
  void Start() {
    std::lock_guard start(start_mutex_);
    if (std::exchange(started_, true)) return;
    std::lock_guard lock(mutex_);
    if (cancelled_ || g_exiting) {  // cancelled before it started: it never reaches jobd
      done_ = true;
      results_ready_.notify_all();
      return;
    }
    running_ = true;
    connection_->Run([this] { RunJob(); });
  }

  // Releases (with the GIL) the memory of items the C++ thread has copied.
  void ReleaseSent() {
    std::vector<Item> sent;
    {
      std::lock_guard lock(mutex_);
      sent.swap(sent_);
    }
  }

  // The locks and conditions, on the heap: a forked child leaves them be.
  struct Sync {
    std::mutex start, join, state;
    std::condition_variable room, results_ready;
  };

  const pid_t owner_ = getpid();
  jobd::PythonFunction function_;
  jobd::MapOptions options_;
  std::shared_ptr<Connection> connection_;
  std::unique_ptr<Sync> sync_ = std::make_unique<Sync>();
  std::mutex& start_mutex_ = sync_->start;  // guards running_ until started_
  std::mutex& join_mutex_ = sync_->join;
  bool started_ = false;
  bool running_ = false;  // given to the connection's thread, not joined yet
  Eventfd input_ready_, cancel_;

  std::mutex& mutex_ = sync_->state;
  std::condition_variable& room_ = sync_->room;
  std::condition_variable& results_ready_ = sync_->results_ready;
  std::deque<Item> input_;
  size_t input_bytes_ = 0;
  uint64_t put_ = 0;  // items put so far: the next one's position
  std::vector<Item> sent_;
  std::deque<Outcome> results_;
  size_t results_bytes_ = 0;
  bool closed_ = false, cancelled_ = false, done_ = false;
  std::string error_;
};

}  // namespace

PYBIND11_MODULE(_client, m) {
  pthread_atfork(nullptr, nullptr, ForgetJobsInChild);
  m.doc() = "The jobd C++ client library, for the jobd package.";
  m.def("default_endpoint", &jobd::DefaultEndpoint);
  py::class_<SharedBytes>(m, "SharedBytes", py::buffer_protocol())
      .def_buffer(&SharedBytes::Buffer);
  py::class_<Connection, std::shared_ptr<Connection>>(m, "Connection")
      .def_property_readonly("broken", [](const Connection& c) { return c.broken; })
      .def_property_readonly("daemon_pid", [](const Connection& c) { return c.client->daemon_pid(); });
  // A connection to the jobd at `endpoint`; RuntimeError with jobd's message if none answers.
  m.def("connect", &Connect, py::arg("endpoint"));
  // A connection to the jobd whose cluster file is at `path` (over TCP, CurveZMQ).
  m.def("connect_cluster", [](const std::string& path) {
    return Connected([&] { return jobd::Client::ConnectCluster(path); });
  }, py::arg("path"));
  // How many workers pool `pool` (empty: the default pool) had when the
  // connection was made; ValueError naming the pools if jobd has no such pool.
  m.def("pool_workers", [](const Connection& connection, const std::string& pool) {
    jobd::Result<uint32_t> workers = connection.client->PoolWorkers(pool);
    if (!workers.ok()) throw py::value_error(workers.message());
    return *workers;
  });
  py::register_exception<JobEnded>(m, "JobEnded");
  py::class_<Job>(m, "Job")
      .def(py::init<std::shared_ptr<Connection>, const std::string&, std::vector<std::string>,
                    py::bytes, py::bytes, uint32_t, uint32_t, const std::string&, uint32_t,
                    uint32_t, bool, std::optional<uint32_t>, double>(),
           py::kw_only(), py::arg("connection"), py::arg("interpreter"), py::arg("path"),
           py::arg("callable"), py::arg("initializer"), py::arg("max_items"), py::arg("chunk"),
           py::arg("pool"),
           py::arg("max_workers"), py::arg("chunksize"), py::arg("ordered"), py::arg("retries"),
           py::arg("timeout"))
      .def("put", &Job::Put, py::arg("items"), py::arg("block") = true, py::arg("last") = false)
      .def("close", &Job::Close)
      .def("take", &Job::Take, py::arg("timeout"))
      .def("cancel", &Job::Cancel)
      .def("join", &Job::Join);
  // At the program's exit: every job cancelled, every wait of this module let
  // out, before the interpreter finalizes (see g_exiting).
  m.def("prepare_exit", &Job::PrepareExit);
}
