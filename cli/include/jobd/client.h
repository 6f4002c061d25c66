// The jobd client library: submit map jobs to a running jobd from C++.
//
//   auto client = jobd::Client::Connect();            // the default endpoint
//   if (!client.ok()) { std::cerr << client.message(); return 1; }
//   auto digests = client->Map("sha256", {"a", "b"});  // like Pool.map
//
// Items stream in windows, so the input need not fit in memory; items and
// results above 16 KiB travel through shared memory, never through a socket.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

namespace wire {
class StatusReport;
class FunctionList;
class JobList;
class Request;
class SegmentRef;
}  // namespace wire

struct MapOptions {
  std::string pool;        // empty: jobd's default pool
  uint32_t chunksize = 0;  // items per task; 0: adapted to the measured cost of an item
  uint32_t max_workers = 0;  // run on at most this many of the pool's workers; 0: all
  std::string plugin;        // a plugin (.so) that provides the function, loaded by the workers
  // starmap (Python's pool.starmap): every item is a tuple of arguments,
  // added with ItemSink::AddArgs.
  bool starmap = false;
  // Within the pool's limits (the smaller wins): crashes an item may cause
  // before it fails, and how long one item may run (0: the pool's limit).
  std::optional<uint32_t> retries;
  double timeout_seconds = 0;
  bool ordered = true;     // results in input order; false: as they complete
  size_t window = 8192;    // at most this many items sent and not yet delivered
  // If jobd dies while the job runs: 0 fails the job at once; above 0, waits
  // up to this many seconds for a jobd to serve the endpoint again, then
  // submits the job anew with the items that have no result yet. Every result
  // is still delivered exactly once (in order if `ordered`). The client keeps
  // a copy of each item in flight for it (at most `window` items).
  double resubmit_wait_seconds = 0;
  // Told what happens that the user may want to know (jobd died, the job was
  // resubmitted); may be empty.
  std::function<void(const std::string&)> on_notice;
  // Called after each batch of results that arrived together went to the
  // result callback (jobctl flushes its output there: results reach a pipe as
  // they come, not when a buffer fills); may be empty.
  std::function<void()> after_results;
  // A descriptor that becomes readable to cancel the job (an eventfd or a
  // pipe): Map then returns the error "cancelled". -1: none.
  int cancel_fd = -1;
};

// The outcome of one item, passed to the result callback.
struct ItemResult {
  uint64_t index = 0;      // position in the input, from 0
  bool ok = false;
  std::string_view value;  // the result if ok, else the error; valid during the call only
  // Where `value` lies when it is in shared memory (a caller may map it
  // itself, instead of copying it, during the call); else null.
  const wire::SegmentRef* segment = nullptr;
};

// A command run once per item instead of a function, like xargs or GNU
// parallel. In each word, {} {.} {/} {//} {/.} stand for the item (whole,
// without extension, basename, dirname, basename without extension), {#} for
// its number and {%} for the worker's slot, both from 1. Without any item
// replacement the item goes to the command's stdin. The item is never parsed:
// it becomes (part of) exactly one argument. The command runs in the caller's
// current directory; its stdout, less one trailing newline, is the result.
//
// As a stream (jobctl map --stream), each worker instead keeps one coprocess
// for the job and feeds it item after item: a line each (kLines), or frames
// "<length>\n<bytes>" (kFrames, for binary items), reading one result per
// item. See proto/jobd.proto (message Exec) and worker/stream/jobd_stream.py.
struct Command {
  enum class Mode { kPerItem, kLines, kFrames };
  std::vector<std::string> argv;
  bool shell = false;  // argv is one string run by /bin/sh -c; items are quoted for it
  Mode mode = Mode::kPerItem;
};

// A Python function that a warm interpreter on each worker runs on each item
// (a str; the result is str() of what it returns), imported by reference. The
// interpreter runs in the caller's directory with the caller's environment,
// and each worker keeps it for later jobs with the same interpreter, path and
// directory, until a module it imported changes on disk.
struct PythonFunction {
  std::string function;           // "module:qualified.name"
  std::string interpreter;        // absolute path; empty: python3 on PATH
  // Put first on sys.path; empty: PYTHONPATH's entries, then the directory.
  std::vector<std::string> path;
  // The Python client (jobd.Pool) instead: `function` empty, the function
  // pickled in `callable` (or in each item), every item and result a starmap
  // tuple of a pickle and its out-of-band buffers. See proto/jobd.proto.
  bool pickled = false;
  std::string callable;
  std::string initializer;  // pickled (token, initializer, initargs)
  uint32_t max_items = 0;   // items an interpreter runs before it is replaced; 0: no limit
  uint32_t chunk = 0;       // the caller's items in each item (multiprocessing's chunksize)
};

struct JobSummary {
  uint64_t job = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;  // items run again because a worker, node or jobd died under them
  uint32_t resubmits = 0;  // times the job was resubmitted after jobd died
};

// Where an ItemSource puts items.
class ItemSink {
 public:
  virtual ~ItemSink() = default;
  virtual Status Add(std::string_view bytes) = 0;
  // The whole contents of a file as one item, read straight into shared
  // memory. A file that cannot be read becomes a failed item, not an error.
  virtual Status AddFile(const std::string& path) = 0;
  // A starmap item: its arguments (MapOptions::starmap).
  virtual Status AddArgs(const std::vector<std::string_view>& args) = 0;
  // True once the current batch is big enough to send; sources stop adding.
  virtual bool Full() const = 0;
};

// A stream of items, read as the job's window allows.
class ItemSource {
 public:
  virtual ~ItemSource() = default;
  // A descriptor to wait on before Read, or -1 if Read never blocks.
  virtual int fd() const { return -1; }
  // True if Read can add items without waiting on fd() (it holds some already).
  virtual bool Buffered() const { return false; }
  // Adds up to `max` items to `sink`, fewer if it is Full() or the input would
  // block. Returns false once the input is exhausted.
  virtual Result<bool> Read(ItemSink& sink, size_t max) = 0;
  // Whether each item names a file whose whole contents is the item.
  virtual bool Files() const { return false; }
};

// Items from memory.
class VectorSource : public ItemSource {
 public:
  explicit VectorSource(const std::vector<std::string>& items) : items_(items) {}
  Result<bool> Read(ItemSink& sink, size_t max) override;

 private:
  const std::vector<std::string>& items_;
  size_t next_ = 0;
};

// Items separated by `delimiter` ('\n' or '\0') read from a descriptor; a
// final delimiter is optional.
class DelimitedSource : public ItemSource {
 public:
  DelimitedSource(int fd, char delimiter) : fd_(fd), delimiter_(delimiter) {}
  int fd() const override { return fd_; }
  bool Buffered() const override;
  Result<bool> Read(ItemSink& sink, size_t max) override;

 private:
  int fd_;
  char delimiter_;
  std::string buffer_;
  size_t start_ = 0;  // first unconsumed byte of buffer_
  size_t scanned_ = 0;  // buffer_ holds no delimiter from start_ up to here
  bool eof_ = false;
};

// Each file's whole contents is one item.
class FileSource : public ItemSource {
 public:
  explicit FileSource(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  Result<bool> Read(ItemSink& sink, size_t max) override;
  bool Files() const override { return true; }

 private:
  std::vector<std::string> paths_;
  size_t next_ = 0;
};

// starmap items from tab-separated lines (one argument per column), each
// preceded by `constants` (the zip(itertools.repeat(c), items) idiom). Every
// line must have as many columns as the first.
class TsvSource : public ItemSource {
 public:
  TsvSource(int fd, std::vector<std::string> constants);
  int fd() const override { return lines_.fd(); }
  bool Buffered() const override { return lines_.Buffered(); }
  Result<bool> Read(ItemSink& sink, size_t max) override;

 private:
  DelimitedSource lines_;
  std::vector<std::string> constants_;
  uint64_t line_ = 0;
  size_t columns_ = 0;  // of the first line
};

// starmap items zipped from files, line by line: argument i of item n is line
// n of file i, after `constants`. The files must have as many lines each.
class ZipSource : public ItemSource {
 public:
  static Result<std::unique_ptr<ZipSource>> Open(const std::vector<std::string>& paths,
                                                 std::vector<std::string> constants);
  ~ZipSource() override;
  Result<bool> Read(ItemSink& sink, size_t max) override;

 private:
  ZipSource() = default;
  std::vector<std::string> paths_;
  std::vector<FILE*> files_;
  std::vector<std::string> constants_;
  uint64_t line_ = 0;
};

class Client {
 public:
  // Connects to jobd at `endpoint` (default: ipc://$XDG_RUNTIME_DIR/jobd/jobd.sock)
  // and checks that it answers; the error says where it looked and how to
  // start one.
  static Result<Client> Connect(const std::string& endpoint = "");
  // Connects to the jobd whose cluster file (jobd --cluster-file) is at
  // `cluster_file`: over TCP, with CurveZMQ and the file's keys, items then
  // travelling inline (shared memory is not shared between hosts); or, on
  // the head's own host, on its local socket as Connect does (unless
  // $JOBD_CLUSTER_LOCAL is 0).
  static Result<Client> ConnectCluster(const std::string& cluster_file);
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  const std::string& endpoint() const;
  // The daemon's pid.
  uint32_t daemon_pid() const;
  // How many workers pool `pool` (empty: the default pool) had when this
  // client connected; the error names the pools there are.
  Result<uint32_t> PoolWorkers(const std::string& pool) const;

  Result<wire::StatusReport> Status();
  Result<wire::FunctionList> Functions();
  // The running jobs and the last finished ones (job 0), or job `job` alone
  // with its failed items' first errors (an error if jobd knows no such job).
  Result<wire::JobList> Jobs(uint64_t job = 0);
  // jobd's metrics, in Prometheus' text exposition format.
  Result<std::string> Metrics();
  // Asks jobd to finish running jobs and stop. Returns how many were running.
  Result<uint32_t> Shutdown();
  // Cancels job `job` (any client's). Returns how many of its items were done.
  Result<uint64_t> Cancel(uint64_t job);

  using ResultCallback = std::function<jobd::Status(const ItemResult&)>;
  // Runs `function` over every item of `items`, calling `on_result` once per
  // item (in input order unless !options.ordered). Returns the job's summary
  // as jobd counted it; failed items are not an error of Map (they reach
  // on_result with ok false, as do items that failed in the client, such as
  // unreadable files, which jobd counts as succeeded).
  // An error from on_result cancels the job and is returned.
  Result<JobSummary> Map(const std::string& function, ItemSource& items,
                         const MapOptions& options, const ResultCallback& on_result);
  // Like Map, running `command` for every item.
  Result<JobSummary> MapCommand(const Command& command, ItemSource& items,
                                const MapOptions& options, const ResultCallback& on_result);
  Result<JobSummary> MapPython(const PythonFunction& function, ItemSource& items,
                               const MapOptions& options, const ResultCallback& on_result);
  // Convenience: the results of every item in order, or the first item's error.
  Result<std::vector<std::string>> Map(const std::string& function,
                                       const std::vector<std::string>& items,
                                       const MapOptions& options = {});

  // Makes a running Map stop soon (cancelling its job); safe from a signal handler.
  static void Interrupt();

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  // Submits `request` (a Submit) and runs the job to its end.
  Result<JobSummary> Run(wire::Request& request, ItemSource& items, const MapOptions& options,
                         const ResultCallback& on_result);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobd
