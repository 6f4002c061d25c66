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
#include "common/command_line.h"
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

constexpr const char* kSynopsis =
    R"(usage: jobctl [--socket ENDPOINT | --cluster-file FILE] COMMAND [ARGS...]
       jobctl [COMMAND] --help | --version)";

constexpr const char* kFooter = R"(examples:
  jobctl map sha256 --files *.iso          # like sha256sum, on every core
  seq 1 64 | jobctl map primes             # one item per line of stdin
  jobctl map --pool io sleep 100 200 300   # a pool with many workers for I/O

exit status: 0 all went well; 1 some items failed (see stderr); 2 bad usage;
3 no jobd answering; 4 the job was refused or broken off; 130 interrupted.)";

constexpr const char* kMapSynopsis = R"(usage: jobctl map FUNCTION [OPTIONS] [ITEM...]
       jobctl map --exec 'COMMAND {}' [OPTIONS] [ITEM...]
       jobctl map --python MODULE:FUNCTION [OPTIONS] [ITEM...])";

constexpr const char* kMapDescription =
    R"(Applies FUNCTION (or runs COMMAND) for every item on the workers of a pool and
prints one result per line, in input order. Items are the ITEM arguments;
without any, each line of stdin is an item (read and sent in windows, so stdin
may be endless).)";

constexpr const char* kMapFooter =
    R"(A failed item prints nothing on stdout; its index and error go to stderr and
the exit status is 1. Every other item still runs. `jobctl functions` lists
the functions; Ctrl-C cancels the job.)";

constexpr const char* kStarmapSynopsis =
    R"(usage: jobctl starmap FUNCTION [OPTIONS] [--const VALUE]... [--zip FILE...]
       jobctl starmap --exec 'COMMAND {1} {2}' [OPTIONS] ...)";

constexpr const char* kStarmapDescription =
    R"(Like map, but every item is a tuple of arguments, as Python's
pool.starmap(f, zip(a, b)): each line of stdin is an item whose tab-separated
columns are its arguments, or --zip A.txt B.txt makes item n of line n of each
file. Every item must have as many arguments as the first.)";

constexpr const char* kStarmapFooter =
    R"(Functions receive every argument: plugins as args[0..n), commands as {1} {2}
... ({} is all of them joined by spaces; without replacement strings the
command reads them tab-separated on stdin), stream coprocesses as one
tab-separated line (or, --framed, "*<count>\n" then one frame each).
Builtin functions take one argument.)";

// What `jobctl map` (or starmap) was told.
struct MapArgs {
  bool starmap = false;
  jobd::MapOptions options;
  bool null_separated = false, files = false, json = false, shell = false, framed = false;
  bool progress = isatty(STDERR_FILENO);
  std::string exec, stream, python;  // the command, or MODULE:FUNCTION, when given
  std::vector<std::string> words;    // FUNCTION (unless a command or --python), then ITEMs
  std::vector<std::string> zip, constants;  // starmap
  std::optional<std::string> failed_as;     // printed for a failed item
  std::string joblog_path;
  jobd::JobLog::Resume resume = jobd::JobLog::Resume::kNo;
  // A word that came before --exec, --stream or --python: a FUNCTION where
  // none goes (a mistake), not an item.
  std::string function_before;
};

// `jobctl map` (or starmap) and its options, the help included.
CLI::App* AddMap(CLI::App& app, jobd::HelpFormatter& help, MapArgs* args, bool starmap) {
  CLI::App* map = app.add_subcommand(starmap ? "starmap" : "map",
                                     starmap ? "the same with several arguments per item (--zip, TSV)"
                                             : "apply FUNCTION to every ITEM (or to each line of stdin)");
  args->starmap = starmap;
  map->footer(starmap ? kStarmapFooter : kMapFooter);
  help.Describe(map, starmap ? kStarmapSynopsis : kMapSynopsis,
                starmap ? kStarmapDescription : kMapDescription);
  map->add_option("ITEM", args->words,
                  "the FUNCTION (see `jobctl functions`; none with --exec, --stream or\n"
                  "--python), then the items; an item that starts with '-' goes after --")
      ->type_name("");
  jobd::MapOptions& options = args->options;

  const char* run = "What runs";
  CLI::Option* exec = map->add_option("--exec", args->exec,
      "run COMMAND once per item instead of a function (like xargs -I{} or\n"
      "GNU parallel). Replacement strings: {} the item, {.} without extension,\n"
      "{/} basename, {//} dirname, {/.} basename without extension, {#} item\n"
      "number, {%} worker slot. No {} at all: the item goes to stdin. The item\n"
      "is one argument, never parsed by a shell; COMMAND runs in this directory\n"
      "with this environment (PATH too); its stdout (less one trailing newline)\n"
      "is the result, a non-zero exit the item's error")->type_name("COMMAND")->group(run);
  CLI::Option* stream = map->add_option("--stream", args->stream,
      "each worker runs COMMAND once for the job and feeds it items on stdin,\n"
      "one per line, reading one result line per item from its stdout; for\n"
      "Python, jobd_stream.py (share/jobd/stream/ when installed, worker/stream/\n"
      "in the source tree) makes a function a stream")->type_name("COMMAND")->group(run);
  CLI::Option* shell = map->add_flag("--shell", args->shell,
      "with --exec or --stream: run COMMAND with /bin/sh -c (pipes,\n"
      "redirections); items are quoted for the shell")->group(run);
  map->add_flag("--framed", args->framed,
      "with --stream: items and results are length-prefixed frames\n"
      "(\"<length>\\n<bytes>\"), for binary or multi-line items")->group(run)->needs(stream);
  CLI::Option* python = map->add_option("--python", args->python,
      "call a Python function on each item (a str) and print str() of its\n"
      "result; an exception fails that item. The module is found on PYTHONPATH\n"
      "or in this directory and runs with python3 from PATH, here, with this\n"
      "environment. Each worker keeps its interpreter warm for later jobs\n"
      "(imports done), and replaces it when a module it imported has changed")
      ->type_name("MODULE:FUNCTION")->group(run)->excludes(exec)->excludes(stream);
  exec->excludes(stream);
  shell->excludes(python);
  map->add_option("--plugin", options.plugin,
      "FUNCTION comes from this plugin (see include/jobd/plugin.h); each worker\n"
      "loads it once and keeps it")->type_name("PATH.so")->group(run);
  map->add_option("--pool", options.pool,
      "run in pool NAME (default: jobd's default pool); for I/O-bound work\n"
      "(downloads, waiting on other programs) --pool io, which has many more\n"
      "workers than cores")->type_name("NAME")->group(run);

  const char* input = "Input";
  map->add_flag("-0,--null", args->null_separated,
                "stdin items are separated by NUL, not newline")->group(input);
  map->add_flag("--files", args->files,
      "each ITEM (or stdin line) names a file whose whole contents is one item\n"
      "(large files go through shared memory; with --cluster-file the worker\n"
      "reads it on the host where it runs: a shared file system); a file that\n"
      "cannot be read is a failed item")->group(input);
  if (starmap) {
    map->add_option("--zip", args->zip,
        "one argument per file, line by line, in lockstep (a CRLF line ending,\n"
        "in these files or in TSV, is a line ending)")->type_name("FILE...")->group(input);
    map->add_option("--const", args->constants,
        "an argument put first in every item (repeatable): the\n"
        "zip(itertools.repeat(VALUE), items) idiom")
        ->type_name("VALUE")->allow_extra_args(false)->group(input);
  }

  const char* output = "Output";
  map->add_flag_callback("--unordered", [&options] { options.ordered = false; },
                         "print results as they complete, not in input order")->group(output);
  map->add_flag("--json", args->json,
      "print one JSON record per item: {\"index\":N,\"ok\":true,\"result\":\"...\"}\n"
      "or {\"index\":N,\"ok\":false,\"error\":\"...\"}; index counts from 0; a\n"
      "failed item keeps its line")->group(output);
  map->add_option_function<std::string>("--failed-as",
      [args](const std::string& text) { args->failed_as = text; },
      "print TEXT on stdout for a failed item (its error still goes to stderr):\n"
      "one output line per input line, so `paste` and line numbers stay aligned")
      ->type_name("TEXT")->group(output);
  CLI::Option* joblog = map->add_option("--joblog", args->joblog_path,
      "append a line per item to FILE in GNU parallel's format (Seq Host\n"
      "Starttime JobRuntime Send Receive Exitval Signal Command, tab-separated;\n"
      "Seq counts input items from 1)")->type_name("FILE")->group(output);
  CLI::Option* resume = map->add_flag_callback("--resume",
      [args] { args->resume = jobd::JobLog::Resume::kDone; },
      "with --joblog: skip the items FILE shows done, so an interrupted run\n"
      "(Ctrl-C, jobctl or jobd killed) finishes with each item done once across\n"
      "the runs")->group(output)->needs(joblog);
  map->add_flag_callback("--resume-failed",
      [args] { args->resume = jobd::JobLog::Resume::kSucceeded; },
      "with --joblog: the same, but run failed items again")
      ->group(output)->needs(joblog)->excludes(resume);
  CLI::Option* progress = map->add_flag_callback("--progress", [args] { args->progress = true; },
      "show progress on stderr (default: when stderr is a terminal)")->group(output);
  map->add_flag_callback("--no-progress", [args] { args->progress = false; },
                         "never show progress")->group(output)->excludes(progress);

  const char* limits = "Scheduling and failures";
  map->add_option("--chunksize", options.chunksize,
                  "items per task (default: adapted to the cost of an item)")
      ->type_name("N")->check(jobd::WholeNumber(1, 65536))->group(limits);
  map->add_option("--workers", options.max_workers,
                  "use at most N of the pool's workers at once (default: all)")
      ->type_name("N")->check(jobd::WholeNumber(1, 65536))->group(limits);
  map->add_option("--timeout", options.timeout_seconds,
      "stop an item that runs longer (its worker is replaced); it is retried,\n"
      "then fails \"timed out\" (at most the pool's task_timeout)")
      ->type_name("SECONDS")->check(jobd::Seconds(86400))->group(limits);
  map->add_option_function<uint32_t>("--retries", [&options](const uint32_t& n) { options.retries = n; },
      "times an item may be retried after killing a worker or timing out (at\n"
      "most the pool's retries)")->type_name("N")->check(jobd::WholeNumber(0, 65536))->group(limits);
  CLI::Option* resubmit = map->add_flag_callback("--resubmit",
      [&options] { options.resubmit_wait_seconds = 600; },
      "if jobd dies mid-job, wait for it to come back (up to 600 s) and\n"
      "resubmit the items without a result: each result is still printed\n"
      "exactly once, in order")->group(limits);
  map->add_option("--resubmit-wait", options.resubmit_wait_seconds,
                  "like --resubmit, waiting up to SECONDS")
      ->type_name("SECONDS")->check(jobd::Seconds(86400))->group(limits)->excludes(resubmit);

  map->final_callback([map, args, exec, stream, python] {
    for (const CLI::Option* option : map->parse_order()) {
      if (option == exec || option == stream || option == python) return;
      if (option->get_positional()) {
        if (!exec->empty() || !stream->empty() || !python->empty()) {
          args->function_before = args->words.front();
        }
        return;
      }
    }
  });
  return map;
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

// A usage error found after parsing: said as the parser says its own.
int Usage(const std::string& command, const std::string& problem) {
  std::fprintf(stderr, "jobctl: %s\n(see `jobctl %s --help`)\n", problem.c_str(), command.c_str());
  return kBadUsage;
}

int ConnectFailed(const jobd::Status& status) {
  std::fprintf(stderr, "jobctl: %s\n", status.message().c_str());
  return kNoDaemon;
}

int Map(const Target& target, MapArgs& args) {
  const std::string name = args.starmap ? "starmap" : "map";
  jobd::MapOptions& options = args.options;
  const bool null_separated = args.null_separated, files = args.files, json = args.json;
  const bool shell = args.shell, stream = !args.stream.empty(), framed = args.framed;
  const bool progress = args.progress, starmap = args.starmap;
  const std::optional<std::string>& failed_as = args.failed_as;
  const std::string& joblog_path = args.joblog_path;
  const jobd::JobLog::Resume resume = args.resume;
  std::optional<std::string> command;
  if (!args.exec.empty()) command = args.exec;
  if (stream) command = args.stream;
  std::optional<std::string> python;
  if (!args.python.empty()) python = args.python;
  if (!args.function_before.empty()) {
    return Usage(name, "'" + args.function_before + "' comes before " +
                           (python ? "--python" : stream ? "--stream" : "--exec") +
                           ", where a FUNCTION would: with a command or a Python function "
                           "there is none; put items after it (or on stdin)");
  }
  std::string function;
  std::vector<std::string> items = std::move(args.words);
  if (!command && !python) {
    if (items.empty()) {
      return Usage(name, name + " needs a FUNCTION (see `jobctl functions`), --exec 'COMMAND' "
                                "or --python MODULE:FUNCTION");
    }
    function = items.front();
    items.erase(items.begin());
  }
  if (shell && !command) return Usage(name, "--shell goes with --exec or --stream");
  jobd::Command exec;
  exec.shell = shell;
  exec.mode = !stream ? jobd::Command::Mode::kPerItem
              : framed ? jobd::Command::Mode::kFrames
                       : jobd::Command::Mode::kLines;
  if (command && shell) {
    exec.argv = {*command};
  } else if (command) {
    jobd::Result<std::vector<std::string>> words = jobd::SplitWords(*command);
    if (!words.ok()) return Usage(name, "--exec: " + words.message());
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
      return Usage(name, "starmap reads its items from --zip FILEs or TSV on stdin");
    }
    if (!args.zip.empty()) {
      auto zipped = jobd::ZipSource::Open(args.zip, args.constants);
      if (!zipped.ok()) return Usage(name, zipped.message());
      source = std::move(zipped).value();
    } else {
      source = std::make_unique<jobd::TsvSource>(STDIN_FILENO, args.constants);
    }
  } else if (files) {
    source = std::make_unique<jobd::FileSource>(items);
  } else if (from_stdin) {
    source = std::make_unique<jobd::DelimitedSource>(STDIN_FILENO, null_separated ? '\0' : '\n');
  } else {
    source = std::make_unique<jobd::VectorSource>(items);
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
  CLI::App app("Runs functions over many items on jobd's warm worker processes, one per core.",
               "jobctl");
  std::shared_ptr<jobd::HelpFormatter> help = jobd::SetUpHelp(app, kSynopsis, kFooter, JOBD_VERSION);
  app.require_subcommand(1);
  CLI::Option* socket = app.add_option("--socket", target.socket,
      "jobd's endpoint (default ipc://$XDG_RUNTIME_DIR/jobd/jobd.sock, or\n"
      "$JOBD_SOCKET)")->type_name("ENDPOINT");
  app.add_option("--cluster-file", target.cluster_file,
      "reach the jobd that wrote FILE (jobd --cluster-file) over TCP, from any\n"
      "host that can read FILE (or $JOBD_CLUSTER_FILE); on that jobd's own host,\n"
      "on its local socket (shared memory, no encryption) unless\n"
      "JOBD_CLUSTER_LOCAL=0")->type_name("FILE")->excludes(socket);

  MapArgs map_args, starmap_args;
  AddMap(app, *help, &map_args, false);
  AddMap(app, *help, &starmap_args, true);
  bool json = false;
  auto query = [&](const char* name, const char* description, bool with_json) {
    CLI::App* command = app.add_subcommand(name, description)->group("Commands");
    if (with_json) command->add_flag("--json", json, "print the answer as JSON, for scripts");
    return command;
  };
  query("functions", "list the functions each pool offers", true);
  query("status", "pools, workers (pid, state, tasks, restarts), nodes, running jobs", true);
  query("jobs", "running jobs and the last finished ones: items done, failed,\n"
                "retried, who submitted them, when, how long, how they ended", true);
  uint64_t job_id = 0;
  query("job", "one job in full, with its failed items' first errors", true)
      ->add_option("JOB", job_id, "the job's number (see `jobctl jobs`)")
      ->check(jobd::WholeNumber(1, UINT64_MAX))->required()->type_name("");
  query("metrics", "counters and gauges in Prometheus' text format (items, tasks,\n"
                   "workers, queue, payload bytes, job durations, jobd's memory)", false);
  query("cancel", "stop a running job (its number is in `jobctl status`)", false)
      ->add_option("JOB", job_id, "the job's number (see `jobctl status`)")
      ->check(jobd::WholeNumber(1, UINT64_MAX))->required()->type_name("");
  query("ping", "check that jobd answers", true);
  query("shutdown", "let running jobs finish, then stop jobd", false);
  std::string help_topic;
  CLI::App* help_command = query("help", "this text, or a COMMAND's", false);
  help_command->add_option("COMMAND", help_topic, "the command to explain")->type_name("");
  for (CLI::App* command : app.get_subcommands({})) {
    command->fallthrough()->group("Commands");  // --socket anywhere
    command->set_help_flag("-h,--help", "this text");
  }

  // What follows "--" are items, whatever they look like. (CLI11 2.1 ends a
  // command's arguments at "--" once its positional has a value.)
  const int dashes = static_cast<int>(std::find_if(argv + 1, argv + argc, [](const char* arg) {
                                        return std::strcmp(arg, "--") == 0;
                                      }) - argv);
  if (std::optional<int> exit = jobd::ParseCommandLine(app, dashes, argv, kBadUsage)) return *exit;
  if (socket->count() > 0) target.cluster_file.clear();  // the command line wins over $JOBD_CLUSTER_FILE
  const std::string command = app.get_subcommands().front()->get_name();
  if (dashes < argc) {
    if (command != "map" && command != "starmap") return Usage(command, command + " takes no items");
    std::vector<std::string>& words = (command == "map" ? map_args : starmap_args).words;
    words.insert(words.end(), argv + dashes + 1, argv + argc);
  }
  try {
    if (command == "map") return Map(target, map_args);
    if (command == "starmap") return Map(target, starmap_args);
    if (command == "help") {
      if (help_topic.empty()) {
        std::fputs(app.help().c_str(), stdout);
        return kOk;
      }
      const CLI::App* topic = nullptr;
      for (const CLI::App* known : app.get_subcommands({})) {
        if (known->get_name() == help_topic) topic = known;
      }
      if (topic == nullptr) return Usage("help", "no command is named '" + help_topic + "'");
      std::fputs(topic->help("jobctl").c_str(), stdout);
      return kOk;
    }
    if (command == "cancel" || command == "job") {
      jobd::Result<jobd::Client> client = target.Connect();
      if (!client.ok()) return ConnectFailed(client.status());
      if (command == "job") {
        jobd::Result<jobd::wire::JobList> one = client->Jobs(job_id);
        if (!one.ok() && one.message().rfind("jobd knows no job", 0) == 0) {
          std::fprintf(stderr, "jobctl: %s\n", one.message().c_str());
          return kJobFailed;
        }
        return Show(one, json, PrintJob);
      }
      jobd::Result<uint64_t> done = client->Cancel(job_id);
      if (!done.ok()) {
        std::fprintf(stderr, "jobctl: %s\n", done.message().c_str());
        return kJobFailed;
      }
      std::printf("job %llu cancelled after %llu items\n", static_cast<unsigned long long>(job_id),
                  static_cast<unsigned long long>(*done));
      return kOk;
    }
    return Query(target, command, json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jobctl: %s\n", e.what());
    return kJobFailed;
  }
}
