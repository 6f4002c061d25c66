// Commands per item (jobctl map --exec): the xargs / GNU parallel model,
// without a shell unless asked, so an item's text is never parsed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

// Runs `exec` for one item: item number `number` (from 1) on worker slot
// `slot` (from 1). The result is the command's stdout without one trailing
// newline; a non-zero exit or a signal is an error carrying the tail of its
// stderr. `started(pgid)` is told the command's process group, then 0 once
// it is over. The caller ignores SIGPIPE, as jobd-worker does: a command may
// exit without reading the item we write to its stdin.
// For starmap, `args` are the item's arguments ({1} {2} ...; joined by tabs
// on stdin) and `item` their join by spaces ({}).
Result<std::string> RunCommand(const wire::Exec& exec, std::string_view item, uint64_t number,
                               uint32_t slot, const std::function<void(pid_t)>& started = {},
                               const std::vector<std::string_view>& args = {});

// `word` with its replacement strings ({} {.} {/} {//} {/.} {#} {%}) filled
// in. With `positional` (a shell command), item replacements become "$1" ..
// "$5", the positional parameters that carry the item's forms (ItemForms), so
// that no item text is ever parsed as shell code. Sets *uses_item if the word
// refers to the item.
// {N} is the item's Nth argument ("${5+N}" in a shell command).
std::string ExpandWord(std::string_view word, std::string_view item, uint64_t number,
                       uint32_t slot, bool positional, bool* uses_item,
                       const std::vector<std::string_view>& args = {});
// The item, without extension, basename, dirname, basename without extension.
std::vector<std::string> ItemForms(std::string_view item);

// The argv that runs `exec` for one item (see ExpandWord).
std::vector<std::string> CommandLine(const wire::Exec& exec, std::string_view item,
                                     uint64_t number, uint32_t slot, bool* uses_item,
                                     const std::vector<std::string_view>& args = {});

// A pipe whose ends are closed on exec; a child gets its end by dup2.
struct Pipe {
  int read = -1, write = -1;
  bool Open();
  static void Close(int& fd);
  Pipe() = default;
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe();
};

// Starts `argv` with stdin, stdout and stderr on the given descriptors (-1 for
// stdin: /dev/null), in `cwd` unless empty, with default signal handling and
// `environment` added to ours (or instead of ours, if `replace_environment`).
// Returns its pid.
Result<pid_t> SpawnCommand(std::vector<std::string> argv, const std::string& cwd, int stdin_fd,
                           int stdout_fd, int stderr_fd, const std::vector<std::string>& environment,
                           bool replace_environment = false);

// The environment a command of `exec` runs with: `set`, then the caller's
// variables that `set` does not name. Empty (with exec's own empty too): the
// worker's, to which `set` is added.
std::vector<std::string> CommandEnvironment(const wire::Exec& exec, std::vector<std::string> set);

// "exited with status N" or "was killed by SIGX (signal N)".
std::string DescribeWait(int wait_status);

}  // namespace jobd
