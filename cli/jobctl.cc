// jobctl: the command line of jobd.
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "cli/joblog.h"
#include "cli/words.h"
#include "jobd.pb.h"
#include "jobd/client.h"

namespace {

// Which jobd to reach: a local socket, or a head by its cluster file.
struct Target {
  std::string socket;        // empty: the default endpoint
  std::string cluster_file;  // set: reach that cluster's head over TCP
  jobd::Result<jobd::Client> Connect() const {
    return cluster_file.empty() ? jobd::Client::Connect(socket)
                                : jobd::Client::ConnectCluster(cluster_file);
  }
};

// Exit statuses, documented in --help.
enum Exit : int {
  kOk = 0,
  kItemsFailed = 1,
  kBadUsage = 2,
  kNoDaemon = 3,
  kJobFailed = 4,
  kInterrupted = 130,
};

constexpr const char* kHelp = R"(usage: jobctl [--socket ENDPOINT | --cluster-file FILE] COMMAND [ARGS...]
       jobctl --help | --version

Runs functions over many items on jobd's warm worker processes, one per core.

commands:
  map FUNCTION [ITEM...]   apply FUNCTION to every ITEM (or to each line of stdin)
  starmap FUNCTION         the same with several arguments per item (--zip, TSV)
  functions                list the functions each pool offers
  status                   pools, workers (pid, state, tasks, restarts), running jobs
  jobs                     running jobs and the last finished ones: items done, failed,
                           retried, who submitted them, when, how long, how they ended
  job JOB                  one job in full, with its failed items' first errors
  metrics                  counters and gauges in Prometheus' text format (items, tasks,
                           workers, queue, payload bytes, job durations, jobd's memory)
  cancel JOB               stop a running job (its number is in `jobctl status`)
  ping                     check that jobd answers
  shutdown                 let running jobs finish, then stop jobd
  help [COMMAND]           this text, or a command's

--socket ENDPOINT   jobd's endpoint (default ipc://$XDG_RUNTIME_DIR/jobd/jobd.sock,
                    or $JOBD_SOCKET)
--cluster-file FILE reach the jobd that wrote FILE (jobd --cluster-file) over TCP,
                    from any host that can read FILE (or $JOBD_CLUSTER_FILE)

examples:
  jobctl map sha256 --files *.iso          # like sha256sum, on every core
  seq 1 64 | jobctl map primes             # one item per line of stdin
  jobctl map --pool io sleep 100 200 300   # a pool with many workers for I/O

exit status: 0 all went well; 1 some items failed (see stderr); 2 bad usage;
3 no jobd answering; 4 the job was refused or broken off; 130 interrupted.
)";

constexpr const char* kMapUsage = R"(usage: jobctl map FUNCTION [OPTIONS] [ITEM...]
       jobctl map --exec 'COMMAND {}' [OPTIONS] [ITEM...]
       jobctl map --python MODULE:FUNCTION [OPTIONS] [ITEM...]

Applies FUNCTION (or runs COMMAND) for every item on the workers of a pool and
prints one result per line, in input order. Items are the ITEM arguments;
without any, each line of stdin is an item (read and sent in windows, so stdin
may be endless).

options:
  --exec 'COMMAND'     run COMMAND once per item instead of a function (like
                       xargs -I{} or GNU parallel). Replacement strings: {} the
                       item, {.} without extension, {/} basename, {//} dirname,
                       {/.} basename without extension, {#} item number, {%}
                       worker slot. No {} at all: the item goes to stdin. The
                       item is one argument, never parsed by a shell; COMMAND
                       runs in this directory with this environment (PATH
                       too); its stdout (less one trailing
                       newline) is the result, a non-zero exit the item's error
  --shell              with --exec or --stream: run COMMAND with /bin/sh -c
                       (pipes, redirections); items are quoted for the shell
  --stream 'COMMAND'   each worker runs COMMAND once for the job and feeds it
                       items on stdin, one per line, reading one result line
                       per item from its stdout; for Python, jobd_stream.py
                       (share/jobd/stream/ when installed, worker/stream/ in
                       the source tree) makes a function a stream
  --framed             with --stream: items and results are length-prefixed
                       frames ("<length>\n<bytes>"), for binary or multi-line items
  --python MODULE:FUNCTION
                       call a Python function on each item (a str) and print
                       str() of its result; an exception fails that item. The
                       module is found on PYTHONPATH or in this directory and
                       runs with python3 from PATH, here, with this environment.
                       Each worker keeps its interpreter warm for later jobs
                       (imports done), and replaces it when a module it
                       imported has changed
  -0, --null           stdin items are separated by NUL, not newline
  --files              each ITEM (or stdin line) names a file whose whole
                       contents is one item (large files go through shared memory;
                       with --cluster-file the worker reads it on the host where
                       it runs: a shared file system); a file that cannot be read
                       is a failed item
  --unordered          print results as they complete, not in input order
  --json               print one JSON record per item:
                       {"index":N,"ok":true,"result":"..."} or
                       {"index":N,"ok":false,"error":"..."}; index counts
                       from 0; a failed item keeps its line
  --failed-as TEXT     print TEXT on stdout for a failed item (its error still
                       goes to stderr): one output line per input line, so
                       `paste` and line numbers stay aligned
  --joblog FILE        append a line per item to FILE in GNU parallel's format
                       (Seq Host Starttime JobRuntime Send Receive Exitval Signal
                       Command, tab-separated; Seq counts input items from 1)
  --resume             with --joblog: skip the items FILE shows done, so an
                       interrupted run (Ctrl-C, jobctl or jobd killed) finishes
                       with each item done once across the runs
  --resume-failed      with --joblog: the same, but run failed items again
  --pool NAME          run in pool NAME (default: jobd's default pool); for
                       I/O-bound work (downloads, waiting on other programs)
                       --pool io, which has many more workers than cores
  --chunksize N        items per task (default: adapted to the cost of an item)
  --workers N          use at most N of the pool's workers at once (default: all)
  --timeout SECONDS    stop an item that runs longer (its worker is replaced);
                       it is retried, then fails "timed out" (at most the pool's
                       task_timeout)
  --retries N          times an item may be retried after killing a worker or
                       timing out (at most the pool's retries)
  --plugin PATH.so     FUNCTION comes from this plugin (see include/jobd/plugin.h);
                       each worker loads it once and keeps it
  --resubmit           if jobd dies mid-job, wait for it to come back (up to
                       600 s) and resubmit the items without a result: each
                       result is still printed exactly once, in order
  --resubmit-wait SECONDS
                       like --resubmit, waiting up to SECONDS
  --progress           show progress on stderr (default: when stderr is a terminal)
  --no-progress        never show progress

A failed item prints nothing on stdout; its index and error go to stderr and
the exit status is 1. Every other item still runs. `jobctl functions` lists
the functions; Ctrl-C cancels the job.
)";

constexpr const char* kStarmapUsage = R"(usage: jobctl starmap FUNCTION [OPTIONS] [--const VALUE]... [--zip FILE...]
       jobctl starmap --exec 'COMMAND {1} {2}' [OPTIONS] ...

Like map, but every item is a tuple of arguments, as Python's
pool.starmap(f, zip(a, b)): each line of stdin is an item whose tab-separated
columns are its arguments, or --zip A.txt B.txt makes item n of line n of each
file. Every item must have as many arguments as the first.

options (besides map's --pool, --chunksize, --workers, --json, --unordered,
--plugin, --exec, --stream, --framed, --shell, --resubmit):
  --zip FILE...        one argument per file, line by line, in lockstep (a CRLF
                       line ending, in these files or in TSV, is a line ending)
  --const VALUE        an argument put first in every item (repeatable): the
                       zip(itertools.repeat(VALUE), items) idiom

Functions receive every argument: plugins as args[0..n), commands as {1} {2}
... ({} is all of them joined by spaces; without replacement strings the
command reads them tab-separated on stdin), stream coprocesses as one
tab-separated line (or, --framed, "*<count>\n" then one frame each).
Builtin functions take one argument.
)";

int Usage(const char* text, const std::string& problem) {
  std::fprintf(stderr, "jobctl: %s\n\n%s", problem.c_str(), text);
  return kBadUsage;
}

void AppendJsonString(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

void OnInterrupt(int) { jobd::Client::Interrupt(); }

// Progress on stderr, redrawn at most five times a second.
class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled), total_(total) {}
  void Update(uint64_t done, uint64_t failed) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - drawn_ < std::chrono::milliseconds(200)) return;
    drawn_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\r\033[K%llu", static_cast<unsigned long long>(done));
    if (total_ > 0) std::fprintf(stderr, "/%llu", static_cast<unsigned long long>(total_));
    std::fprintf(stderr, " items, %llu failed, %.0f items/s, %.1f s",
                 static_cast<unsigned long long>(failed), seconds > 0 ? done / seconds : 0.0, seconds);
  }
  void Finish() {
    if (enabled_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool enabled_;
  uint64_t total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drawn_{};
};

// A whole number from 1 to 65536 in `text`, if it is one.
bool ParseCount(const std::string* text, uint32_t* out) {
  if (text == nullptr) return false;
  char* end = nullptr;
  const long n = std::strtol(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || n < 1 || n > 65536) return false;
  *out = static_cast<uint32_t>(n);
  return true;
}

// Seconds, fractions allowed: more than 0, at most a day.
bool ParseSeconds(const std::string* text, double* out) {
  if (text == nullptr || text->empty()) return false;
  char* end = nullptr;
  const double seconds = std::strtod(text->c_str(), &end);
  if (*end != '\0' || !(seconds > 0 && seconds <= 86400)) return false;
  *out = seconds;
  return true;
}

int ConnectFailed(const jobd::Status& status) {
  std::fprintf(stderr, "jobctl: %s\n", status.message().c_str());
  return kNoDaemon;
}

int Map(const Target& target, std::vector<std::string> args, bool starmap) {
  jobd::MapOptions options;
  bool null_separated = false, files = false, json = false, shell = false;
  bool stream = false, framed = false;
  std::optional<std::string> python;  // MODULE:FUNCTION
  std::vector<std::string> zip, constants;  // starmap
  std::optional<std::string> command;
  std::optional<std::string> failed_as;  // printed for a failed item
  std::string joblog_path;
  jobd::JobLog::Resume resume = jobd::JobLog::Resume::kNo;
  bool progress = isatty(STDERR_FILENO);
  std::string function;
  std::vector<std::string> items;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (arg == "-h" || arg == "--help") {
      std::fputs(starmap ? kStarmapUsage : kMapUsage, stdout);
      return kOk;
    } else if (arg == "-0" || arg == "--null") {
      null_separated = true;
    } else if (arg == "--files") {
      files = true;
    } else if (arg == "--plugin") {
      const std::string* path = value();
      if (path == nullptr) return Usage(kMapUsage, "--plugin needs a PATH.so");
      options.plugin = *path;
    } else if (arg == "--exec") {
      const std::string* text = value();
      if (text == nullptr) return Usage(kMapUsage, "--exec needs a COMMAND");
      command = *text;
    } else if (arg == "--shell") {
      shell = true;
    } else if (arg == "--stream") {
      const std::string* text = value();
      if (text == nullptr) return Usage(kMapUsage, "--stream needs a COMMAND");
      command = *text;
      stream = true;
    } else if (arg == "--framed") {
      framed = true;
    } else if (arg == "--python") {
      const std::string* name = value();
      if (name == nullptr) return Usage(kMapUsage, "--python needs a MODULE:FUNCTION");
      python = *name;
    } else if (starmap && arg == "--zip") {
      while (i + 1 < args.size() && (args[i + 1].empty() || args[i + 1][0] != '-')) {
        zip.push_back(args[++i]);
      }
      if (zip.empty()) return Usage(kStarmapUsage, "--zip needs FILEs");
    } else if (starmap && arg == "--const") {
      const std::string* constant = value();
      if (constant == nullptr) return Usage(kStarmapUsage, "--const needs a VALUE");
      constants.push_back(*constant);
    } else if (arg == "--unordered") {
      options.ordered = false;
    } else if (arg == "--joblog") {
      const std::string* path = value();
      if (path == nullptr) return Usage(kMapUsage, "--joblog needs a FILE");
      joblog_path = *path;
    } else if (arg == "--resume") {
      resume = jobd::JobLog::Resume::kDone;
    } else if (arg == "--resume-failed") {
      resume = jobd::JobLog::Resume::kSucceeded;
    } else if (arg == "--failed-as") {
      const std::string* text = value();
      if (text == nullptr) return Usage(kMapUsage, "--failed-as needs a TEXT (it may be empty)");
      failed_as = *text;
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--progress") {
      progress = true;
    } else if (arg == "--no-progress") {
      progress = false;
    } else if (arg == "--pool") {
      const std::string* pool = value();
      if (pool == nullptr) return Usage(kMapUsage, "--pool needs a NAME");
      options.pool = *pool;
    } else if (arg == "--chunksize") {
      if (!ParseCount(value(), &options.chunksize)) {
        return Usage(kMapUsage, "--chunksize needs a whole number from 1 to 65536");
      }
    } else if (arg == "--workers") {
      if (!ParseCount(value(), &options.max_workers)) {
        return Usage(kMapUsage, "--workers needs a whole number from 1 to 65536");
      }
    } else if (arg == "--retries") {
      const std::string* n = value();
      uint32_t retries = 0;
      if (n != nullptr && *n == "0") {
        options.retries = 0;
      } else if (ParseCount(n, &retries)) {
        options.retries = retries;
      } else {
        return Usage(kMapUsage, "--retries needs a whole number from 0 to 65536");
      }
    } else if (arg == "--timeout") {
      if (!ParseSeconds(value(), &options.timeout_seconds)) {
        return Usage(kMapUsage, "--timeout needs seconds, more than 0 and at most 86400");
      }
    } else if (arg == "--resubmit") {
      options.resubmit_wait_seconds = 600;
    } else if (arg == "--resubmit-wait") {
      if (!ParseSeconds(value(), &options.resubmit_wait_seconds)) {
        return Usage(kMapUsage, "--resubmit-wait needs seconds, more than 0 and at most 86400");
      }
    } else if (arg == "--") {
      items.insert(items.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return Usage(kMapUsage, "unknown option '" + arg + "' (items that start with '-' go after --)");
    } else if (function.empty() && !command && !python) {
      function = arg;
    } else {
      items.push_back(arg);
    }
  }
  if (command && python) return Usage(kMapUsage, "--python and --exec or --stream exclude each other");
  if ((command || python) && !function.empty()) {
    return Usage(kMapUsage, "'" + function + "' comes before " +
                                (python ? "--python" : stream ? "--stream" : "--exec") +
                                ", where a FUNCTION would: with a command or a Python function "
                                "there is none; put items after it (or on stdin)");
  }
  if (function.empty() && !command && !python) {
    return Usage(kMapUsage, "map needs a FUNCTION (see `jobctl functions`), --exec 'COMMAND' or "
                            "--python MODULE:FUNCTION");
  }
  if (shell && !command) return Usage(kMapUsage, "--shell goes with --exec or --stream");
  if (framed && !stream) return Usage(kMapUsage, "--framed goes with --stream");
  jobd::Command exec;
  exec.shell = shell;
  exec.mode = !stream ? jobd::Command::Mode::kPerItem
              : framed ? jobd::Command::Mode::kFrames
                       : jobd::Command::Mode::kLines;
  if (command && shell) {
    exec.argv = {*command};
  } else if (command) {
    jobd::Result<std::vector<std::string>> words = jobd::SplitWords(*command);
    if (!words.ok()) return Usage(kMapUsage, "--exec: " + words.message());
    exec.argv = std::move(words).value();
  }
  jobd::Result<jobd::Client> client = target.Connect();
  if (!client.ok()) return ConnectFailed(client.status());

  // Files named on stdin: read the names first (a file list is small).
  if (files && items.empty()) {
    jobd::DelimitedSource names(STDIN_FILENO, null_separated ? '\0' : '\n');
    struct Names : jobd::ItemSink {
      std::vector<std::string>* out;
      jobd::Status Add(std::string_view bytes) override {
        out->emplace_back(bytes);
        return {};
      }
      jobd::Status AddFile(const std::string&) override { return {}; }
      jobd::Status AddArgs(const std::vector<std::string_view>&) override { return {}; }
      bool Full() const override { return false; }
    } sink;
    sink.out = &items;
    while (true) {
      jobd::Result<bool> more = names.Read(sink, SIZE_MAX);
      if (!more.ok()) {
        std::fprintf(stderr, "jobctl: %s\n", more.message().c_str());
        return kJobFailed;
      }
      if (!*more) break;
    }
  }
  std::unique_ptr<jobd::ItemSource> source;
  const bool from_stdin = items.empty() && !files;
  options.starmap = starmap;
  if (starmap) {
    if (!items.empty() || files || null_separated) {
      return Usage(kStarmapUsage, "starmap reads its items from --zip FILEs or TSV on stdin");
    }
    if (!zip.empty()) {
      auto zipped = jobd::ZipSource::Open(zip, constants);
      if (!zipped.ok()) return Usage(kStarmapUsage, zipped.message());
      source = std::move(zipped).value();
    } else {
      source = std::make_unique<jobd::TsvSource>(STDIN_FILENO, constants);
    }
  } else if (files) {
    source = std::make_unique<jobd::FileSource>(items);
  } else if (from_stdin) {
    source = std::make_unique<jobd::DelimitedSource>(STDIN_FILENO, null_separated ? '\0' : '\n');
  } else {
    source = std::make_unique<jobd::VectorSource>(items);
  }
  if (resume != jobd::JobLog::Resume::kNo && joblog_path.empty()) {
    return Usage(kMapUsage, "--resume and --resume-failed read the log of --joblog FILE");
  }
  std::unique_ptr<jobd::JobLog> joblog;
  std::unique_ptr<jobd::ItemSource> logged;
  if (!joblog_path.empty()) {
    jobd::Result<std::unique_ptr<jobd::JobLog>> opened = jobd::JobLog::Open(joblog_path, resume);
    if (!opened.ok()) {
      std::fprintf(stderr, "jobctl: %s\n", opened.message().c_str());
      return kJobFailed;
    }
    joblog = std::move(opened).value();
    logged = joblog->Wrap(*source);
    if (joblog->skipped() > 0) {
      std::fprintf(stderr, "jobctl: %zu items done already, as %s shows: skipped\n",
                   joblog->skipped(), joblog_path.c_str());
    }
  }
  jobd::ItemSource& input = logged ? *logged : *source;

  // No SA_RESTART: a blocked read returns, and the job is cancelled.
  struct sigaction interrupt{};
  interrupt.sa_handler = OnInterrupt;
  sigaction(SIGINT, &interrupt, nullptr);
  sigaction(SIGTERM, &interrupt, nullptr);
  Progress shown(progress, from_stdin ? 0 : items.size());
  options.on_notice = [&](const std::string& message) {
    std::fprintf(stderr, "%sjobctl: %s\n", progress ? "\r\033[K" : "", message.c_str());
  };
  uint64_t done = 0, failed = 0;
  std::string line;
  auto print = [&](const jobd::ItemResult& result) -> jobd::Status {
        ++done;
        line.clear();
        // Its place in the input (from 1): a resumed run skips what was done.
        const uint64_t number = joblog ? joblog->SeqOf(result.index) : result.index + 1;
        if (json) {
          line = "{\"index\":" + std::to_string(number - 1) +
                 (result.ok ? ",\"ok\":true,\"result\":" : ",\"ok\":false,\"error\":");
          AppendJsonString(&line, result.value);
          line += "}\n";
        } else if (result.ok) {
          line.assign(result.value);
          line.push_back('\n');
        } else if (failed_as) {
          line = *failed_as + "\n";
        }
        if (!result.ok) {
          ++failed;
          // Counted as people count lines: the first item is item 1 (--json's index is 0).
          std::fprintf(stderr, "%sjobctl: item %llu failed: %.*s\n", progress ? "\r\033[K" : "",
                       static_cast<unsigned long long>(number),
                       static_cast<int>(result.value.size()), result.value.data());
        }
        if (!line.empty() && std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) {
          if (errno == EINTR) return jobd::Status::Error("interrupted while writing results");
          return jobd::Status::Error(std::string("cannot write results: ") + std::strerror(errno));
        }
        if (joblog) joblog->Log(result);
        shown.Update(done, failed);
        return {};
      };
  // A pipe gets each result as it comes; the job log follows the results it
  // logs, so that a run killed in between repeats an item rather than lose it.
  jobd::Status log_written;
  options.after_results = [&] {
    std::fflush(stdout);
    if (joblog && log_written.ok()) log_written = joblog->Flush();
  };
  jobd::PythonFunction python_function;
  if (python) python_function.function = *python;
  jobd::Result<jobd::JobSummary> summary =
      python    ? client->MapPython(python_function, input, options, print)
      : command ? client->MapCommand(exec, input, options, print)
                : client->Map(function, input, options, print);
  options.after_results();
  shown.Finish();
  if (!log_written.ok()) {
    std::fprintf(stderr, "jobctl: %s\n", log_written.message().c_str());
    return kJobFailed;
  }
  if (!summary.ok()) {
    std::fprintf(stderr, "jobctl: %s\n", summary.message().c_str());
    return summary.message().rfind("interrupted", 0) == 0 ? kInterrupted : kJobFailed;
  }
  if (failed > 0) {
    std::fprintf(stderr, "jobctl: %llu of %llu items failed\n",
                 static_cast<unsigned long long>(failed), static_cast<unsigned long long>(done));
    return kItemsFailed;
  }
  return kOk;
}

// "512 B", "3.2 KiB", "12.0 MiB", "1.5 GiB".
std::string Bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

void PrintStatus(const jobd::wire::StatusReport& report, const std::string& endpoint) {
  std::printf("jobd %s, pid %u, up %.1f s, serving %s\n", report.version().c_str(), report.pid(),
              report.uptime_seconds(), endpoint.c_str());
  if (!report.draining().empty()) std::printf("shutting down: %s\n", report.draining().c_str());
  for (const auto& pool : report.pools()) {
    std::printf("\npool %s%s: %d workers, retries %u\n", pool.name().c_str(),
                pool.name() == report.default_pool() ? " (default)" : "", pool.workers_size(),
                pool.retries());
    if (!pool.degraded().empty()) std::printf("  %s\n", pool.degraded().c_str());
    if (!pool.reload().empty()) std::printf("  reload: %s\n", pool.reload().c_str());
    std::printf("  payloads: %s inline, %s in shared memory\n",
                Bytes(pool.payload_bytes_inline()).c_str(),
                Bytes(pool.payload_bytes_shared()).c_str());
    std::printf("  %-5s %-8s %-9s %10s %9s\n", "SLOT", "PID", "STATE", "TASKS", "RESTARTS");
    for (const auto& w : pool.workers()) {
      std::printf("  %-5u %-8u %-9s %10llu %9u\n", w.slot(), w.pid(), w.state().c_str(),
                  static_cast<unsigned long long>(w.tasks_done()), w.restarts());
    }
  }
  if (!report.head().empty()) std::printf("\na node of the head at %s\n", report.head().c_str());
  if (report.nodes_size() > 0) {
    const auto serving = std::count_if(report.nodes().begin(), report.nodes().end(),
                                       [](const auto& node) { return node.state() == "serving"; });
    std::printf("\nnodes: %ld serving, %u lost so far\n", static_cast<long>(serving),
                report.nodes_lost());
    std::printf("  %-12s %-16s %-8s %-9s %7s %7s %10s %5s %8s %6s\n", "NODE", "HOST", "PID",
                "STATE", "WORKERS", "RUNNING", "TASKS", "LOST", "REJOINED", "HEARD");
    for (const auto& node : report.nodes()) {
      std::printf("  %-12s %-16s %-8u %-9s %7u %7u %10llu %5u %8u %5.1fs\n", node.name().c_str(),
                  node.host().c_str(), node.pid(), node.state().c_str(), node.workers(),
                  node.tasks_running(), static_cast<unsigned long long>(node.tasks_done()),
                  node.times_lost(), node.rejoined(), node.seconds_since_heard());
    }
  }
  std::printf("\n%d running jobs\n", report.jobs_size());
  if (report.jobs_size() == 0) return;
  std::printf("  %-6s %-12s %-8s %-8s %12s %8s %9s\n", "JOB", "FUNCTION", "POOL", "CLIENT", "DONE",
              "FAILED", "SECONDS");
  for (const auto& job : report.jobs()) {
    const std::string done = std::to_string(job.done()) + "/" + std::to_string(job.received()) +
                             (job.input_complete() ? "" : "+");
    std::printf("  %-6llu %-12s %-8s %-8u %12s %8llu %9.1f\n",
                static_cast<unsigned long long>(job.id()), job.function().c_str(),
                job.pool().c_str(), job.client_pid(), done.c_str(),
                static_cast<unsigned long long>(job.failed()), job.seconds());
  }
}

// "2026-12-02 13:40:03", local time.
std::string LocalTime(double unix_seconds) {
  const time_t seconds = static_cast<time_t>(unix_seconds);
  tm local{};
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

void PrintJobs(const jobd::wire::JobList& list) {
  std::printf("%-6s %-10s %-20s %-8s %10s %7s %7s %-19s %9s  %s\n", "JOB", "STATE", "FUNCTION",
              "POOL", "DONE", "FAILED", "RETRIED", "STARTED", "SECONDS", "SUBMITTER");
  for (const auto& job : list.jobs()) {
    const std::string done = std::to_string(job.succeeded() + job.failed()) + "/" +
                             std::to_string(job.received());
    const std::string submitter =
        job.pid() == 0 ? std::string("a client on another host")
                       : "pid " + std::to_string(job.pid()) +
                             (job.command().empty() ? "" : ": " + job.command());
    std::printf("%-6llu %-10s %-20.20s %-8s %10s %7llu %7llu %-19s %9.2f  %.60s\n",
                static_cast<unsigned long long>(job.id()), job.state().c_str(),
                job.function().c_str(), job.pool().c_str(), done.c_str(),
                static_cast<unsigned long long>(job.failed()),
                static_cast<unsigned long long>(job.retried()), LocalTime(job.started()).c_str(),
                job.seconds(), submitter.c_str());
  }
}

void PrintJob(const jobd::wire::JobList& list) {
  const auto& job = list.jobs(0);
  std::printf("job %llu: %s\n", static_cast<unsigned long long>(job.id()), job.state().c_str());
  if (!job.error().empty()) std::printf("  why:       %s\n", job.error().c_str());
  std::printf("  function:  %s\n  pool:      %s\n", job.function().c_str(), job.pool().c_str());
  if (job.pid() == 0) {
    std::printf("  submitter: a client on another host (uid %u)\n", job.uid());
  } else {
    std::printf("  submitter: uid %u, pid %u: %s\n", job.uid(), job.pid(), job.command().c_str());
  }
  std::printf("  started:   %s, ran %.2f s\n", LocalTime(job.started()).c_str(), job.seconds());
  std::printf("  items:     %llu received, %llu succeeded, %llu failed, %llu retried\n",
              static_cast<unsigned long long>(job.received()),
              static_cast<unsigned long long>(job.succeeded()),
              static_cast<unsigned long long>(job.failed()),
              static_cast<unsigned long long>(job.retried()));
  if (job.errors_size() > 0) {
    std::printf("  failed items (the first %d; counted from 1, as in messages):\n",
                job.errors_size());
  }
  for (const auto& error : job.errors()) {
    std::printf("    item %llu: %s\n", static_cast<unsigned long long>(error.index() + 1),
                error.error().c_str());
  }
}

void PrintFunctions(const jobd::wire::FunctionList& list) {
  for (const auto& pool : list.pools()) {
    std::printf("pool %s:\n", pool.name().c_str());
    for (const auto& f : pool.functions()) {
      std::printf("  %-10s %s\n", f.name().c_str(), f.summary().c_str());
    }
  }
}

// Prints what a query returned: as JSON, or as text for people.
template <typename Report, typename Print>
int Show(const jobd::Result<Report>& report, bool json, Print print) {
  if (!report.ok()) return ConnectFailed(report.status());
  if (json) {
    std::fputs(ToJson(*report).c_str(), stdout);
  } else {
    print(*report);
  }
  return kOk;
}

// status, functions, ping, shutdown: one request each.
int Query(const Target& target, const std::string& command, bool json) {
  jobd::Result<jobd::Client> client = target.Connect();
  if (!client.ok()) return ConnectFailed(client.status());
  const std::string& endpoint = client->endpoint();
  const unsigned pid = client->daemon_pid();
  if (command == "status") {
    return Show(client->Status(), json, [&](const auto& r) { PrintStatus(r, endpoint); });
  }
  if (command == "functions") return Show(client->Functions(), json, PrintFunctions);
  if (command == "jobs") return Show(client->Jobs(), json, PrintJobs);
  if (command == "metrics") {
    jobd::Result<std::string> text = client->Metrics();
    if (!text.ok()) return ConnectFailed(text.status());
    std::fputs(text->c_str(), stdout);
    return kOk;
  }
  if (command == "ping") {
    if (json) {
      std::printf("{\"pid\": %u, \"endpoint\": \"%s\"}\n", pid, endpoint.c_str());
    } else {
      std::printf("jobd (pid %u) answers at %s\n", pid, endpoint.c_str());
    }
    return kOk;
  }
  jobd::Result<uint32_t> running = client->Shutdown();
  if (!running.ok()) return ConnectFailed(running.status());
  std::printf("jobd (pid %u) is stopping after %u running jobs finish\n", pid, *running);
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  Target target;
  if (const char* env = std::getenv("JOBD_SOCKET")) target.socket = env;
  if (const char* env = std::getenv("JOBD_CLUSTER_FILE")) target.cluster_file = env;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    const std::string arg = argv[i];
    if (arg == "--version") {
      std::printf("jobctl %s\n", JOBD_VERSION);
      return kOk;
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(kHelp, stdout);
      return kOk;
    } else if (arg == "--socket" && i + 1 < argc) {
      target.socket = argv[++i];
      target.cluster_file.clear();
    } else if (arg == "--cluster-file" && i + 1 < argc) {
      target.cluster_file = argv[++i];
    } else {
      return Usage(kHelp, "unknown option '" + arg + "'");
    }
  }
  if (i >= argc) return Usage(kHelp, "missing COMMAND");
  const std::string command = argv[i];
  std::vector<std::string> args(argv + i + 1, argv + argc);
  const bool json = args.size() == 1 && args[0] == "--json";
  if (!args.empty() && !json && command != "map" && command != "starmap" && command != "help" &&
      command != "cancel" && command != "job") {
    return Usage(kHelp, command + " takes no arguments but --json");
  }
  try {
    if (command == "map" || command == "starmap") return Map(target, args, command == "starmap");
    if (command == "status" || command == "functions" || command == "ping" ||
        command == "shutdown" || command == "jobs" || command == "metrics") {
      return Query(target, command, json);
    }
    if (command == "cancel" || command == "job") {
      const bool job_json = command == "job" && args.size() == 2 && args[1] == "--json";
      char* end = nullptr;
      const unsigned long long job = !args.empty() ? std::strtoull(args[0].c_str(), &end, 10) : 0;
      if ((args.size() != 1 && !job_json) || *end != '\0' || job == 0) {
        return Usage(kHelp, command + " needs one JOB number (see `jobctl " +
                                (command == "job" ? "jobs" : "status") + "`)");
      }
      jobd::Result<jobd::Client> client = target.Connect();
      if (!client.ok()) return ConnectFailed(client.status());
      if (command == "job") {
        jobd::Result<jobd::wire::JobList> one = client->Jobs(job);
        if (!one.ok() && one.message().rfind("jobd knows no job", 0) == 0) {
          std::fprintf(stderr, "jobctl: %s\n", one.message().c_str());
          return kJobFailed;
        }
        return Show(one, job_json, PrintJob);
      }
      if (!client.ok()) return ConnectFailed(client.status());
      jobd::Result<uint64_t> done = client->Cancel(job);
      if (!done.ok()) {
        std::fprintf(stderr, "jobctl: %s\n", done.message().c_str());
        return kJobFailed;
      }
      std::printf("job %llu cancelled after %llu items\n", job, static_cast<unsigned long long>(*done));
      return kOk;
    }
    if (command == "help") {
      std::fputs(!args.empty() && args[0] == "map"       ? kMapUsage
                 : !args.empty() && args[0] == "starmap" ? kStarmapUsage
                                                         : kHelp,
                 stdout);
      return kOk;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jobctl: %s\n", e.what());
    return kJobFailed;
  }
  return Usage(kHelp, "unknown command '" + command + "'");
}
