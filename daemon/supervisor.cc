#include "daemon/supervisor.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "common/paths.h"
#include "common/peer.h"
#include "common/random.h"
#include "common/running_item.h"
#include "common/wire.h"
#include "daemon/worker_admission.h"

#ifndef JOBD_VERSION
#define JOBD_VERSION "0"
#endif

namespace jobd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Tasks a worker may hold at once, however short (its pool's credit_window
// bounds their estimated run time).
constexpr size_t kMaxCredit = 256;
// A task estimated to run less than this may wait behind another (prefetch).
constexpr uint64_t kPrefetchBelowNs = 20'000'000;
// Inline bytes per message to a worker; tasks beyond wait for the next round.
constexpr size_t kMaxBatchBytes = 8 << 20;
constexpr auto kStartDeadline = seconds(15);
constexpr auto kLivenessInterval = seconds(1);
// The loop runs at least once a second: a longer gap than this between two
// runs means the process was stopped (SIGSTOP, a frozen VM) or starved.
constexpr auto kStalledAfter = seconds(3);
// The ZAP domain set on both sockets. No ZAP handler runs (the peer's uid and
// pid are checked per message); setting a domain makes libzmq refuse ZMTP 1.0
// and 2.0 peers at the handshake: stray bytes then never become a message,
// and every message carries the credentials of its connection.
constexpr const char* kZapDomain = "jobd";
// The first byte of a client's key: which socket it came on (its routing id follows).
constexpr char kLocalClient = 'L';
constexpr char kRemoteClient = 'R';
// Routing ids of reaped workers remembered, so that what they sent before
// they died is not taken for an impostor's.
constexpr size_t kDepartedRemembered = 256;
// The descriptor on which a worker reads its routing id and secret.
constexpr int kWorkerCredentialsFd = 3;
// How often an idle jobd gives freed memory back to the system.
constexpr auto kTrimInterval = seconds(5);
// How often running items are checked against their timeouts.
constexpr auto kTimeoutCheckInterval = milliseconds(100);
// A worker that died before saying Hello is restarted after this pause, so a
// worker that cannot start does not spin.
constexpr auto kFailedStartBackoff = seconds(1);

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

std::string DescribeExit(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    return "killed by " + SignalName(signal) + " (signal " + std::to_string(signal) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

void ReapOrphans() {
  if (int reaped = ReapOrphanSegments(); reaped > 0) {
    JOBD_LOG(kInfo) << "removed " << reaped << " shared-memory segments left by dead processes";
  }
}


// What one job's items cost is learned under: its function, and for a
// command or a Python function what it runs (items of `sleep 1` and of
// `true` cost nothing alike). Calls of jobd.Pool.apply_async each carry
// their own function: they share one key.
std::string CostKey(const wire::Submit& submit) {
  std::string key = submit.function() + "\n" + submit.plugin();
  if (submit.has_exec()) {
    for (const std::string& word : submit.exec().argv()) key += "\n" + word;
  }
  if (submit.has_python()) {
    key += "\n" + submit.python().function() + "\n" +
           std::to_string(std::hash<std::string>{}(submit.python().callable())) + "\n" +
           std::to_string(submit.python().chunk());
  }
  return key;
}

}  // namespace

Supervisor::Supervisor(Config config, std::string config_path, std::string worker_binary)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      worker_binary_(std::move(worker_binary)),
      started_(Clock::now()),
      scheduler_(getpid()),
      history_(config_.job_history),
      last_job_seen_(started_) {}

Supervisor::~Supervisor() {
  for (auto& [name, pool] : pools_) {
    for (auto& worker : pool.workers) {
      if (worker->pid > 0) kill(worker->pid, SIGKILL);
      if (worker->running_item) RemoveSegment(worker->running_item->name());
    }
  }
  // The sockets close before the files go, so a new jobd can bind at once.
  head_.reset();
  remote_.reset();
  clients_.close();
  workers_.close();
  // Only the jobd holding the lock owns the socket files.
  if (owns_endpoint_) {
    unlinkat(runtime_dir_.fd.get(), socket_name_.c_str(), 0);
    unlinkat(runtime_dir_.fd.get(), (socket_name_ + ".workers").c_str(), 0);
  }
  if (signal_fd_ >= 0) close(signal_fd_);
}

Result<std::unique_ptr<Supervisor>> Supervisor::Start(Config config, std::string config_path,
                                                      std::string worker_binary,
                                                      std::function<void(Config&)> overrides) {
  if (access(worker_binary.c_str(), X_OK) != 0) {
    return Status::Error("cannot run the worker program " + worker_binary + ": " +
                         std::strerror(errno) + " (install jobd-worker beside jobd)");
  }
  std::unique_ptr<Supervisor> supervisor(
      new Supervisor(std::move(config), std::move(config_path), std::move(worker_binary)));
  supervisor->overrides_ = std::move(overrides);
  if (supervisor->overrides_) supervisor->overrides_(supervisor->config_);
  if (Status s = supervisor->Listen(); !s.ok()) return s;
  return supervisor;
}

Status Supervisor::Listen() {
  Result<std::string> path = IpcPath(config_.listen);
  if (!path.ok()) return path.status();
  // Everything below is made relative to this directory, checked once.
  const std::filesystem::path socket_path(*path);
  Result<TrustedDir> dir = OpenTrustedDir(socket_path.parent_path().string(), DirUse::kPrivate,
                                          /*create=*/true);
  if (!dir.ok()) return Status::Error("cannot listen on " + config_.listen + ": " + dir.message());
  runtime_dir_ = std::move(dir).value();
  socket_name_ = socket_path.filename().string();

  // One jobd per endpoint: the lock dies with its holder, however it dies.
  Result<UniqueFd> lock = OpenOwnFile(runtime_dir_, socket_name_ + ".lock", O_RDWR);
  if (!lock.ok()) return lock.status();
  lock_ = std::move(lock).value();
  if (flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    (void)!pread(lock_.get(), pid, sizeof pid - 1, 0);
    return Status::Error("another jobd (pid " + std::string(pid) + ") is already serving " +
                         config_.listen + "; stop it with `jobctl shutdown`, or give this one " +
                         "another `listen:` endpoint in its config");
  }
  owns_endpoint_ = true;
  const std::string pid_text = std::to_string(getpid());
  (void)!ftruncate(lock_.get(), 0);
  (void)!pwrite(lock_.get(), pid_text.data(), pid_text.size(), 0);

  ReapOrphans();

  // The finished jobs of earlier jobds on this endpoint; numbers go on after theirs.
  Result<UniqueFd> history = config_.job_history_file.empty()
                                 ? OpenOwnFile(runtime_dir_, socket_name_ + ".jobs", O_RDWR | O_APPEND)
                                 : OpenOwnFile(config_.job_history_file, O_RDWR | O_APPEND);
  if (!history.ok()) return history.status();
  history_.Load(std::move(history).value());
  scheduler_.NumberJobsFrom(history_.last_id() + 1);

  // Signals arrive through the loop. Blocked before ZeroMQ starts its threads,
  // which inherit the mask, so that no other thread takes them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) return Status::Error(std::string("signalfd: ") + std::strerror(errno));

  worker_endpoint_ = config_.listen + ".workers";
  Result<UniqueFd> worker_listener = ListenUnixSocket(runtime_dir_, socket_name_ + ".workers");
  if (!worker_listener.ok()) return worker_listener.status();
  try {
    workers_ = zmq::socket_t(context_, zmq::socket_type::router);
    workers_.set(zmq::sockopt::linger, 0);
    workers_.set(zmq::sockopt::sndhwm, 0);  // credit bounds what is queued
    workers_.set(zmq::sockopt::rcvhwm, 0);
    workers_.set(zmq::sockopt::zap_domain, kZapDomain);
    // Workers are ours: libzmq closes any other user's connection as it is
    // accepted, before reading a byte of it. And no frame may claim more
    // than protobuf could ever parse.
    const uid_t uid = getuid();
    if (zmq_setsockopt(workers_.handle(), ZMQ_IPC_FILTER_UID, &uid, sizeof uid) != 0) {
      throw zmq::error_t();
    }
    workers_.set(zmq::sockopt::maxmsgsize, int64_t{INT32_MAX});
    workers_.set(zmq::sockopt::use_fd, worker_listener->release());
    workers_.bind(worker_endpoint_);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot listen on " + worker_endpoint_ + ": " + e.what());
  }

  for (const PoolConfig& pool_config : config_.pools) {
    PoolState& pool = pools_[pool_config.name];
    pool.config = pool_config;
    pool.functions.set_name(pool_config.name);
    for (uint32_t slot = 0; slot < pool_config.workers; ++slot) {
      auto worker = std::make_unique<Worker>();
      worker->slot = slot;
      worker->pool = pool_config.name;
      if (Status s = Spawn(*worker); !s.ok()) return s;
      pool.workers.push_back(std::move(worker));
    }
  }
  if (Status s = WaitForWorkers(Clock::now() + kStartDeadline); !s.ok()) return s;

  Result<UniqueFd> client_listener = ListenUnixSocket(runtime_dir_, socket_name_);
  if (!client_listener.ok()) return client_listener.status();
  try {
    clients_ = zmq::socket_t(context_, zmq::socket_type::router);
    clients_.set(zmq::sockopt::linger, 0);
    clients_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
    clients_.set(zmq::sockopt::router_mandatory, true);
    clients_.set(zmq::sockopt::sndhwm, 0);  // each client's window bounds this
    clients_.set(zmq::sockopt::rcvhwm, 0);
    clients_.set(zmq::sockopt::zap_domain, kZapDomain);
    clients_.set(zmq::sockopt::use_fd, client_listener->release());
    clients_.bind(config_.listen);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot listen on " + config_.listen + ": " + e.what());
  }
  if (!config_.cluster_listen.empty()) {
    Result<std::unique_ptr<RemoteListener>> remote =
        RemoteListener::Start(config_.cluster_listen, config_.cluster_file, config_.listen);
    if (!remote.ok()) return remote.status();
    remote_ = std::move(*remote);
    JOBD_LOG(kInfo) << "serving clients on other hosts at " << remote_->endpoint()
                    << " (CurveZMQ; their keys are in " << config_.cluster_file << ")";
  }
  if (!config_.metrics_listen.empty()) {
    Result<std::unique_ptr<MetricsEndpoint>> metrics = MetricsEndpoint::Listen(config_.metrics_listen);
    if (!metrics.ok()) return metrics.status();
    metrics_ = std::move(*metrics);
    JOBD_LOG(kInfo) << "serving metrics at " << metrics_->url();
  }
  if (!config_.join_cluster_file.empty()) {
    wire::NodeHello hello;
    hello.set_name(config_.node_name);
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    hello.set_host(host);
    hello.set_pid(static_cast<uint32_t>(getpid()));
    for (const auto& [name, pool] : pools_) {
      (*hello.mutable_pool_workers())[name] = static_cast<uint32_t>(pool.workers.size());
    }
    Result<std::unique_ptr<HeadLink>> head =
        HeadLink::Start(config_.join_cluster_file, std::move(hello), config_.join_wait);
    if (!head.ok()) return head.status();
    head_ = std::move(*head);
    JOBD_LOG(kInfo) << "node " << config_.node_name << " joined the head at " << head_->endpoint();
  }
  size_t total = 0;
  for (const auto& [name, pool] : pools_) total += pool.workers.size();
  JOBD_LOG(kInfo) << "serving " << config_.listen << " with " << total << " workers in "
                  << pools_.size() << (pools_.size() == 1 ? " pool" : " pools");
  next_liveness_check_ = Clock::now() + kLivenessInterval;
  next_timeout_check_ = Clock::now() + kTimeoutCheckInterval;
  next_reap_ = Clock::now() + milliseconds(config_.reap_interval_ms);
  return {};
}

Status Supervisor::Spawn(Worker& worker) {
  Result<Segment> page = Segment::Create(NewSegmentName(), sizeof(RunningItem));
  if (!page.ok()) return page.status();
  new (page->data()) RunningItem();
  worker.running_item = std::make_unique<Segment>(std::move(page).value());
  worker.key = ++generation_;
  worker.identity = RandomHex(16);
  worker.secret = RandomHex(32);
  worker.ready = false;
  worker.fate = Fate::kServe;
  worker.stop_sent = false;
  worker.tasks_this_life = 0;
  worker.tasks.clear();
  worker.started = Clock::now();

  // The worker reads its routing id and secret from a pipe: the pipe holds
  // them until then (a few bytes, far below its capacity), and no other
  // process can read them from its command line or a file.
  int credentials[2];
  if (pipe2(credentials, O_CLOEXEC) != 0) {
    return Status::Error(std::string("cannot make a pipe for a worker: ") + std::strerror(errno));
  }
  const std::string handed = worker.identity + "\n" + worker.secret + "\n";
  const bool written = write(credentials[1], handed.data(), handed.size()) ==
                       static_cast<ssize_t>(handed.size());
  close(credentials[1]);
  if (!written) {
    close(credentials[0]);
    return Status::Error(std::string("cannot hand a worker its credentials: ") + std::strerror(errno));
  }
  const std::string supervisor_pid = std::to_string(getpid());
  const std::string slot = std::to_string(worker.slot);
  std::vector<const char*> argv = {worker_binary_.c_str(), worker_endpoint_.c_str(),
                                   worker.running_item->name().c_str(), supervisor_pid.c_str(),
                                   slot.c_str()};
  for (const std::string& plugin : pools_[worker.pool].config.plugins) argv.push_back(plugin.c_str());
  argv.push_back(nullptr);
  const rlim_t memory_limit = pools_[worker.pool].config.memory_limit;
  const pid_t pid = fork();
  if (pid < 0) {
    close(credentials[0]);
    return Status::Error(std::string("cannot fork a worker: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (credentials[0] == kWorkerCredentialsFd) {
      fcntl(kWorkerCredentialsFd, F_SETFD, 0);
    } else {
      dup2(credentials[0], kWorkerCredentialsFd);
    }
    close_range(kWorkerCredentialsFd + 1, ~0U, 0);
    if (memory_limit > 0) {
      const rlimit limit{memory_limit, memory_limit};
      setrlimit(RLIMIT_AS, &limit);
    }
    execv(argv[0], const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  close(credentials[0]);
  worker.pid = pid;
  ++pools_[worker.pool].worker_starts;
  by_identity_[worker.identity] = &worker;
  by_pid_[pid] = &worker;
  JOBD_LOG(kDebug) << "started " << Describe(worker);
  return {};
}

Status Supervisor::WaitForWorkers(Clock::time_point deadline) {
  auto all_ready = [this] {
    for (const auto& [name, pool] : pools_) {
      for (const auto& worker : pool.workers) {
        if (!worker->ready) return false;
      }
    }
    return true;
  };
  while (!all_ready()) {
    const auto now = Clock::now();
    if (now >= deadline) {
      return Status::Error("workers did not start within " +
                           std::to_string(std::chrono::duration_cast<seconds>(kStartDeadline).count()) +
                           " s (see the log above for why)");
    }
    zmq::pollitem_t items[] = {{workers_.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, signal_fd_, ZMQ_POLLIN, 0}};
    // Wake for restarts too, so a worker that dies as it starts is seen to.
    zmq::poll(items, 2, std::min(std::chrono::duration_cast<milliseconds>(deadline - now),
                                 NextTimeout(now)));
    if (items[0].revents & ZMQ_POLLIN) HandleWorkerMessages();
    if (items[1].revents & ZMQ_POLLIN) HandleSignals();
    if (shutting_down_) return Status::Error("interrupted while starting workers");
    HandleTimers(Clock::now());
    for (const auto& [name, pool] : pools_) {
      for (const auto& worker : pool.workers) {
        if (worker->restarts >= 3 && !worker->ready) {
          return Status::Error("workers of pool '" + name + "' die as they start (" +
                               worker_binary_ + "); see the log above");
        }
      }
    }
  }
  return {};
}

std::string Supervisor::Describe(const Worker& worker, pid_t pid) {
  return "worker " + std::to_string(worker.slot) + " of pool " + worker.pool + " (pid " +
         std::to_string(pid != 0 ? pid : worker.pid) + ")";
}

Supervisor::Worker* Supervisor::FindWorker(const std::string& identity) {
  auto found = by_identity_.find(identity);
  return found == by_identity_.end() ? nullptr : found->second;
}

// ------------------------------------------------------------------ the loop

int Supervisor::Run() {
  notifier_.Ready(ServiceStatus());
  while (!(shutting_down_ && Drained())) {
    const auto now = Clock::now();
    std::vector<zmq::pollitem_t> items = {
        {workers_.handle(), 0, ZMQ_POLLIN, 0},
        {clients_.handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, signal_fd_, ZMQ_POLLIN, 0},
        {remote_ ? remote_->socket().handle() : nullptr, -1, ZMQ_POLLIN, 0},
        {remote_ ? remote_->zap().handle() : nullptr, -1, ZMQ_POLLIN, 0},
        {remote_ ? remote_->monitor().handle() : nullptr, -1, ZMQ_POLLIN, 0},
        {head_ ? head_->socket().handle() : nullptr, -1, ZMQ_POLLIN, 0}};
    constexpr size_t kMetricsItems = 7;  // where the metrics endpoint's begin
    if (metrics_) metrics_->AddPollItems(items);
    zmq::poll(items, NextTimeout(now));
    if (metrics_) metrics_->Handle(&items[kMetricsItems], [this] { return MetricsText(); });
    if (items[0].revents & ZMQ_POLLIN) HandleWorkerMessages();
    if (items[1].revents & ZMQ_POLLIN) HandleClientMessages(false);
    if (items[2].revents & ZMQ_POLLIN) HandleSignals();
    if (remote_) {
      if (items[4].revents & ZMQ_POLLIN) remote_->HandleZap();
      if (items[5].revents & ZMQ_POLLIN) remote_->HandleMonitor();
      if (items[3].revents & ZMQ_POLLIN) HandleClientMessages(true);
    }
    if (head_ && (items[6].revents & ZMQ_POLLIN)) HandleHeadMessages();
    HandleTimers(Clock::now());
    Dispatch();
    FlushResults();
    FlushHeadReport();
  }
  JOBD_LOG(kInfo) << "stopped";
  return 0;
}

std::chrono::milliseconds Supervisor::NextTimeout(Clock::time_point now) const {
  Clock::time_point next = std::min(next_liveness_check_, next_timeout_check_);
  for (const Respawn& respawn : respawns_) next = std::min(next, respawn.at);
  if (const auto delayed = scheduler_.NextDelayed()) next = std::min(next, *delayed);
  if (shutting_down_) next = std::min(next, workers_stopping_ ? kill_deadline_ : drain_deadline_);
  if (const auto watchdog = notifier_.NextWatchdog()) next = std::min(next, *watchdog);
  const auto wait = std::chrono::duration_cast<milliseconds>(next - now) + milliseconds(1);
  return std::clamp(wait, milliseconds(0), milliseconds(1000));
}

void Supervisor::HandleWorkerMessages() {
  wire::FromWorker message;
  // Bounded, so that clients are served between bursts of results.
  for (int i = 0; i < 1024; ++i) {
    zmq::message_t identity;
    zmq::message_t body;
    if (!workers_.recv(identity, zmq::recv_flags::dontwait)) return;
    if (!identity.more() || !workers_.recv(body, zmq::recv_flags::none)) continue;
    while (body.more()) {  // a worker sends one frame; drop any extras
      zmq::message_t extra;
      (void)workers_.recv(extra, zmq::recv_flags::none);
      body.move(extra);
    }
    const std::optional<ucred> sender = PeerOf(body);
    // Described only for a refusal that is logged (a user name is a lookup).
    auto from = [&] {
      return sender ? "pid " + std::to_string(sender->pid) + ", " + DescribeUser(sender->uid)
                    : std::string("a sender the kernel does not name");
    };
    const bool decoded = DecodeFromWorker(body.to_string_view(), &message).ok();
    Worker* worker = FindWorker(identity.to_string());
    if (worker == nullptr) {
      // A worker that died before its messages were read (results, or a
      // Hello after a start deadline) is let go quietly; anything else on an
      // unknown routing id is someone posing as a worker.
      const bool late = std::find(departed_.begin(), departed_.end(), identity.to_string()) !=
                        departed_.end();
      if (!late && (!decoded || message.has_hello())) {
        RefuseWorkerMessage([&] {
          return (decoded ? "a Hello from " : "a message from ") + from() +
                 ", which is not a worker this jobd started";
        });
      }
      continue;
    }
    const Admission admission = AdmitWorkerMessage(
        {worker->pid, getuid(), worker->secret, worker->ready}, sender, decoded ? &message : nullptr);
    if (!admission.take) {
      RefuseWorkerMessage([&] {
        return admission.why + " from " + from() +
               (admission.replace ? "; replacing " + Describe(*worker) : "");
      });
      if (admission.replace) kill(worker->pid, SIGKILL);
      continue;
    }
    if (message.has_hello()) {
      worker->ready = true;
      PoolState& pool = pools_[worker->pool];
      // The newest worker runs the pool's current plugins.
      if (worker->key > pool.functions_from) {
        *pool.functions.mutable_functions() = message.hello().functions();
        pool.functions_from = worker->key;
      }
      if (pool.previous && worker->key > pool.replaced_after) {
        JOBD_LOG(kInfo) << "pool '" << worker->pool << "': workers with the new settings are ready";
        pool.previous.reset();
        pool.failed_starts = 0;
      }
      JOBD_LOG(kDebug) << Describe(*worker) << " is ready";
      StopIfDone(*worker);
      continue;
    }
    for (wire::TaskResult& result : *message.mutable_results()->mutable_results()) {
      // Tasks finish in the order they were sent; anything else is not ours.
      if (worker->tasks.empty() || worker->tasks.front() != result.id()) {
        JOBD_LOG(kWarn) << Describe(*worker) << " returned unexpected task "
                        << result.id();
        continue;
      }
      Untrack(*worker, result.id());
      pools_[worker->pool].moved.Count(result);
      worker->tasks.pop_front();
      ++worker->tasks_done;
      ++worker->tasks_this_life;
      if (!ReportHeadTask(result)) scheduler_.Complete(result.id(), result);
    }
    StopIfDone(*worker);
  }
}

void Supervisor::HandleClientMessages(bool remote) {
  zmq::socket_t& socket = remote ? remote_->socket() : clients_;
  for (int i = 0; i < 256; ++i) {
    zmq::message_t identity;
    if (!socket.recv(identity, zmq::recv_flags::dontwait)) return;
    std::vector<zmq::message_t> frames;
    bool more = identity.more();
    while (more) {
      zmq::message_t frame;
      if (!socket.recv(frame, zmq::recv_flags::none)) break;
      more = frame.more();
      frames.push_back(std::move(frame));
    }
    // A client is known by its socket and its routing id there.
    const std::string client = (remote ? kRemoteClient : kLocalClient) + identity.to_string();
    if (frames.size() != 1) {
      ReplyError(client, "malformed request: expected 1 frame, got " +
                             std::to_string(frames.size()) + " (use the jobd client library)");
      continue;
    }
    HandleRequest(client, frames[0]);
  }
}

void Supervisor::RefuseWorkerMessage(const std::function<std::string()>& why) {
  refusals_.Warn([&] { return "workers' socket: refused " + why(); });
}

void Supervisor::HandleRequest(const std::string& client, const zmq::message_t& body) {
  // A remote client proved itself with the cluster's key (RemoteListener);
  // no kernel names it.
  const bool remote = client[0] == kRemoteClient;
  // Only our own user gets in, whatever the socket's permissions say.
  const std::optional<ucred> sender = remote ? ucred{0, getuid(), getgid()} : PeerOf(body);
  if (!sender) {
    JOBD_LOG(kWarn) << "refused a request whose sender the kernel does not name";
    ReplyError(client, "refused: jobd cannot tell who sent this request; use the jobd client "
                       "library or jobctl");
    return;
  }
  if (sender->uid != getuid()) {
    JOBD_LOG(kWarn) << "refused a request from uid " << sender->uid << " (pid " << sender->pid
                    << "): this jobd serves uid " << getuid() << " only";
    ReplyError(client, "this jobd serves uid " + std::to_string(getuid()) +
                           " only; start your own with `jobd --detach`");
    return;
  }
  const pid_t sender_pid = sender->pid;
  wire::Request request;
  if (Status s = DecodeRequest(body.to_string_view(), &request); !s.ok()) {
    JOBD_LOG(kWarn) << "refused a request: " << s.message();
    ReplyError(client, s.message());
    return;
  }
  wire::Reply reply;
  switch (request.kind_case()) {
    case wire::Request::kPing:
      reply.mutable_pong()->set_pid(static_cast<uint32_t>(getpid()));
      reply.mutable_pong()->set_version(JOBD_VERSION);
      reply.mutable_pong()->set_default_pool(config_.default_pool);
      for (const auto& [name, pool] : pools_) {
        if (pool.removed) continue;
        (*reply.mutable_pong()->mutable_pool_workers())[name] = static_cast<uint32_t>(
            std::count_if(pool.workers.begin(), pool.workers.end(),
                          [](const auto& w) { return w->fate == Fate::kServe; }));
      }
      Reply(client, reply);
      return;
    case wire::Request::kStatus:
      *reply.mutable_status() = BuildStatus();
      Reply(client, reply);
      return;
    case wire::Request::kFunctions:
      for (const auto& [name, pool] : pools_) {
        if (!pool.removed) *reply.mutable_functions()->add_pools() = pool.functions;
      }
      Reply(client, reply);
      return;
    case wire::Request::kShutdown:
      reply.mutable_shutdown()->set_running_jobs(static_cast<uint32_t>(scheduler_.jobs().size()));
      Reply(client, reply);
      BeginShutdown("shutdown requested by a client");
      return;
    case wire::Request::kSubmit:
      Submit(client, sender_pid, *request.mutable_submit());
      return;
    case wire::Request::kItems: {
      wire::Items& items = *request.mutable_items();
      Job* job = scheduler_.FindJob(items.job());
      if (job == nullptr || !job->From(client, sender_pid)) {
        ReplyError(client, "no job " + std::to_string(items.job()) + " of yours is running",
                   items.job());
        return;
      }
      if (Status s = scheduler_.AddItems(*job, items); !s.ok()) {
        EndJob(job->id, s.message());
      }
      return;
    }
    case wire::Request::kCancel: {
      Job* job = scheduler_.FindJob(request.cancel().job());
      if (job == nullptr) {
        ReplyError(client, "no job " + std::to_string(request.cancel().job()) +
                               " is running (see `jobctl status`)");
        return;
      }
      const std::string who = "cancelled by `jobctl cancel` (pid " + std::to_string(sender_pid) + ")";
      JOBD_LOG(kInfo) << "job " << job->id << " " << who << " after " << job->done() << " of "
                      << job->received << " items";
      const uint64_t id = job->id;
      reply.mutable_cancelled()->set_job(id);
      reply.mutable_cancelled()->set_done(job->done());
      reply.mutable_cancelled()->set_received(job->received);
      // If its client is gone, this reply ends its jobs: `job` may be gone after it.
      ReplyError(job->spec.client, "job " + std::to_string(id) + " was " + who, id);
      CancelJob(id, JobEnding::kCancelled, who);
      Reply(client, reply);
      return;
    }
    case wire::Request::kRelease: {
      Job* job = scheduler_.FindJob(request.release().job());
      if (job == nullptr || !job->From(client, sender_pid)) return;
      if (!job->ended) {
        JOBD_LOG(kInfo) << "job " << job->id << " cancelled by its client after " << job->done()
                        << " of " << job->received << " items";
      }
      CancelJob(job->id, job->ended ? JobEnding::kDone : JobEnding::kCancelled,
                job->ended ? "" : "cancelled by its client");
      return;
    }
    case wire::Request::kMetrics:
      reply.mutable_metrics()->set_text(MetricsText());
      Reply(client, reply);
      return;
    case wire::Request::kJobs:
      *reply.mutable_jobs() = ListJobs(request.jobs().job());
      Reply(client, reply);
      return;
    case wire::Request::kNodeHello:
      if (!remote) {
        ReplyError(client, "a node joins on the cluster endpoint (jobd join --cluster-file)");
        return;
      }
      HandleNodeHello(client, request.node_hello());
      return;
    case wire::Request::kNodeReport:
      HandleNodeReport(client, *request.mutable_node_report());
      return;
    default:
      ReplyError(client, "unsupported request");
  }
}

void Supervisor::Submit(const std::string& client, pid_t sender_pid, wire::Submit& submit) {
  if (shutting_down_) {
    ReplyError(client, "jobd is shutting down and accepts no new jobs; start it again with `jobd`");
    return;
  }
  const std::string pool_name = submit.pool().empty() ? config_.default_pool : submit.pool();
  auto pool = pools_.find(pool_name);
  if (pool == pools_.end() || pool->second.removed) {
    std::string names;
    for (const PoolConfig& p : config_.pools) names += (names.empty() ? "" : ", ") + p.name;
    ReplyError(client, "unknown pool '" + pool_name + "'; this jobd has: " + names);
    return;
  }
  if (!pool->second.degraded.empty()) {
    ReplyError(client, pool->second.degraded);
    return;
  }
  const std::string kind = submit.has_python()            ? "python"
                          : !submit.has_exec()             ? (submit.plugin().empty() ? "function" : "plugin")
                          : submit.exec().mode() == wire::Exec::PER_ITEM ? "exec"
                                                                         : "stream";
  const PoolConfig& pool_config = pool->second.config;
  if (!pool_config.Accepts(kind)) {
    std::string kinds;
    for (const std::string& k : pool_config.kinds) kinds += (kinds.empty() ? "" : ", ") + k;
    ReplyError(client, "pool '" + pool_name + "' does not run " + kind + " jobs (it runs: " +
                           kinds + "; see its `kinds:` in the config)");
    return;
  }
  const auto& offered = pool->second.functions.functions();
  // A job's own plugin is checked by the workers that load it; so is every
  // function while a reload brings the pool's workers (no list is sure yet).
  const bool settled = pool->second.functions_from != 0 && !pool->second.previous;
  const bool known = submit.has_exec() || submit.has_python() || !submit.plugin().empty() || !settled ||
                     std::any_of(offered.begin(), offered.end(), [&](const wire::FunctionInfo& f) {
                       return f.name() == submit.function();
                     });
  if (!known) {
    std::string names;
    for (const wire::FunctionInfo& f : offered) names += (names.empty() ? "" : ", ") + f.name();
    ReplyError(client, "unknown function '" + submit.function() + "' in pool '" + pool_name +
                           "'; it offers: " + names + " (see `jobctl functions`)");
    return;
  }
  JobSpec spec;
  spec.client = client;
  spec.client_pid = sender_pid;
  spec.remote = client[0] == kRemoteClient;
  spec.client_uid = getuid();  // (jobd serves no other user)
  if (!spec.remote) spec.client_command = CommandLineOf(sender_pid);
  spec.function = submit.function();
  spec.pool = pool_name;
  spec.chunksize = submit.chunksize();
  spec.max_workers = submit.max_workers();
  if (submit.has_exec()) {
    SetNodeVariable(submit.mutable_exec()->mutable_environment(), config_.node_name);
    spec.exec = std::make_shared<const wire::Exec>(submit.exec());
  }
  if (submit.has_python()) {
    SetNodeVariable(submit.mutable_python()->mutable_environment(), config_.node_name);
    spec.python = std::make_shared<const wire::Python>(submit.python());
  }
  spec.cost_key = CostKey(submit);
  spec.metric_function = submit.has_exec()
                             ? (submit.exec().mode() == wire::Exec::PER_ITEM ? "exec" : "stream")
                         : submit.has_python() ? "python"
                                               : submit.function();
  spec.plugin = submit.plugin();
  spec.starmap = submit.starmap();
  spec.read_files = submit.read_files();
  // A job may ask for less than its pool allows, never more.
  const PoolConfig& limits = pool->second.config;
  spec.retries = submit.has_retries() ? std::min(submit.retries(), limits.retries) : limits.retries;
  spec.timeout_ms = limits.task_timeout_ms;
  spec.retry_backoff_ms = limits.retry_backoff_ms;
  if (submit.has_timeout_ms() && submit.timeout_ms() > 0) {
    spec.timeout_ms = spec.timeout_ms == 0 ? submit.timeout_ms()
                                           : std::min(spec.timeout_ms, submit.timeout_ms());
  }
  Job& job = scheduler_.AddJob(std::move(spec), Clock::now());
  job.started_unix = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  JOBD_LOG(kInfo) << "job " << job.id << ": " << JobLabel(job.spec) << " on pool " << pool_name
                  << (job.spec.remote ? std::string(" for a client on the cluster endpoint")
                                      : " for pid " + std::to_string(job.spec.client_pid));
  const uint64_t id = job.id;
  wire::Reply reply;
  reply.mutable_accepted()->set_job(id);
  reply.mutable_accepted()->set_pool(pool_name);
  Reply(client, reply);
  // A client gone before its job was accepted (the reply could not be sent)
  // took the job with it.
  Job* accepted = scheduler_.FindJob(id);
  if (accepted != nullptr && submit.has_items()) {
    submit.mutable_items()->set_job(id);
    if (Status s = scheduler_.AddItems(*accepted, *submit.mutable_items()); !s.ok()) {
      EndJob(id, s.message());
    }
  }
}

void Supervisor::Dispatch() {
  std::map<Worker*, wire::ToWorker> batches;
  std::map<Worker*, size_t> batch_bytes;
  std::vector<std::unique_ptr<wire::Task>> sent_head_tasks;  // lent to batches until sent
  for (auto& [name, pool] : pools_) {
    const size_t size = NodeWorkers(name) +
                        std::count_if(pool.workers.begin(), pool.workers.end(),
                                      [](const auto& w) { return w->fate == Fate::kServe; });
    // Rounds of one task per worker with credit, until no worker takes one;
    // in each, the workers that hold the least go first: an item that comes
    // alone goes to an idle worker, never to the back of a busy one's queue.
    std::vector<Worker*> order;
    order.reserve(pool.workers.size());
    for (auto& worker : pool.workers) order.push_back(worker.get());
    bool gave = true;
    while (gave) {
      gave = false;
      std::stable_sort(order.begin(), order.end(), [](const Worker* a, const Worker* b) {
        return std::pair(a->tasks.size(), a->estimate_ns) < std::pair(b->tasks.size(), b->estimate_ns);
      });
      uint64_t queued = scheduler_.QueuedItems(name);  // less what this round takes
      for (Worker* worker : order) {
        if (!worker->ready || !HasCredit(*worker, pool.config, queued > size) ||
            batch_bytes[worker] >= kMaxBatchBytes) {
          continue;
        }
        const Task* task = scheduler_.NextTask(name, size, worker->key);
        // A node runs its head's tasks on workers that hold nothing else.
        std::unique_ptr<wire::Task> head_task =
            task == nullptr && worker->tasks.empty() ? TakeHeadTask(name) : nullptr;
        if (task == nullptr && head_task == nullptr) continue;
        if (head_task != nullptr) {  // a node runs its head's tasks after its own
          worker->tasks.push_back(head_task->id());
          ++worker->unestimated;  // (so the worker holds no second one meanwhile)
          auto [batch, fresh] = batches.try_emplace(worker);
          if (fresh) batch->second.set_version(wire::VERSION_CURRENT);
          batch_bytes[worker] += head_task->ByteSizeLong();
          pool.moved.Count(*head_task);
          batch->second.mutable_tasks()->mutable_tasks()->AddAllocated(head_task.get());
          sent_head_tasks.push_back(std::move(head_task));
          gave = true;
          continue;
        }
        batch_bytes[worker] += task->bytes;
        queued -= std::min<uint64_t>(queued, task->indexes.size());
        pool.moved.Count(*task->message);
        worker->tasks.push_back(task->message->id());
        worker->estimate_ns += task->estimate_ns;
        worker->unestimated += task->estimate_ns == 0;
        auto [batch, fresh] = batches.try_emplace(worker);
        if (fresh) batch->second.set_version(wire::VERSION_CURRENT);
        // Lent to the batch for serialisation, taken back below: no copy.
        batch->second.mutable_tasks()->mutable_tasks()->AddAllocated(task->message.get());
        gave = true;
      }
    }
  }
  for (auto& [worker, batch] : batches) {
    zmq::message_t bytes = Encode(batch);
    auto* tasks = batch.mutable_tasks()->mutable_tasks();
    while (!tasks->empty()) static_cast<void>(tasks->ReleaseLast());
    workers_.send(zmq::buffer(worker->identity), zmq::send_flags::sndmore);
    workers_.send(bytes, zmq::send_flags::none);
  }
  DispatchToNodes();
}

bool Supervisor::HasCredit(const Worker& worker, const PoolConfig& pool,
                           bool plenty_queued) const {
  const size_t held = worker.tasks.size();
  const uint32_t max_tasks = pool.max_tasks_per_worker;
  if (worker.fate != Fate::kServe || worker.stop_sent ||
      (max_tasks > 0 && worker.tasks_this_life + held >= max_tasks)) {
    return false;
  }
  if (held == 0) return true;
  if (worker.unestimated > 0) return false;
  if (held < kMaxCredit && worker.estimate_ns < uint64_t{pool.credit_window_ms} * 1'000'000) {
    return true;
  }
  // One task ahead (prefetch), so that the worker starts it as it sends the
  // results of the one it runs, instead of idling for the round trip to
  // jobd: only for short tasks, and while the pool has more items queued
  // than workers, so that at a job's tail an idle worker finds work in the
  // queue, not held by a busy one.
  return held == 1 && pool.credit_window_ms > 0 && worker.estimate_ns < kPrefetchBelowNs &&
         plenty_queued;
}

void Supervisor::Untrack(Worker& worker, uint64_t task_id) {
  if (const Task* task = scheduler_.FindTask(task_id)) {
    worker.estimate_ns -= task->estimate_ns;
    worker.unestimated -= task->estimate_ns == 0;
  } else if (head_tasks_.count(task_id) > 0) {
    --worker.unestimated;
  }
}

void Supervisor::FlushResults() {
  for (auto& [job_id, results] : scheduler_.TakeResults()) {
    const Job* job = scheduler_.FindJob(job_id);
    if (job == nullptr) continue;
    wire::Reply reply;
    *reply.mutable_results() = std::move(results);
    Reply(job->spec.client, reply);
  }
  for (uint64_t job_id : scheduler_.TakeFinished()) {
    Job* job = scheduler_.FindJob(job_id);
    if (job == nullptr || job->ended) continue;
    job->ended = true;
    JOBD_LOG(kInfo) << "job " << job->id << " done: " << job->received << " items, "
                    << job->succeeded << " succeeded, " << job->failed << " failed, "
                    << job->retried << " re-queued after a worker or node was lost, in "
                    << SecondsSince(job->started) << " s";
    wire::Reply reply;
    wire::JobEnd* end = reply.mutable_end();
    end->set_job(job->id);
    end->set_succeeded(job->succeeded);
    end->set_failed(job->failed);
    end->set_retried(job->retried);
    Reply(job->spec.client, reply);
  }
}

void Supervisor::EndJob(uint64_t job_id, const std::string& why) {
  Job* job = scheduler_.FindJob(job_id);
  if (job == nullptr) return;
  JOBD_LOG(kWarn) << "job " << job_id << " ended early: " << why;
  ReplyError(job->spec.client, why, job_id);
  CancelJob(job_id, JobEnding::kFailed, why);
}

void Supervisor::CancelJob(uint64_t job_id, JobEnding ending, const std::string& why) {
  // Its workers skip its remaining items, and what runs for it stops now;
  // other work of those workers goes on. A job that ended runs nothing (its
  // last coprocess may be a warm interpreter, kept for the next job).
  const Job* job = scheduler_.FindJob(job_id);
  if (job != nullptr && !job->ended) {
    StopOnWorkers(job_id, [&](uint64_t id) {
      const Task* task = scheduler_.FindTask(id);
      return task != nullptr && task->job == job_id;
    });
  }
  CancelOnNodes(job_id);
  if (job != nullptr) {
    Job& ended = *scheduler_.FindJob(job_id);
    ended.error = why;
    if (auto pool = pools_.find(ended.spec.pool); pool != pools_.end() && ending == JobEnding::kDone) {
      pool->second.job_seconds.Observe(SecondsSince(ended.started));
    }
    history_.Add(RecordOf(ended, ending, /*errors=*/true));
  }
  scheduler_.EraseJob(job_id);
}

void Supervisor::StopOnWorkers(uint64_t job, const std::function<bool(uint64_t task)>& of_job) {
  for (auto& [name, pool] : pools_) {
    for (auto& worker : pool.workers) {
      if (worker->pid == 0) continue;
      auto* page = reinterpret_cast<RunningItem*>(worker->running_item->data());
      if (std::any_of(worker->tasks.begin(), worker->tasks.end(), of_job)) {
        page->cancelled_job.store(job, std::memory_order_relaxed);
      }
      if (of_job(page->task.load(std::memory_order_relaxed))) {
        if (const pid_t pgid = page->command.load(std::memory_order_relaxed); pgid > 0) {
          killpg(pgid, SIGKILL);
        }
      }
      if (page->coprocess_job.load(std::memory_order_relaxed) == job) {
        if (const pid_t pgid = page->coprocess.load(std::memory_order_relaxed); pgid > 0) {
          killpg(pgid, SIGKILL);
        }
      }
    }
  }
}

void Supervisor::Reply(const std::string& client, const wire::Reply& reply) {
  zmq::message_t bytes = Encode(reply);
  zmq::socket_t& socket = client[0] == kRemoteClient ? remote_->socket() : clients_;
  try {
    socket.send(zmq::buffer(std::string_view(client).substr(1)), zmq::send_flags::sndmore);
    socket.send(bytes, zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    // The client is gone: its jobs go with it. (`client` may belong to one
    // of them, so it is copied before any is erased.)
    const std::string gone = client;
    std::vector<uint64_t> orphaned;
    for (const auto& [id, job] : scheduler_.jobs()) {
      if (job.spec.client == gone) orphaned.push_back(id);
    }
    for (uint64_t id : orphaned) {
      JOBD_LOG(kInfo) << "job " << id << " cancelled: its client disconnected";
      CancelJob(id, JobEnding::kCancelled, "its client disconnected");
    }
  }
}

void Supervisor::ReplyError(const std::string& client, const std::string& message, uint64_t job) {
  wire::Reply reply;
  reply.mutable_error()->set_message(message);
  reply.mutable_error()->set_job(job);
  Reply(client, reply);
}

// ------------------------------------------------------- signals and workers

void Supervisor::HandleSignals() {
  signalfd_siginfo info{};
  while (read(signal_fd_, &info, sizeof info) == sizeof info) {
    switch (info.ssi_signo) {
      case SIGCHLD: {
        int wait_status = 0;
        pid_t pid;
        while ((pid = waitpid(-1, &wait_status, WNOHANG)) > 0) Reap(pid, wait_status);
        break;
      }
      case SIGTERM:
      case SIGINT:
        BeginShutdown(SignalName(static_cast<int>(info.ssi_signo)) + " received");
        break;
      case SIGHUP:
        Reload();
        break;
    }
  }
}

void Supervisor::ReopenLogFile() {
  if (config_.log_file.empty()) return;
  Result<UniqueFd> log = OpenOwnFile(config_.log_file, O_WRONLY | O_APPEND);
  if (!log.ok()) {
    JOBD_LOG(kError) << "SIGHUP: cannot reopen the log file, logging on to the old one: "
                     << log.message();
    return;
  }
  dup2(log->get(), STDERR_FILENO);
}

void Supervisor::Reload() {
  const std::string source = config_path_.empty() ? "the embedded default config" : config_path_;
  if (shutting_down_) {
    JOBD_LOG(kWarn) << "SIGHUP ignored: jobd is shutting down";
    return;
  }
  notifier_.Reloading();
  ReopenLogFile();
  // However the reload ends, systemd hears that jobd serves again.
  struct ReadyAgain {
    Supervisor& supervisor;
    ~ReadyAgain() { supervisor.notifier_.Ready(supervisor.ServiceStatus()); }
  } ready_again{*this};
  Result<Config> loaded = config_path_.empty()
                              ? ParseConfig(DefaultConfigText(), "<default config>")
                              : LoadConfigFile(config_path_);
  if (!loaded.ok()) {
    JOBD_LOG(kError) << "SIGHUP: not reloading, the current configuration stays: "
                     << loaded.message();
    return;
  }
  Config config = std::move(loaded).value();
  if (overrides_) overrides_(config);
  std::vector<std::string> changes;
  if (config.listen != config_.listen) {
    changes.push_back("listen stays " + config_.listen + " until jobd restarts");
    config.listen = config_.listen;
  }
  if (config.log_level != config_.log_level) {
    SetLogLevel(config.log_level);
    changes.push_back("log_level changed");
  }
  if (config.default_pool != config_.default_pool) {
    changes.push_back("default_pool is now " + config.default_pool);
  }
  for (const PoolConfig& pool_config : config.pools) {
    auto [found, added] = pools_.try_emplace(pool_config.name);
    PoolState& pool = found->second;
    const std::string name = "pool '" + pool_config.name + "'";
    if (added) {
      pool.config = pool_config;
      pool.functions.set_name(pool_config.name);
      changes.push_back(name + " added with " + std::to_string(pool_config.workers) + " workers");
    } else {
      const uint32_t serving = static_cast<uint32_t>(std::count_if(
          pool.workers.begin(), pool.workers.end(),
          [](const auto& w) { return w->fate != Fate::kLeave; }));
      if (pool.removed) changes.push_back(name + " kept");
      if (serving != pool_config.workers) {
        changes.push_back(name + ": " + std::to_string(serving) + " -> " +
                          std::to_string(pool_config.workers) + " workers");
      }
      const bool replace = pool_config.NeedsNewWorkers(pool.config);
      if (replace && !pool.previous) pool.previous = pool.config;
      if (replace) pool.replaced_after = generation_;
      pool.config = pool_config;
      pool.removed = false;
      if (replace) {
        changes.push_back(name + ": workers replaced as they finish (new plugins or memory_limit)");
      }
      for (auto& worker : pool.workers) {
        if (replace && worker->fate == Fate::kServe) worker->fate = Fate::kReplace;
        StopIfDone(*worker);  // also those past a lower max_tasks_per_worker
      }
    }
    Resize(pool, pool_config.workers);
  }
  for (auto& [name, pool] : pools_) {
    if (pool.removed || config.FindPool(name) != nullptr) continue;
    pool.removed = true;
    changes.push_back("pool '" + name + "' removed (its workers go once its jobs end)");
  }
  config_ = std::move(config);
  history_.set_capacity(config_.job_history);
  std::string summary;
  for (const std::string& change : changes) summary += (summary.empty() ? "" : "; ") + change;
  JOBD_LOG(kInfo) << "SIGHUP: reloaded " << source << ": "
                  << (summary.empty() ? "no change to pools" : summary);
  GreetHead();
}

void Supervisor::Resize(PoolState& pool, uint32_t count) {
  // A resting (degraded) pool starts nothing before its rest is over.
  const auto now = pool.degraded.empty() ? Clock::now() : std::max(Clock::now(), pool.degraded_until);
  for (uint32_t slot = 0; slot < std::max<size_t>(count, pool.workers.size()); ++slot) {
    if (slot >= pool.workers.size()) {
      auto worker = std::make_unique<Worker>();
      worker->slot = slot;
      worker->pool = pool.config.name;
      respawns_.push_back({now, worker.get()});
      pool.workers.push_back(std::move(worker));
      continue;
    }
    Worker& worker = *pool.workers[slot];
    if (slot < count && worker.fate == Fate::kLeave) {  // it stays after all
      worker.fate = Fate::kServe;
      if (worker.pid == 0) respawns_.push_back({now, &worker});
    } else if (slot >= count && worker.fate != Fate::kLeave) {
      worker.fate = Fate::kLeave;
      std::erase_if(respawns_, [&](const Respawn& r) { return r.worker == &worker; });
      StopIfDone(worker);
    }
  }
}

void Supervisor::StopIfDone(Worker& worker) {
  // Recycled once it has run its share.
  const uint32_t max_tasks = pools_[worker.pool].config.max_tasks_per_worker;
  if (max_tasks > 0 && worker.tasks_this_life >= max_tasks && worker.fate == Fate::kServe) {
    worker.fate = Fate::kReplace;
  }
  if (worker.pid == 0 || worker.fate == Fate::kServe || worker.stop_sent || !worker.ready ||
      !worker.tasks.empty()) {
    return;
  }
  worker.stop_sent = true;
  SendStop(worker);
}

void Supervisor::Compact() {
  for (auto it = pools_.begin(); it != pools_.end();) {
    auto& workers = it->second.workers;
    while (!workers.empty() && workers.back()->fate == Fate::kLeave && workers.back()->pid == 0) {
      workers.pop_back();
    }
    if (it->second.removed && workers.empty()) {
      JOBD_LOG(kInfo) << "pool '" << it->first << "' is gone";
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
}

void Supervisor::Reap(pid_t pid, int wait_status) {
  auto found = by_pid_.find(pid);
  if (found == by_pid_.end()) return;
  Worker& worker = *found->second;
  by_pid_.erase(found);
  by_identity_.erase(worker.identity);
  departed_.push_back(worker.identity);
  if (departed_.size() > kDepartedRemembered) departed_.pop_front();
  worker.pid = 0;

  const std::string how = DescribeExit(wait_status);
  // Which item was it running? The worker's own page says; check it against
  // what we gave it before believing it.
  const auto* page = reinterpret_cast<const RunningItem*>(worker.running_item->data());
  const uint64_t running_task = page->task.load(std::memory_order_relaxed);
  const uint32_t running_index = page->item.load(std::memory_order_relaxed);
  // Its commands die with it: a retry must not run beside an orphan.
  for (const auto* group : {&page->command, &page->coprocess}) {
    if (const pid_t pgid = group->load(std::memory_order_relaxed); pgid > 0) killpg(pgid, SIGKILL);
  }
  RemoveSegment(worker.running_item->name());
  worker.running_item.reset();

  const bool clean_exit = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
  const bool recycled = worker.stop_sent && clean_exit;
  if (recycled && worker.fate == Fate::kLeave) {
    JOBD_LOG(kDebug) << Describe(worker, pid) << " left its pool";
  } else if (recycled) {
    JOBD_LOG(kDebug) << Describe(worker, pid) << " recycled after "
                     << worker.tasks_this_life << " tasks";
  } else if (!(workers_stopping_ && clean_exit)) {
    JOBD_LOG(kWarn) << Describe(worker, pid) << " " << how
                    << (worker.tasks.empty() ? "" : "; re-queueing its tasks");
  }
  const std::string cause =
      worker.killed_because.empty() ? "the worker was " + how : worker.killed_because;
  worker.killed_because.clear();
  for (uint64_t task_id : worker.tasks) {
    std::optional<uint32_t> running;
    if (task_id == running_task) running = running_index;
    if (LoseHeadTask(task_id, running, cause)) continue;  // the head requeues it
    const Task* task = scheduler_.FindTask(task_id);
    if (task == nullptr || running_index >= task->indexes.size()) running.reset();
    scheduler_.Requeue(task_id, running, cause, Clock::now());
  }
  worker.tasks.clear();
  worker.estimate_ns = 0;
  worker.unestimated = 0;
  if (workers_stopping_) return;
  if (worker.fate == Fate::kLeave) {
    Compact();
    return;
  }
  const auto now = Clock::now();
  PoolState& pool = pools_[worker.pool];
  if (!worker.ready && pool.previous && worker.key > pool.replaced_after &&
      ++pool.failed_starts >= 3) {
    JOBD_LOG(kError) << "pool '" << worker.pool << "': workers with the reloaded settings die as "
                     << "they start (the last " << how << "; see the log above); going back to "
                     << "the settings before the reload";
    pool.config = *pool.previous;
    pool.previous.reset();
    pool.failed_starts = 0;
  }
  if (!recycled) {
    ++worker.restarts;
    CountDeath(pool, how, now);
  }
  auto at = now + (worker.ready ? Clock::duration::zero() : Clock::duration(kFailedStartBackoff));
  if (!pool.degraded.empty()) at = std::max(at, pool.degraded_until);
  worker.ready = false;
  respawns_.push_back({at, &worker});
}

void Supervisor::CountDeath(PoolState& pool, const std::string& how, Clock::time_point now) {
  const auto window = seconds(pool.config.restart_window_s);
  ++pool.worker_crashes;
  pool.deaths.push_back(now);
  while (!pool.deaths.empty() && pool.deaths.front() < now - window) pool.deaths.pop_front();
  if (!pool.degraded.empty() || pool.deaths.size() <= pool.config.max_restarts) return;
  pool.degraded = "pool '" + pool.config.name + "' is degraded: its workers died " +
                  std::to_string(pool.deaths.size()) + " times within " +
                  std::to_string(pool.config.restart_window_s) + " s (the last " + how +
                  "); it rests for " + std::to_string(pool.config.restart_window_s) +
                  " s and takes no jobs meanwhile";
  pool.degraded_until = now + window;
  JOBD_LOG(kError) << pool.degraded;
  std::vector<uint64_t> failing;
  for (const auto& [id, job] : scheduler_.jobs()) {
    if (job.spec.pool == pool.config.name) failing.push_back(id);
  }
  for (uint64_t id : failing) EndJob(id, pool.degraded);
  for (Respawn& respawn : respawns_) {
    if (respawn.worker->pool == pool.config.name) respawn.at = std::max(respawn.at, pool.degraded_until);
  }
}

void Supervisor::HandleTimers(Clock::time_point now) {
  for (auto& [name, pool] : pools_) {
    if (!pool.degraded.empty() && now >= pool.degraded_until) {
      JOBD_LOG(kInfo) << "pool '" << name << "' has rested; taking jobs again";
      pool.degraded.clear();
      pool.deaths.clear();
    }
    const std::string& pool_name = name;  // (clang 14 cannot capture a structured binding)
    const bool has_jobs = std::any_of(scheduler_.jobs().begin(), scheduler_.jobs().end(),
                                      [&](const auto& job) { return job.second.spec.pool == pool_name; });
    if (pool.removed && !has_jobs && !workers_stopping_) Resize(pool, 0);
  }
  Compact();
  scheduler_.ReleaseDelayed(now);
  std::vector<Respawn> due;
  auto split = std::partition(respawns_.begin(), respawns_.end(),
                              [&](const Respawn& r) { return r.at > now; });
  due.assign(split, respawns_.end());
  respawns_.erase(split, respawns_.end());
  for (const Respawn& respawn : due) {
    if (respawn.worker->fate == Fate::kLeave) continue;
    if (Status s = Spawn(*respawn.worker); !s.ok()) {
      JOBD_LOG(kError) << "cannot restart a worker: " << s.message() << "; retrying";
      respawns_.push_back({now + kFailedStartBackoff, respawn.worker});
    }
  }

  if (now >= next_timeout_check_) {
    next_timeout_check_ = now + kTimeoutCheckInterval;
    EnforceTimeouts();
  }
  // A jobd that did not run for a while (stopped, starved) cannot tell its
  // peers' silence from its own: their heartbeats wait unread. It counts
  // their silence from now.
  if (now - last_timers_ > kStalledAfter) {
    if (head_ || !nodes_.empty()) {
      JOBD_LOG(kWarn) << "this jobd did not run for " << SecondsSince(last_timers_)
                      << " s (stopped?); its peers' silence is counted from now";
    }
    for (auto& [client, node] : nodes_) node.last_heard = now;
    if (head_) head_->Restart(now);
  }
  last_timers_ = now;
  notifier_.Watchdog(now);
  CheckNodes(now);
  CheckHead(now);
  // The sweep at start is also for a client that died between creating a
  // segment and naming it to jobd while jobd runs.
  if (config_.reap_interval_ms > 0 && now >= next_reap_) {
    next_reap_ = now + milliseconds(config_.reap_interval_ms);
    ReapOrphans();
  }
  if (now >= next_liveness_check_) {
    next_liveness_check_ = now + kLivenessInterval;
    if (!shutting_down_) notifier_.Status(ServiceStatus());
    // What a burst of connections or a finished job freed goes back to the
    // system while jobd is idle: glibc would keep it (in the ZeroMQ I/O
    // thread's arena above all) for reuse that may never come.
    if (scheduler_.jobs().empty() && now >= next_trim_) {
      next_trim_ = now + kTrimInterval;
      malloc_trim(0);
    }
    if (!scheduler_.jobs().empty() || !head_tasks_.empty()) {  // a node's head's work counts
      last_job_seen_ = now;
    } else if (config_.idle_exit_ms > 0 && !shutting_down_ &&
               now - last_job_seen_ >= milliseconds(config_.idle_exit_ms)) {
      char idle[32];
      std::snprintf(idle, sizeof idle, "%g", config_.idle_exit_ms / 1000.0);
      BeginShutdown(std::string("no job for ") + idle + " s (idle_exit)");
    }
    std::vector<uint64_t> orphaned;
    for (const auto& [id, job] : scheduler_.jobs()) {
      if (job.spec.client_pid > 0 && kill(job.spec.client_pid, 0) != 0 && errno == ESRCH) {
        orphaned.push_back(id);
      }
    }
    for (uint64_t id : orphaned) {
      JOBD_LOG(kInfo) << "job " << id << " cancelled: its client (pid "
                      << scheduler_.FindJob(id)->spec.client_pid << ") has exited";
      CancelJob(id, JobEnding::kCancelled, "its client exited");
    }
  }

  if (!shutting_down_) return;
  // A node finishes the head's tasks its workers hold too (it took no more).
  if (!workers_stopping_ &&
      ((scheduler_.jobs().empty() && head_tasks_.empty()) || now >= drain_deadline_)) {
    std::vector<uint64_t> unfinished;
    for (const auto& [id, job] : scheduler_.jobs()) unfinished.push_back(id);
    for (uint64_t id : unfinished) {
      char deadline[32];
      std::snprintf(deadline, sizeof deadline, "%g", config_.drain_timeout_ms / 1000.0);
      EndJob(id, std::string("jobd stopped before the job finished (its shutdown deadline, "
                             "drain_timeout: ") + deadline + " s, passed)");
    }
    workers_stopping_ = true;
    kill_deadline_ = now + milliseconds(config_.stop_deadline_ms);
    respawns_.clear();
    for (auto& [name, pool] : pools_) {
      for (auto& worker : pool.workers) {
        if (worker->pid != 0) SendStop(*worker);
      }
    }
  }
  if (workers_stopping_ && now >= kill_deadline_) {
    for (auto& [name, pool] : pools_) {
      for (auto& worker : pool.workers) {
        if (worker->pid > 0) kill(worker->pid, SIGKILL);
      }
    }
  }
}

void Supervisor::SendStop(const Worker& worker) {
  wire::ToWorker stop;
  stop.set_version(wire::VERSION_CURRENT);
  stop.mutable_stop();
  workers_.send(zmq::buffer(worker.identity), zmq::send_flags::sndmore);
  workers_.send(Encode(stop), zmq::send_flags::none);
}

void Supervisor::EnforceTimeouts() {
  const uint64_t now = MonotonicNs();
  for (auto& [name, pool] : pools_) {
    for (auto& worker : pool.workers) {
      if (worker->pid == 0 || worker->tasks.empty() || !worker->killed_because.empty()) continue;
      const auto* page = reinterpret_cast<const RunningItem*>(worker->running_item->data());
      const uint64_t task_id = page->task.load(std::memory_order_relaxed);
      const Task* task = scheduler_.FindTask(task_id);
      const Job* job = task != nullptr ? scheduler_.FindJob(task->job) : nullptr;
      auto head_task = head_tasks_.find(task_id);  // a node runs its head's with its timeout
      const uint32_t timeout_ms = job != nullptr                ? job->spec.timeout_ms
                                  : head_task != head_tasks_.end() ? head_task->second.timeout_ms
                                                                   : 0;
      if (timeout_ms == 0) continue;
      const uint64_t started = page->item_started_ns.load(std::memory_order_relaxed);
      if (started == 0 || now - started < uint64_t{timeout_ms} * 1'000'000) continue;
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", timeout_ms / 1000.0);
      worker->killed_because = std::string("timed out after ") + limit + " s";
      JOBD_LOG(kWarn) << "job " << (job != nullptr ? job->id : head_task->second.job)
                      << ": an item ran past " << limit << " s; killing " << Describe(*worker);
      kill(worker->pid, SIGKILL);
    }
  }
}

void Supervisor::BeginShutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  drain_deadline_ = Clock::now() + milliseconds(config_.drain_timeout_ms);
  JOBD_LOG(kInfo) << why << ": draining " << scheduler_.jobs().size()
                  << " running jobs, accepting no new ones";
  notifier_.Stopping(why + ": draining " + std::to_string(scheduler_.jobs().size()) + " jobs");
  LeaveHead();
}

bool Supervisor::Drained() const {
  if (!workers_stopping_) return false;
  for (const auto& [name, pool] : pools_) {
    for (const auto& worker : pool.workers) {
      if (worker->pid > 0) return false;
    }
  }
  return true;
}

}  // namespace jobd
