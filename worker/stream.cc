#include "worker/stream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/paths.h"
#include "common/payload.h"
#include "worker/exec.h"

namespace jobd {
namespace {

constexpr size_t kStderrTail = 2048;
// Bytes of items encoded ahead of the pipe, so writes are few and large.
constexpr size_t kWriteChunk = 64 << 10;
// A result may not exceed this (a coprocess that never ends a line must not
// grow the worker without bound).
constexpr size_t kMaxResult = size_t{1} << 30;
// What a warm interpreter says, in place of an answer, before it exits
// because it must be replaced: its modules changed on disk (said before it
// answers anything of a job), or it ran its Pool's maxtasksperchild items
// (python/jobd/_worker.py). The items it has not answered go to a new one.
constexpr std::string_view kReplaceInterpreter = "!stale\n";

// Arguments from this size on reach a pickled job's interpreter as a
// reference into their segment ("&<length> <segment> <offset>\n"), which it
// maps, instead of through the pipe.
constexpr size_t kReferFrom = 64 << 10;

// Python interpreters always speak frames.
bool Framed(const wire::Task& task) {
  return task.has_python() || task.exec().mode() == wire::Exec::STREAM_FRAMES;
}

// The loop a warm interpreter runs: beside the worker in the build tree,
// under share/ when installed.
Result<std::string> PythonLoop() {
  const std::string dir = ExecutableDir();
  for (const std::string& candidate : {dir + "/../python/jobd/_worker.py",
                                       dir + "/../share/jobd/python/jobd/_worker.py"}) {
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return Status::Error("cannot find jobd's Python worker loop (jobd/_worker.py) under " + dir +
                       "/../python or " + dir + "/../share/jobd/python: reinstall jobd");
}

// A job's header for its interpreter:
//   "!<protocol> <paths> <variables> <pickled> <max items>\n"
// then frames of the function's name, the directory, the pickled callable,
// the pickled initializer, each path entry and each environment variable;
// <variables> is -1, and no variable follows, when the environment is the
// one the interpreter got last (`same_environment`: most jobs, as a program's
// maps follow each other). The protocol's version (3) is PROTOCOL in
// python/jobd/_worker.py: a loop of another release fails the job's items.
std::string PythonHeader(const wire::Python& python, bool same_environment) {
  std::string header = "!3 " + std::to_string(python.path_size()) + " " +
                       (same_environment ? std::string("-1")
                                         : std::to_string(python.environment_size())) +
                       " " + (python.pickled() ? "1 " : "0 ") +
                       std::to_string(python.max_items()) + "\n";
  auto frame = [&](const std::string& bytes) { header += std::to_string(bytes.size()) + "\n" + bytes; };
  frame(python.function());
  frame(python.cwd());
  frame(python.callable());
  frame(python.initializer());
  for (const std::string& entry : python.path()) frame(entry);
  if (!same_environment) {
    for (const std::string& variable : python.environment()) frame(variable);
  }
  return header;
}

// A result an interpreter left in a segment of its own, "<length> <segment>
// <offset>" (python/jobd/_worker.py): it becomes the task's output segment
// (TaskOutput::Adopt). Returns an error for a malformed reference.
Status TakeSegmentResult(std::string_view reference, TaskOutput& output) {
  const std::string line(reference);
  char segment[129] = {};
  unsigned long long length = 0, offset = 0;
  int end = 0;
  if (std::sscanf(line.c_str(), "%llu %128s %llu%n", &length, segment, &offset, &end) != 3 ||
      static_cast<size_t>(end) != line.size() || !IsSegmentName(segment)) {
    return Status::Error("a malformed result reference '" + line.substr(0, 80) + "'");
  }
  return output.Adopt(segment, offset, length);
}

// Removes what a warm interpreter that is gone left in shared memory: the
// result segments of a task cancelled before the worker read them.
void RemoveSegmentsOf(pid_t interpreter) {
  for (const std::string& name : ListSegments()) {
    if (SegmentCreator(name) == interpreter) RemoveSegment(name);
  }
}

}  // namespace

Result<StreamResult> ParseStreamResult(std::string_view buffer, bool framed) {
  StreamResult parsed;
  const size_t newline = buffer.find('\n');
  if (newline == std::string_view::npos) {
    if (framed && buffer.size() > 24) return Status::Error("a result frame has a malformed header");
    return parsed;
  }
  if (!framed) {
    parsed.complete = true;
    parsed.bytes = buffer.substr(0, newline);
    parsed.consumed = newline + 1;
    // A line that starts with NAK (0x15) is the item's error, its message after it.
    parsed.error = !parsed.bytes.empty() && parsed.bytes[0] == kLineError;
    if (parsed.error) parsed.bytes.remove_prefix(1);
    return parsed;
  }
  std::string_view header = buffer.substr(0, newline);
  parsed.error = !header.empty() && header[0] == '-';
  if (parsed.error) header.remove_prefix(1);
  uint64_t length = 0;
  auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), length);
  if (header.empty() || ec != std::errc() || end != header.data() + header.size()) {
    return Status::Error("a result frame has a malformed header '" +
                         std::string(buffer.substr(0, std::min<size_t>(newline, 24))) + "'");
  }
  if (buffer.size() - newline - 1 < length) return parsed;
  parsed.complete = true;
  parsed.bytes = buffer.substr(newline + 1, length);
  parsed.consumed = newline + 1 + length;
  return parsed;
}

std::string Coprocess::KeyOf(const wire::Task& task) {
  if (!task.has_python()) return "job " + std::to_string(task.job());
  std::string key = "python\n" + task.python().interpreter() + "\n" + task.python().cwd();
  for (const std::string& entry : task.python().path()) key += "\n" + entry;
  // Variables an interpreter reads only as it starts: a job that sets them
  // otherwise needs another interpreter.
  static constexpr std::string_view kReadAtStart[] = {
      "PYTHONHOME=", "PYTHONPATH=", "PYTHONHASHSEED=", "PYTHONWARNINGS=", "PYTHONUTF8=",
      "PYTHONDONTWRITEBYTECODE=", "PYTHONNOUSERSITE=", "PYTHONSAFEPATH=", "PYTHONOPTIMIZE=",
      "PYTHONIOENCODING=", "PYTHONSTARTUP=", "PYENV_VERSION=", "VIRTUAL_ENV=", "HOME=",
      "LANG=", "LC_ALL=", "LC_CTYPE=", "LD_LIBRARY_PATH=", "LD_PRELOAD="};
  for (const std::string& variable : task.python().environment()) {
    for (std::string_view name : kReadAtStart) {
      if (variable.compare(0, name.size(), name) == 0) key += "\n" + variable;
    }
  }
  return key;
}

Status Coprocess::Start(const wire::Task& task, uint32_t slot) {
  Pipe in, out, err;
  if (!in.Open() || !out.Open() || !err.Open()) {
    return Status::Error(std::string("cannot make pipes for the coprocess: ") + std::strerror(errno));
  }
  Result<pid_t> pid = Status::Error("");
  if (task.has_python()) {
    // The caller's interpreter, directory and environment, not the worker's.
    Result<std::string> loop = PythonLoop();
    if (!loop.ok()) return loop.status();
    const wire::Python& python = task.python();
    pid = SpawnCommand({python.interpreter(), *loop}, python.cwd(), in.read, out.write, err.write,
                       {python.environment().begin(), python.environment().end()},
                       /*replace_environment=*/true);
  } else {
    bool uses_item = false;
    const std::vector<std::string> argv = CommandLine(task.exec(), "", 0, slot, &uses_item);
    pid = SpawnCommand(argv, task.exec().cwd(), in.read, out.write, err.write,
                       CommandEnvironment(task.exec(),
                                          {std::string("JOBD_STREAM=") + (Framed(task) ? "frames" : "lines"),
                                           std::string("JOBD_STARMAP=") + (task.starmap() ? "1" : "0")}),
                       /*replace_environment=*/task.exec().environment_size() > 0);
  }
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  key_ = KeyOf(task);
  warm_ = task.has_python();
  header_job_ = 0;
  sent_environment_.reset();
  in_ = std::exchange(in.write, -1);
  out_ = std::exchange(out.read, -1);
  err_ = std::exchange(err.read, -1);
  for (int fd : {in_, out_, err_}) fcntl(fd, F_SETFL, O_NONBLOCK);
  stderr_tail_.clear();
  return {};
}

void Coprocess::DrainStderr() {
  char buffer[4096];
  ssize_t n;
  while (err_ >= 0 && (n = read(err_, buffer, sizeof buffer)) > 0) {
    stderr_tail_.append(buffer, static_cast<size_t>(n));
    if (stderr_tail_.size() > 2 * kStderrTail) stderr_tail_.erase(0, stderr_tail_.size() - kStderrTail);
  }
  if (err_ >= 0 && n == 0) Pipe::Close(err_);  // it closed its stderr: stop polling it
}

std::string Coprocess::Reap() {
  Pipe::Close(in_);
  Pipe::Close(out_);
  // Its stdout closed as it exits: give it a moment to tell how it ended.
  // If it lives on with its stdout closed, it is of no use any more, nor is
  // anything it started.
  int status = 0;
  pid_t waited = 0;
  for (int i = 0; i < 50 && (waited = waitpid(pid_, &status, WNOHANG)) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const bool killed_here = waited == 0;
  kill(-pid_, SIGKILL);
  while (waited == 0 && waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  DrainStderr();
  Pipe::Close(err_);
  if (warm_) RemoveSegmentsOf(pid_);
  pid_ = -1;
  if (stderr_tail_.size() > kStderrTail) stderr_tail_.erase(0, stderr_tail_.size() - kStderrTail);
  while (!stderr_tail_.empty() && stderr_tail_.back() == '\n') stderr_tail_.pop_back();
  const std::string what = warm_ ? "the Python interpreter " : "the stream coprocess ";
  std::string how = what + DescribeWait(status);
  if (killed_here) how = what + "stopped answering";  // its SIGKILL is ours
  return stderr_tail_.empty() ? how : how + ": " + stderr_tail_;
}

void Coprocess::Stop() {
  if (pid_ <= 0) return;
  Pipe::Close(in_);  // EOF: a well-behaved coprocess exits now
  int status = 0;
  for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (waitpid(pid_, &status, WNOHANG) == 0) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  } else {
    kill(-pid_, SIGKILL);  // whatever it left running in its group
  }
  Pipe::Close(out_);
  Pipe::Close(err_);
  if (warm_) RemoveSegmentsOf(pid_);
  pid_ = -1;
}

void Coprocess::Run(const wire::Task& task, const std::vector<Item>& items,
                    uint32_t slot, TaskOutput& output, wire::TaskResult* result,
                    const std::function<void(int)>& waiting,
                    const std::function<bool()>& cancelled) {
  const bool framed = Framed(task);
  if (warm_) stderr_tail_.clear();  // what an earlier job of another program wrote
  const int count = static_cast<int>(items.size());
  // Items that cannot be sent fail here, in their turn.
  std::vector<std::string> refused(items.size());
  for (int i = 0; i < count; ++i) {
    refused[i] = items[i].error;
    for (std::string_view arg : items[i].args) {
      if (!framed && (arg.find('\n') != std::string_view::npos ||
                      (task.starmap() && arg.find('\t') != std::string_view::npos))) {
        refused[i] = task.starmap()
                         ? "an argument contains a tab or newline, which the line protocol "
                           "cannot carry; use --framed"
                         : "the item contains a newline, which the line protocol cannot carry; "
                           "use --framed";
      }
    }
  }
  std::vector<uint32_t> deaths(items.size(), 0);
  int next_read = 0, next_write = 0;
  // After a death, one item at a time: the next death is then surely the
  // fault of the item it was on, and only that item is charged.
  bool careful = false;
  uint32_t silent_starts = 0;  // starts in a row that died before any answer
  bool answered = false;       // the current process has answered an item
  std::string pending, received;  // encoded items not yet written; output not yet parsed
  size_t pending_at = 0;

  auto finish_item = [&](auto&& fill) {
    fill();
    output.TakeOutcome(result);
    if (++next_read < count) waiting(next_read);
  };
  if (count > 0) waiting(0);
  while (next_read < count) {
    if (!refused[next_read].empty()) {
      finish_item([&] { output.Fail(refused[next_read]); });
      continue;
    }
    if (cancelled()) {  // its job is gone: no more starts, no more work
      Stop();
      while (next_read < count) finish_item([&] { output.Fail("the job was cancelled"); });
      return;
    }
    if (pid_ <= 0) {
      if (Status s = Start(task, slot); !s.ok()) {
        while (next_read < count) finish_item([&] { output.Fail(s.message()); });
        return;
      }
      waiting(next_read);  // tells the worker about the new process too
      answered = false;
      next_write = next_read;
      pending.clear();
      pending_at = 0;
      received.clear();
    }
    // Encode what the pipe may take next.
    while (pending.size() - pending_at < kWriteChunk && next_write < count &&
           !(careful && next_write > next_read)) {
      if (task.has_python() && header_job_ != task.job()) {  // a new job: its header first
        const auto& environment = task.python().environment();
        const bool same = sent_environment_.has_value() &&
                          std::equal(environment.begin(), environment.end(),
                                     sent_environment_->begin(), sent_environment_->end());
        pending += PythonHeader(task.python(), same);
        if (!same) sent_environment_.emplace(environment.begin(), environment.end());
        header_job_ = task.job();
      }
      if (refused[next_write].empty()) {
        const Item& item = items[next_write];
        const std::vector<std::string_view>& args = item.args;
        if (framed && task.starmap()) pending += "*" + std::to_string(args.size()) + "\n";
        for (size_t a = 0; a < args.size(); ++a) {
          if (task.python().pickled() && item.segment_start != nullptr && args[a].size() >= kReferFrom) {
            pending += "&" + std::to_string(args[a].size()) + " " + item.segment + " " +
                       std::to_string(args[a].data() - item.segment_start) + "\n";
            continue;
          }
          if (framed) {
            pending += std::to_string(args[a].size()) + "\n";
          } else if (a > 0) {
            pending += '\t';
          }
          pending.append(args[a]);
        }
        if (!framed) pending += '\n';
      }
      ++next_write;
    }
    const bool want_write = pending_at < pending.size();
    pollfd fds[3] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}, {want_write ? in_ : -1, POLLOUT, 0}};
    if (poll(fds, 3, -1) < 0 && errno != EINTR) break;
    bool died = false;
    if (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
      const ssize_t n = write(in_, pending.data() + pending_at, pending.size() - pending_at);
      if (n > 0) pending_at += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) died = true;  // EPIPE: it is gone
      if (pending_at == pending.size()) {
        pending.clear();
        pending_at = 0;
      }
    }
    if (fds[1].revents) DrainStderr();
    if (fds[0].revents) {
      char buffer[65536];
      const ssize_t n = read(out_, buffer, sizeof buffer);
      if (n > 0) received.append(buffer, static_cast<size_t>(n));
      if (received.size() > kMaxResult) {
        stderr_tail_ += "\na result exceeds 1 GiB";
        died = true;
      }
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) died = true;
    }
    // Every whole result, in order.
    size_t offset = 0;
    bool replace = false;
    while (next_read < count) {
      if (!refused[next_read].empty()) {
        finish_item([&] { output.Fail(refused[next_read]); });
        continue;
      }
      // An interpreter that asks to be replaced: not a death, nothing to charge.
      if (warm_ && std::string_view(received).substr(offset, kReplaceInterpreter.size()) ==
                       kReplaceInterpreter) {
        replace = true;
        break;
      }
      // A large result the interpreter wrote into a segment of its own.
      if (warm_ && received.size() > offset && received[offset] == '&') {
        const size_t newline = received.find('\n', offset);
        if (newline == std::string::npos) break;
        Status taken = TakeSegmentResult(
            std::string_view(received).substr(offset + 1, newline - offset - 1), output);
        if (!taken.ok()) {
          stderr_tail_ += "\n" + taken.message();
          died = true;
          break;
        }
        finish_item([] {});
        offset = newline + 1;
        answered = true;
        silent_starts = 0;
        continue;
      }
      Result<StreamResult> parsed =
          ParseStreamResult(std::string_view(received).substr(offset), framed);
      if (!parsed.ok()) {
        stderr_tail_ += "\n" + parsed.message();
        died = true;
        break;
      }
      if (!parsed->complete) break;
      finish_item([&] {
        parsed->error ? output.Fail(std::string(parsed->bytes)) : output.Set(parsed->bytes);
      });
      offset += parsed->consumed;
      answered = true;
      silent_starts = 0;
    }
    received.erase(0, offset);
    if (replace) {
      Reap();
      if (next_read < count) waiting(next_read);
      continue;
    }
    if (died && next_read < count) {
      const std::string how = Reap();
      waiting(next_read);  // no process now: the worker's page must not name the dead one
      silent_starts = answered ? 0 : silent_starts + 1;
      // Two items' worth of deaths without a single answer: it cannot even
      // start, and every further item would cost as many starts.
      if (silent_starts >= 2 * (task.retries() + 2)) {
        while (next_read < count) {
          finish_item([&] { output.Fail(how + " before answering any item; giving up"); });
        }
      } else if (careful && ++deaths[next_read] > task.retries()) {
        finish_item([&] {
          output.Fail(how + " while on this item, " + std::to_string(deaths[next_read]) +
                      " times; giving up (retries: " + std::to_string(task.retries()) + ")");
        });
      }
      careful = true;
    } else if (died) {
      Reap();
    }
  }
}

}  // namespace jobd
