#include "worker/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/paths.h"

extern char** environ;

namespace jobd {
namespace {

// How much of a failed command's stderr its error carries.
constexpr size_t kStderrTail = 2048;
// A command's result (stdout) may not exceed this.
constexpr size_t kMaxOutput = size_t{1} << 30;

// Where `name` (no '/') is found on `path` (a PATH), remembered like a
// shell's hash table: posix_spawnp tries one execve per PATH directory until
// one works, and each failed try costs as much as a tenth of starting a small
// program. Empty when PATH has no such program, or names directories relative
// to the current one (then the answer would depend on the command's directory).
std::unordered_map<std::string, std::string> g_on_path;  // one thread per worker

const std::string& FindOnPath(const std::string& name, const std::string& path) {
  auto [entry, inserted] = g_on_path.try_emplace(path + '\0' + name);
  if (!inserted) return entry->second;
  for (const std::string& dir : SplitPathList(path)) {
    if (dir.empty() || dir[0] != '/') break;
    const std::string candidate = dir + "/" + name;
    struct stat st{};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      entry->second = candidate;
      break;
    }
  }
  return entry->second;
}

std::string_view Basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// POSIX dirname, as GNU parallel's {//} and dirname(1): "a/b/" is in "a",
// "dir//x" in "dir", "trailing/" in ".".
std::string_view Dirname(std::string_view path) {
  const size_t last = path.find_last_not_of('/');
  if (last == std::string_view::npos) return path.empty() ? "." : "/";  // "" or only slashes
  const size_t slash = path.rfind('/', last);
  if (slash == std::string_view::npos) return ".";
  const size_t end = path.find_last_not_of('/', slash);
  return end == std::string_view::npos ? std::string_view("/") : path.substr(0, end + 1);
}

std::string_view WithoutExtension(std::string_view path) {
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return path;
  return path.substr(0, dot);
}

}  // namespace

std::vector<std::string> CommandEnvironment(const wire::Exec& exec, std::vector<std::string> set) {
  const size_t own = set.size();
  for (const std::string& variable : exec.environment()) {
    const std::string_view name = std::string_view(variable).substr(0, variable.find('=') + 1);
    if (std::none_of(set.begin(), set.begin() + static_cast<long>(own),
                     [&](const std::string& ours) { return ours.rfind(name, 0) == 0; })) {
      set.push_back(variable);
    }
  }
  return set;
}

std::string DescribeWait(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    const char* abbrev = sigabbrev_np(signal);
    return std::string("was killed by ") + (abbrev ? std::string("SIG") + abbrev : "a signal") +
           " (signal " + std::to_string(signal) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

namespace {

}  // namespace

bool Pipe::Open() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  read = fds[0];
  write = fds[1];
  return true;
}

void Pipe::Close(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

Pipe::~Pipe() {
  Close(read);
  Close(write);
}

std::vector<std::string> ItemForms(std::string_view item) {
  return {std::string(item), std::string(WithoutExtension(item)), std::string(Basename(item)),
          std::string(Dirname(item)), std::string(WithoutExtension(Basename(item)))};
}

std::string ExpandWord(std::string_view word, std::string_view item, uint64_t number,
                       uint32_t slot, bool positional, bool* uses_item,
                       const std::vector<std::string_view>& args) {
  struct Replacement {
    std::string_view token;
    std::string_view value;
    std::string_view parameter;  // in a shell command: the positional parameter holding it
  };
  const std::string number_text = std::to_string(number), slot_text = std::to_string(slot);
  // Longest tokens first, so that {//} is not read as {/} followed by "/}".
  // The parameters follow the order of ItemForms.
  const Replacement replacements[] = {
      {"{//}", Dirname(item), "\"$4\""},  {"{/.}", WithoutExtension(Basename(item)), "\"$5\""},
      {"{/}", Basename(item), "\"$3\""},  {"{.}", WithoutExtension(item), "\"$2\""},
      {"{}", item, "\"$1\""},             {"{#}", number_text, ""},
      {"{%}", slot_text, ""},
  };
  std::string out;
  for (size_t i = 0; i < word.size();) {
    bool replaced = false;
    // {N}: the item's Nth argument (starmap); for a plain item, {1} is the item.
    size_t digits = 0;
    while (word[i] == '{' && i + 1 + digits < word.size() &&
           std::isdigit(static_cast<unsigned char>(word[i + 1 + digits]))) {
      ++digits;
    }
    if (digits > 0 && digits < 5 && i + 1 + digits < word.size() && word[i + 1 + digits] == '}') {
      const size_t n = std::stoul(std::string(word.substr(i + 1, digits)));
      const size_t count = args.empty() ? 1 : args.size();
      if (n >= 1 && n <= count) {
        out += positional ? "\"${" + std::to_string(5 + n) + "}\""
                          : std::string(args.empty() ? item : args[n - 1]);
        *uses_item = true;
        i += digits + 2;
        continue;
      }
    }
    if (word[i] == '{') {
      for (const Replacement& r : replacements) {
        if (word.substr(i, r.token.size()) != r.token) continue;
        const bool from_item = !r.parameter.empty();
        out += positional && from_item ? std::string(r.parameter) : std::string(r.value);
        *uses_item = *uses_item || from_item;
        i += r.token.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += word[i++];
  }
  return out;
}

std::vector<std::string> CommandLine(const wire::Exec& exec, std::string_view item,
                                     uint64_t number, uint32_t slot, bool* uses_item,
                                     const std::vector<std::string_view>& args) {
  if (exec.shell()) {
    // The item reaches the shell as positional parameters, never as code:
    // its five forms, then its arguments.
    std::vector<std::string> argv = {
        "/bin/sh", "-c", ExpandWord(exec.argv(0), item, number, slot, true, uses_item, args), "sh"};
    for (std::string& form : ItemForms(item)) argv.push_back(std::move(form));
    if (args.empty()) {
      argv.emplace_back(item);
    } else {
      argv.insert(argv.end(), args.begin(), args.end());
    }
    return argv;
  }
  std::vector<std::string> argv;
  for (const std::string& word : exec.argv()) {
    argv.push_back(ExpandWord(word, item, number, slot, false, uses_item, args));
  }
  return argv;
}

Result<pid_t> SpawnCommand(std::vector<std::string> argv, const std::string& cwd, int stdin_fd,
                           int stdout_fd, int stderr_fd, const std::vector<std::string>& environment,
                           bool replace_environment) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings = environment;
  std::vector<char*> env;
  for (char** e = environ; !replace_environment && *e != nullptr; ++e) env.push_back(*e);
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd < 0) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  // The command starts with default signal handling and nothing blocked,
  // whatever the worker ignores.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  // Its own process group: Ctrl-C on a foreground jobd does not reach it, and
  // the supervisor can stop it and all its children at once.
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  // The command is looked for on its own PATH (the caller's, when it brings
  // its environment): posix_spawnp would search the worker's.
  std::string path;
  if (const char* ours = std::getenv("PATH"); !replace_environment && ours != nullptr) path = ours;
  for (const std::string& variable : environment) {
    if (variable.rfind("PATH=", 0) == 0) path = variable.substr(5);
  }
  const bool searched = argv[0].find('/') == std::string::npos;
  const std::string program = searched ? FindOnPath(argv[0], path) : "";
  int spawned = program.empty()
                    ? ENOENT
                    : posix_spawn(&pid, program.c_str(), &actions, &attributes, args.data(), env.data());
  // A path of its own, or moved since it was found (on our own PATH only:
  // posix_spawnp searches the worker's).
  if (spawned != 0 && (!searched || !replace_environment)) {
    if (searched) g_on_path.erase(path + '\0' + argv[0]);
    spawned = posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), env.data());
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned == 0) return pid;
  if (spawned == ENOENT && !cwd.empty() && access(cwd.c_str(), X_OK) != 0) {
    return Status::Error("cannot run '" + argv[0] + "' in " + cwd + ": " + std::strerror(errno));
  }
  return Status::Error("cannot run '" + argv[0] + "': " +
                       (spawned == ENOENT ? std::string("no such command") : std::strerror(spawned)));
}

Result<std::string> RunCommand(const wire::Exec& exec, std::string_view item, uint64_t number,
                               uint32_t slot, const std::function<void(pid_t)>& started,
                               const std::vector<std::string_view>& args) {
  bool uses_item = false;
  const std::vector<std::string> argv = CommandLine(exec, item, number, slot, &uses_item, args);
  // Without a replacement, the item goes to stdin: a tuple as one TSV line.
  std::string tsv;
  if (!uses_item && !args.empty()) {
    for (size_t i = 0; i < args.size(); ++i) (tsv += i ? "\t" : "").append(args[i]);
    item = tsv;
  }
  Pipe in, out, err;
  if ((!uses_item && !in.Open()) || !out.Open() || !err.Open()) {
    return Status::Error(std::string("cannot make pipes for the command: ") + std::strerror(errno));
  }
  Result<pid_t> pid = SpawnCommand(argv, exec.cwd(), uses_item ? -1 : in.read, out.write,
                                   err.write, CommandEnvironment(exec, {}),
                                   /*replace_environment=*/exec.environment_size() > 0);
  if (!pid.ok()) return pid.status();
  if (started) started(*pid);
  Pipe::Close(in.read);
  Pipe::Close(out.write);
  Pipe::Close(err.write);
  // Feed stdin and drain stdout and stderr together, so that no pipe fills up.
  std::string output, errors;
  bool too_much = false;
  size_t fed = 0;
  if (in.write >= 0) {
    fcntl(in.write, F_SETFL, O_NONBLOCK);
    if (item.empty()) Pipe::Close(in.write);
  }
  char buffer[65536];
  while (out.read >= 0 || err.read >= 0) {
    pollfd fds[3] = {{out.read, POLLIN, 0}, {err.read, POLLIN, 0}, {in.write, POLLOUT, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) {
      const ssize_t n = write(in.write, item.data() + fed, item.size() - fed);
      if (n > 0) fed += static_cast<size_t>(n);
      // Done, or the command stopped reading (EPIPE): it gets EOF either way.
      if (fed == item.size() || (n < 0 && errno != EAGAIN)) Pipe::Close(in.write);
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      int& fd = i == 0 ? out.read : err.read;
      const ssize_t n = read(fd, buffer, sizeof buffer);
      if (n > 0 && i == 0 && output.size() + static_cast<size_t>(n) > kMaxOutput) {
        too_much = true;
        killpg(*pid, SIGKILL);
        Pipe::Close(fd);
      } else if (n > 0) {
        (i == 0 ? output : errors).append(buffer, static_cast<size_t>(n));
        if (errors.size() > 2 * kStderrTail) errors.erase(0, errors.size() - kStderrTail);
      } else if (n == 0 || errno != EINTR) {
        Pipe::Close(fd);
      }
    }
  }
  Pipe::Close(in.write);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (started) started(0);
  if (too_much) {
    return Status::Error("command '" + argv[exec.shell() ? 2 : 0] + "' wrote more than " +
                         std::to_string(kMaxOutput >> 20) + " MiB; stopped it");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (!output.empty() && output.back() == '\n') output.pop_back();
    return output;
  }
  if (errors.size() > kStderrTail) errors.erase(0, errors.size() - kStderrTail);
  while (!errors.empty() && errors.back() == '\n') errors.pop_back();
  std::string message = "command '" + argv[exec.shell() ? 2 : 0] + "' " + DescribeWait(status);
  if (!errors.empty()) message += ": " + errors;
  return Status::Error(message);
}

}  // namespace jobd
