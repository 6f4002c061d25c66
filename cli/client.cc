#include "jobd/client.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "common/args.h"
#include "common/packed.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/trusted_dir.h"
#include "common/cluster_file.h"
#include "common/random.h"
#include "common/wire.h"
#include "jobd.pb.h"

namespace jobd {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};

// Item bytes per Items message (inline or in shared memory): messages stay far
// below the size limit, and large items are sent as soon as they are read, so
// workers start while the client still reads.
constexpr size_t kMaxBatchBytes = 4 << 20;
// Inline bytes sent and not yet delivered, so that a window of large-ish items
// (up to the inline limit each) cannot make jobd hold much memory for a job.
constexpr size_t kMaxInflightBytes = 16 << 20;
// Shared-memory bytes of items sent and not yet delivered: enough to keep
// every worker busy, never the whole input (one item is always allowed).
constexpr size_t kMaxInflightSharedBytes = 256 << 20;
constexpr size_t kMaxBatchItems = 4096;
// The largest item sent to a jobd on another host: it travels inline, in a
// message within jobd's limit, after a batch that is not full yet.
constexpr size_t kMaxRemoteItemBytes =
    static_cast<size_t>(kMaxMessageBytes) - kMaxBatchBytes - (1 << 20);
constexpr auto kReplyTimeout = std::chrono::seconds(10);
// While a job runs and nothing arrives for this long, check the daemon lives
// (a head on another host is pinged).
constexpr auto kDaemonCheckInterval = std::chrono::seconds(2);
// A head on another host that sends nothing for this long, pings included, is lost.
constexpr auto kRemoteLostAfter = std::chrono::seconds(10);

std::string CurrentDirectory() {
  std::string cwd;
  if (char* dir = getcwd(nullptr, 0)) {
    cwd = dir;
    free(dir);
  }
  return cwd;
}

// `name` found on PATH as a shell would, or "" (not made canonical: a venv's
// interpreter is a symlink whose own path matters).
std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (const std::string& dir : SplitPathList(path ? path : "/usr/local/bin:/usr/bin:/bin")) {
    const std::string candidate = std::filesystem::absolute((dir.empty() ? "." : dir) + "/" + name).string();
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}


}  // namespace

// ---------------------------------------------------------------- sources

Result<bool> VectorSource::Read(ItemSink& sink, size_t max) {
  for (size_t n = 0; n < max && !sink.Full() && next_ < items_.size(); ++n) {
    if (jobd::Status s = sink.Add(items_[next_++]); !s.ok()) return s;
  }
  return next_ < items_.size();
}

bool DelimitedSource::Buffered() const {
  if (start_ >= buffer_.size()) return false;
  return eof_ || buffer_.find(delimiter_, std::max(start_, scanned_)) != std::string::npos;
}

Result<bool> DelimitedSource::Read(ItemSink& sink, size_t max) {
  size_t added = 0;
  // read() only when nothing is buffered, and at most once: the caller polls
  // the descriptor before calling again, so Read never blocks.
  bool did_read = Buffered();
  while (added < max && !sink.Full()) {
    // A long item arrives over many reads: each byte is scanned once.
    const size_t end = buffer_.find(delimiter_, std::max(start_, scanned_));
    if (end != std::string::npos) {
      if (jobd::Status s = sink.Add(std::string_view(buffer_).substr(start_, end - start_)); !s.ok()) {
        return s;
      }
      start_ = end + 1;
      ++added;
      continue;
    }
    if (eof_) {
      if (start_ < buffer_.size()) {  // a last item without a delimiter
        if (jobd::Status s = sink.Add(std::string_view(buffer_).substr(start_)); !s.ok()) return s;
        start_ = buffer_.size();
      }
      return false;
    }
    scanned_ = buffer_.size();
    if (did_read) return true;
    did_read = true;
    buffer_.erase(0, start_);
    scanned_ -= start_;
    start_ = 0;
    // Reads grow with the item that is being read, so a long one takes few.
    const size_t old_size = buffer_.size();
    const size_t chunk = std::max<size_t>(1 << 20, old_size);
    buffer_.resize(old_size + chunk);
    const ssize_t n = read(fd_, buffer_.data() + old_size, chunk);
    const int error = errno;
    buffer_.resize(old_size + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && error == EINTR) return true;  // the caller checks for Ctrl-C and comes back
    if (n < 0) {
      return jobd::Status::Error(std::string("cannot read the input: ") + std::strerror(error));
    }
    eof_ = n == 0;
  }
  return true;
}

namespace {
// A table's line without the CR of a CRLF ending (a file from Windows or a
// spreadsheet): the CR would otherwise end up in the last argument, unseen.
std::string_view WithoutCarriageReturn(std::string_view line) {
  return !line.empty() && line.back() == '\r' ? line.substr(0, line.size() - 1) : line;
}
}  // namespace

TsvSource::TsvSource(int fd, std::vector<std::string> constants)
    : lines_(fd, '\n'), constants_(std::move(constants)) {}

Result<bool> TsvSource::Read(ItemSink& sink, size_t max) {
  // Each line becomes the tuple: the constants, then its columns.
  struct Split : ItemSink {
    TsvSource& source;
    ItemSink& target;
    Split(TsvSource& s, ItemSink& t) : source(s), target(t) {}
    jobd::Status Add(std::string_view line) override {
      ++source.line_;
      line = WithoutCarriageReturn(line);
      std::vector<std::string_view> args(source.constants_.begin(), source.constants_.end());
      for (size_t start = 0;;) {
        const size_t tab = line.find('\t', start);
        args.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
        if (tab == std::string_view::npos) break;
        start = tab + 1;
      }
      const size_t columns = args.size() - source.constants_.size();
      if (source.columns_ == 0) source.columns_ = columns;
      if (columns != source.columns_) {
        return jobd::Status::Error("line " + std::to_string(source.line_) + " has " +
                                   std::to_string(columns) + " columns, but line 1 has " +
                                   std::to_string(source.columns_) +
                                   " (starmap needs as many arguments for every item)");
      }
      return target.AddArgs(args);
    }
    jobd::Status AddFile(const std::string&) override { return jobd::Status::Error("unused"); }
    jobd::Status AddArgs(const std::vector<std::string_view>&) override {
      return jobd::Status::Error("unused");
    }
    bool Full() const override { return target.Full(); }
  } split(*this, sink);
  return lines_.Read(split, max);
}

Result<std::unique_ptr<ZipSource>> ZipSource::Open(const std::vector<std::string>& paths,
                                                   std::vector<std::string> constants) {
  std::unique_ptr<ZipSource> source(new ZipSource());
  source->paths_ = paths;
  source->constants_ = std::move(constants);
  for (const std::string& path : paths) {
    FILE* file = std::fopen(path.c_str(), "re");
    if (file == nullptr) {
      return jobd::Status::Error("--zip: cannot read " + path + ": " + std::strerror(errno));
    }
    source->files_.push_back(file);
  }
  return source;
}

ZipSource::~ZipSource() {
  for (FILE* file : files_) std::fclose(file);
}

Result<bool> ZipSource::Read(ItemSink& sink, size_t max) {
  std::vector<std::string> lines(files_.size());
  for (size_t n = 0; n < max && !sink.Full(); ++n) {
    size_t ended = 0;
    for (size_t i = 0; i < files_.size(); ++i) {
      char* data = nullptr;
      size_t capacity = 0;
      const ssize_t length = getline(&data, &capacity, files_[i]);
      if (length < 0 && std::ferror(files_[i])) {
        const std::string why = std::strerror(errno);
        std::free(data);
        return jobd::Status::Error("--zip: cannot read " + paths_[i] + ": " + why);
      }
      if (length < 0) {
        ++ended;
      } else {
        lines[i].assign(data, static_cast<size_t>(length));
        if (!lines[i].empty() && lines[i].back() == '\n') lines[i].pop_back();
        lines[i].resize(WithoutCarriageReturn(lines[i]).size());
      }
      std::free(data);
    }
    if (ended == files_.size()) return false;
    ++line_;
    if (ended > 0) {
      return jobd::Status::Error("--zip: the files have different numbers of lines (some end "
                                 "before line " + std::to_string(line_) + ")");
    }
    std::vector<std::string_view> args(constants_.begin(), constants_.end());
    args.insert(args.end(), lines.begin(), lines.end());
    if (jobd::Status s = sink.AddArgs(args); !s.ok()) return s;
  }
  return true;
}

Result<bool> FileSource::Read(ItemSink& sink, size_t max) {
  for (size_t n = 0; n < max && !sink.Full() && next_ < paths_.size(); ++n) {
    if (jobd::Status s = sink.AddFile(paths_[next_++]); !s.ok()) return s;
  }
  return next_ < paths_.size();
}

// ---------------------------------------------------------------- the client

struct Client::Impl {
  std::string endpoint;
  uint32_t daemon_pid = 0;
  wire::Pong pong_;  // the last answer to a ping
  bool remote = false;       // reached over TCP, with the cluster file's keys
  ClusterFile cluster;
  std::string cluster_path;  // set: jobd is reached through this cluster file
  zmq::context_t context{1};
  zmq::socket_t socket;

  // A fresh connection to jobd, checked with a ping; the error says what is
  // wrong and how to start jobd. Through a cluster file, the file is read
  // again each time (a head that restarted wrote new keys), and on the
  // head's own host its local socket is used, unless JOBD_CLUSTER_LOCAL=0:
  // payloads then go through shared memory, with no encryption to pay.
  jobd::Status Open(std::chrono::milliseconds timeout) {
    if (cluster_path.empty()) return OpenLocal(timeout);
    Result<ClusterFile> read = ClusterFile::Read(cluster_path);
    if (!read.ok()) return read.status();
    cluster = std::move(*read);
    const char* local = std::getenv("JOBD_CLUSTER_LOCAL");
    if (!cluster.local.empty() && cluster.host == HostName() &&
        (local == nullptr || std::string(local) != "0")) {
      endpoint = cluster.local;
      // Another jobd at that path (or none) is not the head: TCP it is.
      if (OpenLocal(std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(1))).ok() &&
          daemon_pid == cluster.pid) {
        return {};
      }
    }
    remote = true;
    endpoint = cluster.endpoint;
    return Ping(timeout, "no jobd answers at " + endpoint + " (from cluster file " + cluster_path +
                             ") within " + std::to_string(timeout.count() / 1000) +
                             " s: its head is not running there, or the file's keys are not its "
                             "current ones (a head writes new keys each time it starts)");
  }

  // A connection to the local socket `endpoint`.
  jobd::Status OpenLocal(std::chrono::milliseconds timeout) {
    remote = false;
    Result<std::string> path = IpcPath(endpoint);
    if (!path.ok()) return path.status();
    if (jobd::Status s = CheckSocket(*path); !s.ok()) return s;
    return Ping(timeout, "no jobd answers at " + endpoint + " (the socket " + *path +
                             " exists but nobody replied within " +
                             std::to_string(timeout.count() / 1000) +
                             " s: a jobd that died?); start one with `jobd --detach`");
  }

  // A new socket to `endpoint` (CurveZMQ with the cluster file's keys if
  // `remote`), and a ping on it; `no_answer` is the error when none comes.
  jobd::Status Ping(std::chrono::milliseconds timeout, const std::string& no_answer) {
    // A connection to a jobd that died: what it still queued goes nowhere.
    if (socket) socket.set(zmq::sockopt::linger, 0);
    socket = zmq::socket_t(context, zmq::socket_type::dealer);
    // Long enough for the last Release to leave when the client closes right
    // after a Map (without it, jobd would keep the job and its segments for as
    // long as the process lives); bounded for a jobd that stopped reading.
    socket.set(zmq::sockopt::linger, 1000);
    socket.set(zmq::sockopt::rcvhwm, 0);
    socket.set(zmq::sockopt::sndhwm, 0);
    if (remote) {  // CurveZMQ, with the cluster file's keys
      // Its own routing id: after a reconnect the head still knows the job's client.
      socket.set(zmq::sockopt::routing_id, RandomHex(16));
      socket.set(zmq::sockopt::curve_serverkey, cluster.server_public);
      socket.set(zmq::sockopt::curve_publickey, cluster.client_public);
      socket.set(zmq::sockopt::curve_secretkey, cluster.client_secret);
    }
    socket.connect(endpoint);
    wire::Request ping;
    ping.set_version(wire::VERSION_CURRENT);
    ping.mutable_ping();
    Send(ping);
    Result<wire::Reply> pong = Receive(timeout);
    if (pong.ok() && pong->has_error()) return jobd::Status::Error(pong->error().message());
    if (!pong.ok() || !pong->has_pong()) return jobd::Status::Error(no_answer);
    daemon_pid = pong->pong().pid();
    pong_ = std::move(*pong->mutable_pong());
    return {};
  }

  // The local socket at `path` is there, in a directory only we (or root) may change.
  jobd::Status CheckSocket(const std::string& path) {
    // The socket's directory must be one only we (or root) can change, as
    // jobd requires: otherwise another user could have put a jobd of theirs
    // there, to read our items and answer with results of their choosing.
    const std::filesystem::path socket_path(path);
    bool missing = false;
    Result<TrustedDir> dir = OpenTrustedDir(socket_path.parent_path().string(), DirUse::kPrivate,
                                            /*create=*/false, &missing);
    struct stat st{};
    if (dir.ok() && fstatat(dir->fd.get(), socket_path.filename().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      missing = true;
    }
    if (missing) {
      return jobd::Status::Error("no jobd is running at " + endpoint + " (" +
                                 (dir.ok() ? path : dir.message()) +
                                 (dir.ok() ? " does not exist" : "") +
                                 "); start one with `jobd --detach` (or `jobd` in another "
                                 "terminal), or point at another with --socket");
    }
    if (!dir.ok()) {
      return jobd::Status::Error("refusing to use " + endpoint + ": " + dir.message());
    }
    return {};
  }

  // After jobd died: waits until one serves the endpoint again, or `deadline`.
  jobd::Status Reopen(Clock::time_point deadline) {
    while (true) {
      if (g_interrupted) return jobd::Status::Error("interrupted");
      jobd::Status s = Open(std::chrono::seconds(1));
      if (s.ok() || Clock::now() >= deadline) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  void Send(const wire::Request& request) {
    socket.send(Encode(request), zmq::send_flags::none);
  }

  // Waits up to `timeout` for one reply.
  Result<wire::Reply> Receive(std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    int ready = 0;
    try {
      ready = zmq::poll(&item, 1, timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return jobd::Status::Error("interrupted");
    }
    if (ready == 0) {
      return jobd::Status::Error("jobd at " + endpoint + " did not answer within " +
                                 std::to_string(timeout.count() / 1000) + " s");
    }
    zmq::message_t message;
    (void)socket.recv(message, zmq::recv_flags::none);
    wire::Reply reply;
    if (jobd::Status s = DecodeReply(message.to_string_view(), &reply); !s.ok()) return s;
    return reply;
  }

  // Sends `request`, returns the reply of kind `expected` or the daemon's
  // error. Messages about jobs that an earlier Map left behind are skipped.
  Result<wire::Reply> Call(const wire::Request& request, wire::Reply::KindCase expected) {
    Send(request);
    while (true) {
      Result<wire::Reply> reply = Receive(kReplyTimeout);
      if (!reply.ok()) return reply;
      if (reply->has_error() && reply->error().job() == 0) {
        return jobd::Status::Error(reply->error().message());
      }
      if (reply->kind_case() == expected) return reply;
      if (reply->has_accepted()) {  // a job whose Submit gave up waiting: let it go
        wire::Request release;
        release.set_version(wire::VERSION_CURRENT);
        release.mutable_release()->set_job(reply->accepted().job());
        Send(release);
      }
    }
  }
};

namespace {
wire::Request NewRequest() {
  wire::Request request;
  request.set_version(wire::VERSION_CURRENT);
  return request;
}
}  // namespace

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

const std::string& Client::endpoint() const { return impl_->endpoint; }
uint32_t Client::daemon_pid() const { return impl_->daemon_pid; }

Result<uint32_t> Client::PoolWorkers(const std::string& pool) const {
  const wire::Pong& pong = impl_->pong_;
  const std::string& name = pool.empty() ? pong.default_pool() : pool;
  if (auto found = pong.pool_workers().find(name); found != pong.pool_workers().end()) {
    return found->second;
  }
  std::vector<std::string> names;
  for (const auto& [candidate, workers] : pong.pool_workers()) names.push_back(candidate);
  std::sort(names.begin(), names.end());
  std::string list;
  for (const std::string& candidate : names) list += (list.empty() ? "" : ", ") + candidate;
  return jobd::Status::Error("jobd has no pool '" + name + "' (its pools: " + list +
                             "); name one of them, or add it to jobd's config");
}
void Client::Interrupt() { g_interrupted = true; }

Result<Client> Client::ConnectCluster(const std::string& cluster_file) {
  auto impl = std::make_unique<Impl>();
  impl->cluster_path = cluster_file;
  if (jobd::Status s = impl->Open(std::chrono::seconds(5)); !s.ok()) return s;
  return Client(std::move(impl));
}

Result<Client> Client::Connect(const std::string& endpoint) {
  auto impl = std::make_unique<Impl>();
  impl->endpoint = endpoint.empty() ? DefaultEndpoint() : endpoint;
  if (jobd::Status s = impl->Open(std::chrono::seconds(3)); !s.ok()) return s;
  return Client(std::move(impl));
}

Result<wire::StatusReport> Client::Status() {
  wire::Request request = NewRequest();
  request.mutable_status();
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kStatus);
  if (!reply.ok()) return reply.status();
  return std::move(*reply->mutable_status());
}

Result<wire::JobList> Client::Jobs(uint64_t job) {
  wire::Request request = NewRequest();
  request.mutable_jobs()->set_job(job);
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kJobs);
  if (!reply.ok()) return reply.status();
  if (job != 0 && reply->jobs().jobs_size() == 0) {
    return jobd::Status::Error("jobd knows no job " + std::to_string(job) +
                               " (it keeps the last `job_history` finished ones; see `jobctl jobs`)");
  }
  return std::move(*reply->mutable_jobs());
}

Result<std::string> Client::Metrics() {
  wire::Request request = NewRequest();
  request.mutable_metrics();
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kMetrics);
  if (!reply.ok()) return reply.status();
  return std::move(*reply->mutable_metrics()->mutable_text());
}

Result<wire::FunctionList> Client::Functions() {
  wire::Request request = NewRequest();
  request.mutable_functions();
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kFunctions);
  if (!reply.ok()) return reply.status();
  return std::move(*reply->mutable_functions());
}

Result<uint64_t> Client::Cancel(uint64_t job) {
  wire::Request request = NewRequest();
  request.mutable_cancel()->set_job(job);
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kCancelled);
  if (!reply.ok()) return reply.status();
  return reply->cancelled().done();
}

Result<uint32_t> Client::Shutdown() {
  wire::Request request = NewRequest();
  request.mutable_shutdown();
  Result<wire::Reply> reply = impl_->Call(request, wire::Reply::kShutdown);
  if (!reply.ok()) return reply.status();
  return reply->shutdown().running_jobs();
}

// ---------------------------------------------------------------- map

namespace {

// One running map job on the client side: windows of items out, results in,
// shared-memory segments removed as soon as nothing refers to them.
class MapRun : public ItemSink {
 public:
  // `remote`: jobd is on another host, so every item travels inline.
  MapRun(zmq::socket_t& socket, uint64_t job, const MapOptions& options, bool remote)
      : socket_(socket), job_(job), options_(options), remote_(remote), files_by_name_(remote),
        writer_(16 << 20, !remote), keep_items_(options.resubmit_wait_seconds > 0) {}

  ~MapRun() override {
    for (const std::string& name : writer_.TakeNewSegments()) RemoveSegment(name);  // never sent
    for (const auto& [name, count] : input_refs_) RemoveSegment(name);
    for (const auto& [name, count] : output_refs_) RemoveSegment(name);
  }

  Status Add(std::string_view bytes) override {
    if (options_.starmap) return AddArgs({bytes});
    if (Status s = CheckSize(bytes.size()); !s.ok()) return s;
    if (char* space = PackedSpace(bytes.size())) {
      if (!bytes.empty()) std::memcpy(space, bytes.data(), bytes.size());
      return {};
    }
    wire::Payload* payload = NewItem();
    if (Status s = writer_.Add(bytes, payload); !s.ok()) return s;
    Track(*payload);
    return {};
  }

  Status AddArgs(const std::vector<std::string_view>& args) override {
    if (!options_.starmap) return Status::Error("AddArgs needs MapOptions::starmap");
    const size_t size = PackedSize(args);
    if (Status s = CheckSize(size); !s.ok()) return s;
    if (char* space = PackedSpace(size)) {
      PackArgs(args, space);
      return {};
    }
    wire::Payload* payload = NewItem();
    Result<char*> space = writer_.Reserve(size, payload);
    if (!space.ok()) return space.status();
    PackArgs(args, *space);
    Track(*payload);
    return {};
  }

  bool Full() const override {
    return BatchFull(0, batch_bytes_) || inflight_inline_ >= kMaxInflightBytes ||
           inflight_shared_ >= kMaxInflightSharedBytes;
  }

  // Whether a batch of `items` items and `bytes` bytes makes one message, as
  // large as one should be (fresh items and resubmitted ones alike).
  static bool BatchFull(size_t items, size_t bytes) {
    return items >= kMaxBatchItems || bytes >= kMaxBatchBytes;
  }

  // A file that cannot be read fails as its own item, like sha256sum's
  // "No such file": jobd is told to skip it, and its error is delivered here.
  Status AddFile(const std::string& path) override {
    // jobd on another host: the worker reads it where it runs (Submit.read_files).
    if (files_by_name_) return Add(path.rfind('/', 0) == 0 ? path : CurrentDirectory() + "/" + path);
    wire::Payload* payload = NewItem();
    const std::string error = ReadFileInto(path, payload);
    Track(*payload);  // what it reserved is released when its error is delivered
    if (!error.empty()) {
      payload->set_data("");
      batch_.add_skipped(job_sent_ - 1);
      wire::ItemResult& result = *local_results_.add_results();
      result.set_index(sent_ - 1);
      result.mutable_outcome()->set_error("cannot read " + path + ": " + error);
    }
    return {};
  }

  // Delivers the errors of items that failed here; call after SendItems.
  Status TakeLocal(const Client::ResultCallback& on_result) {
    if (local_results_.results_size() == 0) return {};
    wire::Results results = std::exchange(local_results_, {});
    return Process(results, on_result);
  }

  // Reads up to a window's worth of items and sends them.
  Status SendItems(ItemSource& source) {
    if (Status s = ReadBatch(source); !s.ok()) return s;
    Send(batch_);
    ClearBatch();
    return {};
  }

  // The first batch, for the Submit to carry (before the job has a number).
  Status TakeFirstBatch(ItemSource& source, wire::Items* into) {
    if (Status s = ReadBatch(source); !s.ok()) return s;
    into->Swap(&batch_);
    ClearBatch();
    return {};
  }

  void SetJob(uint64_t job) { job_ = job; }

  // Reads up to a window's worth of items into the batch.
  Status ReadBatch(ItemSource& source) {
    const size_t room = options_.window - (sent_ - delivered_);
    Result<bool> more = source.Read(*this, std::min(room, kMaxBatchItems));
    if (!more.ok()) return more.status();
    input_done_ = !*more;
    batch_.set_last(input_done_);
    const uint64_t count = static_cast<uint64_t>(
        batch_.has_packed() ? batch_.packed().lengths_size() : batch_.items_size());
    batch_.set_first_index(job_sent_ - count);
    writer_.Seal();  // later items go to new segments, so these can be removed early
    for (std::string& name : writer_.TakeNewSegments()) batch_.add_segments(std::move(name));
    if (keep_items_) {
      const std::unordered_set<uint64_t> skipped(batch_.skipped().begin(), batch_.skipped().end());
      PackedReader packed(batch_.packed());
      for (uint64_t i = 0; i < count; ++i) {
        if (batch_.has_packed()) {
          unanswered_[sent_ - count + i].set_data(std::string(packed.Next()));
        } else if (skipped.count(job_sent_ - count + i) == 0) {
          unanswered_[sent_ - count + i] = batch_.items(static_cast<int>(i));
        }
      }
    }
    return {};
  }

  void ClearBatch() {
    batch_.Clear();
    batch_bytes_ = 0;
  }

  // jobd died and job `job` replaces this one: sends it every item that has
  // no result yet, in input order. Results waiting their turn are kept, but
  // those in shared memory died with jobd: their items run again. `remote`:
  // the new jobd is on another host (a head may come back elsewhere).
  Status Resubmit(uint64_t job, bool remote) {
    if (remote && !remote_) {
      if (Status s = InlineUnanswered(); !s.ok()) return s;
    }
    if (remote != remote_) writer_ = PayloadWriter(16 << 20, !remote);
    remote_ = remote;
    for (auto it = pending_.begin(); it != pending_.end();) {
      const wire::Outcome& outcome = it->second.outcome();
      if (outcome.has_value() && outcome.value().has_ref()) {  // died with jobd: run it again
        DropOutputRef(it->second);
        it = pending_.erase(it);
      } else {  // an inline value or an error: it only waits its turn
        unanswered_.erase(it->first);
        ++it;
      }
    }
    job_ = job;
    resubmitted_ += unanswered_.size();
    resent_.clear();
    first_fresh_ = sent_;
    job_sent_ = 0;
    wire::Items items;
    // The new jobd removes the input segments with the job, as the old one would have.
    for (const auto& [name, count] : input_refs_) items.add_segments(name);
    // (A jobd on another host has no input segment: InlineUnanswered() took them back.)
    size_t bytes = 0;
    for (const auto& [index, payload] : unanswered_) {
      *items.add_items() = payload;
      resent_.push_back(index);
      bytes += payload.data().size() + 32;
      if (BatchFull(static_cast<size_t>(items.items_size()), bytes)) {
        items.set_first_index(job_sent_);
        job_sent_ += static_cast<uint64_t>(items.items_size());
        Send(items);
        items.Clear();
        bytes = 0;
      }
    }
    if (items.items_size() == 0 && !input_done_) return {};
    items.set_first_index(job_sent_);
    job_sent_ += static_cast<uint64_t>(items.items_size());
    items.set_last(input_done_);
    Send(items);
    return {};
  }

  // The items without a result that wait in this host's shared memory, put
  // inline for a jobd on another host; their segments are then this
  // client's to remove.
  Status InlineUnanswered() {
    SegmentReader inputs;
    for (auto& [index, payload] : unanswered_) {
      if (!payload.has_ref()) continue;
      Result<std::string_view> bytes = inputs.Read(payload);
      if (!bytes.ok()) return bytes.status();
      payload.set_data(std::string(*bytes));
    }
    for (auto& [index, counted] : counted_) {
      if (!counted.shared) continue;
      inflight_shared_ -= counted.size;
      inflight_inline_ += counted.size;
      counted.shared = false;
    }
    for (const auto& [name, count] : input_refs_) RemoveSegment(name);
    input_refs_.clear();
    input_segment_of_.clear();
    return {};
  }

  size_t unanswered() const { return unanswered_.size(); }
  // Items sent again to a jobd that replaced a dead one, over every resubmit.
  uint64_t resubmitted() const { return resubmitted_; }
  uint64_t succeeded() const { return succeeded_; }
  uint64_t failed() const { return failed_; }

  bool WantsInput() const {
    // Wait for room for a useful batch, not for every single free slot.
    const size_t margin = std::max<size_t>(1, std::min(kMaxBatchItems, options_.window) / 4);
    return !input_done_ && sent_ - delivered_ + margin <= options_.window &&
           inflight_inline_ < kMaxInflightBytes && inflight_shared_ < kMaxInflightSharedBytes;
  }
  bool input_done() const { return input_done_; }

  // Takes a Results message from jobd; calls `on_result` for what can be
  // delivered now.
  Status Take(wire::Results& results, const Client::ResultCallback& on_result) {
    for (wire::ItemResult& result : *results.mutable_results()) {
      if (result.index() >= job_sent_) return Status::Error("jobd sent a result for an unknown item");
      result.set_index(InputIndex(result.index()));
    }
    for (uint64_t& index : *results.mutable_value_indexes()) {
      if (index >= job_sent_) return Status::Error("jobd sent a result for an unknown item");
      index = InputIndex(index);
    }
    return Process(results, on_result);
  }

  uint64_t delivered() const { return delivered_; }
  uint64_t sent() const { return sent_; }

 private:
  // Results indexed by input position.
  Status Process(wire::Results& results, const Client::ResultCallback& on_result) {
    // Every reference first: a segment goes once its last result is delivered.
    for (const wire::ItemResult& result : results.results()) {
      if (const wire::Outcome& o = result.outcome(); o.has_value() && o.value().has_ref()) {
        ++output_refs_[o.value().ref().segment()];
      }
    }
    for (wire::ItemResult& result : *results.mutable_results()) {
      // Results mostly come in order: only those ahead of their turn wait.
      if (options_.ordered && result.index() != delivered_) {
        pending_.emplace(result.index(), std::move(result));
        continue;
      }
      if (Status s = Deliver(result, on_result); !s.ok()) return s;
      if (Status s = DeliverPending(on_result); !s.ok()) return s;
    }
    PackedReader values(results.values());
    for (const uint64_t index : results.value_indexes()) {
      const std::string_view value = values.Next();
      if (options_.ordered && index != delivered_) {
        wire::ItemResult& waiting = pending_[index];
        waiting.set_index(index);
        waiting.mutable_outcome()->mutable_value()->set_data(std::string(value));
        continue;
      }
      if (Status s = DeliverItem({index, true, value}, on_result); !s.ok()) return s;
      if (Status s = DeliverPending(on_result); !s.ok()) return s;
    }
    return {};
  }

  // Delivers the results that waited for those now delivered.
  Status DeliverPending(const Client::ResultCallback& on_result) {
    while (options_.ordered && !pending_.empty() && pending_.begin()->first == delivered_) {
      auto next = pending_.begin();
      Status delivered = Deliver(next->second, on_result);
      pending_.erase(next);
      if (!delivered.ok()) return delivered;
    }
    return {};
  }

  // The input position of the current job's item `index`.
  uint64_t InputIndex(uint64_t index) const {
    return index < resent_.size() ? resent_[index] : first_fresh_ + (index - resent_.size());
  }

  void Send(wire::Items& items) {
    wire::Request request;
    request.set_version(wire::VERSION_CURRENT);
    request.mutable_items()->Swap(&items);
    request.mutable_items()->set_job(job_);
    socket_.send(Encode(request), zmq::send_flags::none);
    request.mutable_items()->Swap(&items);
  }

  // Reads the whole file into `payload` (shared memory when large); returns
  // why it could not, or "". Files that report no size (/proc) are read to
  // their end; a file that grows while being read is refused.
  std::string ReadFileInto(const std::string& path, wire::Payload* payload) {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) return std::strerror(errno);
    if (S_ISDIR(st.st_mode)) return "it is a directory";
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) close(fd);
      return why;
    }
    std::string error;
    if (st.st_size == 0) {
      std::string contents;
      char buffer[65536];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) contents.append(buffer, static_cast<size_t>(n));
      }
      if (n < 0) error = std::strerror(errno);
      if (Status s = writer_.Add(contents, payload); error.empty() && !s.ok()) error = s.message();
      close(fd);
      return error;
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (Status s = CheckSize(size); !s.ok()) {
      close(fd);
      return s.message();
    }
    Result<char*> space = writer_.Reserve(size, payload);
    size_t done = 0;
    while (space.ok() && done <= size) {
      char extra;  // one byte past the size says the file grew
      char* into = done < size ? *space + done : &extra;
      const ssize_t n = read(fd, into, done < size ? size - done : 1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) error = std::strerror(errno);
      if (n == 0 && done < size) error = "it shrank while being read";
      if (n > 0 && done == size) error = "it grew while being read";
      if (n <= 0 || done == size) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
    return space.ok() ? error : space.message();
  }

  wire::Payload* NewItem() {
    Unpack();
    ++sent_;
    ++job_sent_;
    return batch_.add_items();
  }

  // Room for an item of `size` bytes at the end of the batch's Packed, or null
  // if it goes one by one: it is too large to be inline, or the batch already
  // holds items in shared memory.
  // An item must fit in one message when it travels inline to another host.
  Status CheckSize(size_t size) const {
    if (writer_.inline_limit() <= kInlineLimit || size <= kMaxRemoteItemBytes) return {};
    return Status::Error("an item of " + std::to_string(size) + " bytes is more than a jobd on "
                         "another host takes (" + std::to_string(kMaxRemoteItemBytes >> 20) +
                         " MiB); split it, or run the map on the head's host");
  }

  char* PackedSpace(size_t size) {
    if (size > writer_.inline_limit() || batch_.items_size() > 0) return nullptr;
    ++sent_;
    ++job_sent_;
    wire::Packed& packed = *batch_.mutable_packed();
    std::string& data = *packed.mutable_data();
    const size_t start = data.size();
    data.resize(start + size);
    packed.add_lengths(static_cast<uint32_t>(size));
    batch_bytes_ += size + 8;
    if (size >= kCountedItemBytes) {
      inflight_inline_ += size;
      counted_[sent_ - 1] = {size, false};
    }
    return data.data() + start;
  }

  // The batch's packed items become Payloads, so that items in shared memory
  // can follow them in order.
  void Unpack() {
    if (!batch_.has_packed()) return;
    UnpackInto(batch_.mutable_packed(), [&] { return batch_.add_items(); });
    batch_.clear_packed();
  }

  void Track(const wire::Payload& payload) {
    const bool shared = payload.has_ref();
    const size_t size = shared ? payload.ref().length() : payload.data().size();
    batch_bytes_ += size + 32;
    if (shared || size >= kCountedItemBytes) {
      (shared ? inflight_shared_ : inflight_inline_) += size;
      counted_[sent_ - 1] = {size, shared};
    }
    if (shared) {
      ++input_refs_[payload.ref().segment()];
      input_segment_of_[sent_ - 1] = payload.ref().segment();
    }
  }

  static void Release(std::map<std::string, uint64_t>& refs, const std::string& name) {
    auto found = refs.find(name);
    if (found != refs.end() && --found->second == 0) {
      RemoveSegment(name);
      refs.erase(found);
    }
  }

  Status Deliver(const wire::ItemResult& result, const Client::ResultCallback& on_result) {
    ItemResult item;
    item.index = result.index();
    const wire::Outcome& outcome = result.outcome();
    Result<std::string_view> value = std::string_view();
    if (outcome.has_value()) value = reader_.Read(outcome.value());
    item.ok = outcome.has_value() && value.ok();
    item.value = outcome.has_error() ? std::string_view(outcome.error())
                                     : value.ok() ? *value : std::string_view(value.message());
    if (item.ok && outcome.value().has_ref()) item.segment = &outcome.value().ref();
    Status s = DeliverItem(item, on_result);
    DropOutputRef(result);
    return s;
  }

  // Hands one result to the caller and lets go of what its item held.
  Status DeliverItem(const ItemResult& item, const Client::ResultCallback& on_result) {
    Status s = on_result(item);
    ++delivered_;
    ++(item.ok ? succeeded_ : failed_);
    if (keep_items_) unanswered_.erase(item.index);

    if (auto counted = counted_.find(item.index); counted != counted_.end()) {
      (counted->second.shared ? inflight_shared_ : inflight_inline_) -= counted->second.size;
      counted_.erase(counted);
    }
    if (auto input = input_segment_of_.find(item.index); input != input_segment_of_.end()) {
      Release(input_refs_, input->second);
      input_segment_of_.erase(input);
    }
    return s;
  }

  void DropOutputRef(const wire::ItemResult& result) {
    const wire::Outcome& outcome = result.outcome();
    if (!outcome.has_value() || !outcome.value().has_ref()) return;
    const std::string& name = outcome.value().ref().segment();
    if (output_refs_[name] == 1) reader_.Forget(name);
    Release(output_refs_, name);
  }

  zmq::socket_t& socket_;
  uint64_t job_;
  const MapOptions& options_;
  bool remote_;  // jobd is on another host (reached over TCP)
  // --files items travel as names, read where they run: decided with the
  // job's submission (a resubmit to a jobd elsewhere keeps it).
  const bool files_by_name_;
  PayloadWriter writer_;
  SegmentReader reader_;
  wire::Items batch_;
  size_t batch_bytes_ = 0;
  uint64_t sent_ = 0;
  uint64_t delivered_ = 0;
  uint64_t resubmitted_ = 0;
  bool input_done_ = false;
  std::map<uint64_t, wire::ItemResult> pending_;  // ordered mode: results waiting their turn
  std::map<std::string, uint64_t> input_refs_;     // segment -> items not yet delivered
  std::unordered_map<uint64_t, std::string> input_segment_of_;
  std::map<std::string, uint64_t> output_refs_;    // segment -> results not yet delivered
  // Inline items of at least this size count against kMaxInflightBytes (the
  // item window alone bounds the smaller ones); shared ones always count.
  static constexpr size_t kCountedItemBytes = 1024;
  struct Counted {
    size_t size;
    bool shared;
  };
  size_t inflight_inline_ = 0;
  size_t inflight_shared_ = 0;
  std::unordered_map<uint64_t, Counted> counted_;  // item index -> bytes it counts for
  wire::Results local_results_;  // errors of items that failed here, not yet delivered
  uint64_t succeeded_ = 0;       // results delivered, by outcome
  uint64_t failed_ = 0;
  // Items are numbered by input position here, and from 0 in each job jobd
  // runs: after a resubmit the job first gets the unanswered items again.
  uint64_t job_sent_ = 0;          // items sent to the current job
  std::vector<uint64_t> resent_;   // input position of each item resubmitted to it
  uint64_t first_fresh_ = 0;       // input position of its first item not resubmitted
  bool keep_items_;                // keep copies of items in flight, for a resubmit
  std::map<uint64_t, wire::Payload> unanswered_;  // input position -> item, when kept
};

}  // namespace

namespace {
// The caller's environment, which its commands and Python functions run with.
void AddEnvironment(google::protobuf::RepeatedPtrField<std::string>* out) {
  for (char** variable = environ; *variable != nullptr; ++variable) {
    if (**variable != '=' && std::strchr(*variable, '=') != nullptr) out->Add(*variable);
  }
}

wire::Request SubmitRequest(const std::string& function) {
  wire::Request request = NewRequest();
  request.mutable_submit()->set_function(function);
  return request;
}
}  // namespace

Result<JobSummary> Client::Map(const std::string& function, ItemSource& items,
                               const MapOptions& options, const ResultCallback& on_result) {
  wire::Request request = SubmitRequest(function);
  return Run(request, items, options, on_result);
}

Result<JobSummary> Client::MapCommand(const Command& command, ItemSource& items,
                                      const MapOptions& options, const ResultCallback& on_result) {
  wire::Request request = SubmitRequest("exec");
  wire::Exec* exec = request.mutable_submit()->mutable_exec();
  for (const std::string& word : command.argv) exec->add_argv(word);
  exec->set_shell(command.shell);
  exec->set_mode(command.mode == Command::Mode::kLines    ? wire::Exec::STREAM_LINES
                 : command.mode == Command::Mode::kFrames ? wire::Exec::STREAM_FRAMES
                                                          : wire::Exec::PER_ITEM);
  exec->set_cwd(CurrentDirectory());
  AddEnvironment(exec->mutable_environment());
  return Run(request, items, options, on_result);
}

Result<JobSummary> Client::MapPython(const PythonFunction& function, ItemSource& items,
                                     const MapOptions& options, const ResultCallback& on_result) {
  wire::Request request = SubmitRequest("python");
  wire::Python* python = request.mutable_submit()->mutable_python();
  python->set_function(function.function);
  python->set_pickled(function.pickled);
  python->set_callable(function.callable);
  python->set_initializer(function.initializer);
  python->set_max_items(function.max_items);
  python->set_chunk(function.chunk);
  python->set_interpreter(function.interpreter.empty() ? FindProgram("python3") : function.interpreter);
  if (python->interpreter().empty()) {
    return jobd::Status::Error("cannot find python3 on PATH; install it (Debian: apt-get install "
                               "python3) or name the interpreter");
  }
  python->set_cwd(CurrentDirectory());
  if (function.path.empty()) {
    // What `python3 -m` would search, the module's file on PYTHONPATH or here.
    const char* pythonpath = std::getenv("PYTHONPATH");
    for (const std::string& entry : SplitPathList(pythonpath ? pythonpath : "")) {
      if (!entry.empty()) python->add_path(std::filesystem::absolute(entry).string());
    }
    python->add_path(python->cwd());
  } else {
    for (const std::string& entry : function.path) python->add_path(entry);
  }
  AddEnvironment(python->mutable_environment());
  return Run(request, items, options, on_result);
}

Result<JobSummary> Client::Run(wire::Request& request, ItemSource& items,
                               const MapOptions& options, const ResultCallback& on_result) {
  if (options.window == 0) return jobd::Status::Error("the window must hold at least one item");
  wire::Submit* submit = request.mutable_submit();
  submit->set_pool(options.pool);
  submit->set_chunksize(options.chunksize);
  submit->set_max_workers(options.max_workers);
  submit->set_starmap(options.starmap);
  submit->set_read_files(impl_->remote && items.Files());
  if (options.retries) submit->set_retries(*options.retries);
  if (options.timeout_seconds > 0) {
    submit->set_timeout_ms(static_cast<uint32_t>(std::max(1.0, options.timeout_seconds * 1000)));
  }
  if (!options.plugin.empty()) {
    char* path = realpath(options.plugin.c_str(), nullptr);
    if (path == nullptr) {
      return jobd::Status::Error("plugin " + options.plugin + ": " + std::strerror(errno));
    }
    submit->set_plugin(path);
    free(path);
  }
  g_interrupted = false;
  MapRun run(impl_->socket, 0, options, impl_->remote);
  // The items at hand go with the Submit: jobd starts on them a round trip sooner.
  if (items.fd() < 0 || items.Buffered()) {
    if (jobd::Status s = run.TakeFirstBatch(items, submit->mutable_items()); !s.ok()) return s;
  }
  Result<wire::Reply> accepted = impl_->Call(request, wire::Reply::kAccepted);
  submit->clear_items();  // a resubmit sends what has no result instead
  if (!accepted.ok()) return accepted.status();
  uint64_t job = accepted->accepted().job();
  run.SetJob(job);
  // However Map ends (results all in, an error, an exception from on_result),
  // jobd hears that the job is released: cancelled if it was still running.
  struct ReleaseOnExit {
    Impl& impl;
    const uint64_t& job;
    ~ReleaseOnExit() {
      wire::Request done = NewRequest();
      done.mutable_release()->set_job(job);
      impl.Send(done);
    }
  } release_on_exit{*impl_, job};

  if (jobd::Status s = run.TakeLocal(on_result); !s.ok()) return s;
  JobSummary summary;
  summary.job = job;
  auto notice = [&](const std::string& message) {
    if (options.on_notice) options.on_notice(message);
  };
  // A local jobd's pid tells whether it lives; a head on another host is
  // lost once it answers nothing, pings included, for kRemoteLostAfter.
  auto daemon_died = [&](Clock::duration quiet) {
    return impl_->remote ? quiet > kRemoteLostAfter
                         : ProcessExited(static_cast<pid_t>(impl_->daemon_pid));
  };
  // jobd died: gives up, or waits for one to serve again and resubmits what
  // has no result yet as a new job.
  auto resubmit = [&]() -> jobd::Status {
    const std::string who = impl_->remote ? "the jobd at " + impl_->endpoint + " (pid " +
                                                std::to_string(impl_->daemon_pid) + " there)"
                                          : "jobd (pid " + std::to_string(impl_->daemon_pid) + ")";
    const std::string died = who + (impl_->remote ? " stopped answering" : " died") +
                             " while running job " + std::to_string(job) + "; " +
                             std::to_string(run.delivered()) + " results were delivered";
    if (options.resubmit_wait_seconds <= 0) {
      return jobd::Status::Error(died + " (with --resubmit, jobctl waits for jobd to come back "
                                        "and resubmits the rest)");
    }
    char wait[32];
    std::snprintf(wait, sizeof wait, "%g", options.resubmit_wait_seconds);
    notice(died + "; waiting up to " + wait + " s for jobd to serve " + impl_->endpoint + " again");
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                             options.resubmit_wait_seconds * 1000));
    if (jobd::Status s = impl_->Reopen(deadline); !s.ok()) {
      return jobd::Status::Error(died + "; no jobd came back within " + wait + " s (" +
                                 s.message() + ")");
    }
    Result<wire::Reply> accepted = impl_->Call(request, wire::Reply::kAccepted);
    if (!accepted.ok()) return jobd::Status::Error(died + "; resubmitting failed: " + accepted.message());
    job = accepted->accepted().job();
    ++summary.resubmits;
    if (jobd::Status s = run.Resubmit(job, impl_->remote); !s.ok()) {
      return jobd::Status::Error(died + "; resubmitting failed: " + s.message());
    }
    notice("resubmitted the " + std::to_string(run.unanswered()) + " items without a result as job " +
           std::to_string(job) + " to jobd (pid " + std::to_string(impl_->daemon_pid) + ")");
    return {};
  };
  Clock::time_point last_heard = Clock::now();
  Clock::time_point next_check = last_heard + kDaemonCheckInterval;
  while (true) {
    if (g_interrupted) return jobd::Status::Error("interrupted; job " + std::to_string(job) + " cancelled");
    const bool want_input = run.WantsInput();
    if (want_input && (items.fd() < 0 || items.Buffered())) {
      if (jobd::Status s = run.SendItems(items); !s.ok()) return s;
      if (jobd::Status s = run.TakeLocal(on_result); !s.ok()) return s;
      continue;
    }
    zmq::pollitem_t poll_items[] = {{impl_->socket.handle(), 0, ZMQ_POLLIN, 0},
                                    {nullptr, options.cancel_fd, ZMQ_POLLIN, 0},
                                    {nullptr, want_input ? items.fd() : -1, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(poll_items, 3, std::chrono::milliseconds(500));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    if (poll_items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
      return jobd::Status::Error("cancelled; job " + std::to_string(job) + " cancelled");
    }
    if (want_input && (poll_items[2].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
      if (jobd::Status s = run.SendItems(items); !s.ok()) return s;
      if (jobd::Status s = run.TakeLocal(on_result); !s.ok()) return s;
    }
    if (!(poll_items[0].revents & ZMQ_POLLIN)) {
      const auto now = Clock::now();
      if (now - last_heard > kDaemonCheckInterval && now >= next_check) {
        next_check = now + kDaemonCheckInterval;
        if (daemon_died(now - last_heard)) {
          if (jobd::Status s = resubmit(); !s.ok()) return s;
          last_heard = Clock::now();
        } else if (impl_->remote) {
          wire::Request ping = NewRequest();  // its pong (or anything) tells the head lives
          ping.mutable_ping();
          impl_->Send(ping);
        }
      }
      continue;
    }
    // Everything that has arrived, then back to the input.
    while (impl_->socket.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      last_heard = Clock::now();
      zmq::message_t message;
      (void)impl_->socket.recv(message, zmq::recv_flags::none);
      wire::Reply reply;
      if (jobd::Status s = DecodeReply(message.to_string_view(), &reply); !s.ok()) return s;
      if (reply.has_results() && reply.results().job() == job) {
        if (jobd::Status s = run.Take(*reply.mutable_results(), on_result); !s.ok()) return s;
        if (options.after_results) options.after_results();
      } else if (reply.has_end() && reply.end().job() == job) {
        if (run.delivered() != run.sent()) {
          return jobd::Status::Error("job " + std::to_string(job) + " ended with " +
                                     std::to_string(run.sent() - run.delivered()) +
                                     " results missing (a jobd bug: please report it)");
        }
        // After a resubmit, jobd's last job saw only part of the items.
        summary.succeeded = summary.resubmits > 0 ? run.succeeded() : reply.end().succeeded();
        summary.failed = summary.resubmits > 0 ? run.failed() : reply.end().failed();
        // Items a dead jobd held ran again: retried, as those of a dead worker.
        summary.retried = run.resubmitted() + reply.end().retried();
        summary.job = job;
        return summary;
      } else if (reply.has_error() && (reply.error().job() == job || reply.error().job() == 0)) {
        // A jobd that replaced a dead one may answer this connection first.
        if (options.resubmit_wait_seconds > 0 && daemon_died(Clock::now() - last_heard)) {
          if (jobd::Status s = resubmit(); !s.ok()) return s;
          break;
        }
        return jobd::Status::Error(reply.error().message());
      }
    }
  }
}

Result<std::vector<std::string>> Client::Map(const std::string& function,
                                             const std::vector<std::string>& items,
                                             const MapOptions& options) {
  std::vector<std::string> results(items.size());
  std::string first_error;
  VectorSource source(items);
  Result<JobSummary> summary =
      Map(function, source, options, [&](const ItemResult& result) -> jobd::Status {
        if (result.ok) {
          results[result.index] = std::string(result.value);
        } else if (first_error.empty()) {
          first_error = "item " + std::to_string(result.index + 1) + ": " + std::string(result.value);
        }
        return {};
      });
  if (!summary.ok()) return summary.status();
  if (!first_error.empty()) return jobd::Status::Error(first_error);
  return results;
}

}  // namespace jobd
