// Stream functions (jobctl map --stream): one long-running coprocess per
// worker and job, fed item after item, pipelined (the Hadoop Streaming model).
// Python functions (jobctl map --python) run the same way in a warm
// interpreter, which a worker keeps from job to job (see Coprocess::KeyOf).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobd.pb.h"
#include "jobd/status.h"
#include "worker/output.h"

namespace jobd {

// In the lines protocol, a result line that starts with this byte (NAK) is
// the item's error, its message after it (worker/stream/jobd_stream.py).
constexpr char kLineError = '\x15';

// One result read from a coprocess: its bytes, and whether it marks an error.
struct StreamResult {
  bool complete = false;  // false: `buffer` does not hold a whole result yet
  bool error = false;
  std::string_view bytes;
  size_t consumed = 0;    // bytes of `buffer` it took
};
// The first result in `buffer` (bytes from the coprocess, in lines or frames),
// or an error for a malformed frame header.
Result<StreamResult> ParseStreamResult(std::string_view buffer, bool framed);

class Coprocess {
 public:
  Coprocess() = default;
  Coprocess(const Coprocess&) = delete;
  Coprocess& operator=(const Coprocess&) = delete;
  ~Coprocess() { Stop(); }

  // What a task's coprocess must match to serve it: its job for a stream; for
  // Python, the interpreter, its path and its directory, whatever the job.
  static std::string KeyOf(const wire::Task& task);
  // Whether the running coprocess can serve a task with this key.
  bool Serves(const std::string& key) const { return pid_ > 0 && key_ == key; }
  // Whether it is a warm interpreter, kept between jobs.
  bool warm() const { return pid_ > 0 && warm_; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_ > 0 ? pid_ : 0; }  // also its process group
  // Closes its stdin and waits for it to exit (killing it after a second).
  void Stop();

  // Feeds every item of `task` to the coprocess (starting it if needed) while
  // reading their results, and appends one outcome per item to `result`, in
  // order. `waiting(i)` is called as the result of item i becomes the one
  // awaited, and when the process serving it starts or exits. A coprocess that dies is restarted and fed one item at a time;
  // an item it then dies on is retried up to task.retries() times, then fails
  // with how it died. Once `cancelled()`, the rest of the task fails at once.
  // An item: its arguments (one for map, several for starmap: a line carries
  // them tab-separated; in frames, "*<count>\n" then a frame each), or why it
  // cannot be sent.
  struct Item {
    std::vector<std::string_view> args;
    std::string error;
    // The shared-memory segment the args lie in, if any, and where its first
    // byte is mapped: a pickled Python job's interpreter maps large args
    // itself instead of reading them from the pipe.
    std::string segment;
    const char* segment_start = nullptr;
  };
  void Run(const wire::Task& task, const std::vector<Item>& items,
           uint32_t slot, TaskOutput& output, wire::TaskResult* result,
           const std::function<void(int)>& waiting, const std::function<bool()>& cancelled);

 private:
  Status Start(const wire::Task& task, uint32_t slot);
  // Waits for the coprocess that stopped talking; says how it ended.
  std::string Reap();
  void DrainStderr();

  pid_t pid_ = -1;
  std::string key_;
  bool warm_ = false;
  uint64_t header_job_ = 0;  // the job whose header the interpreter has (Python)
  // The environment the interpreter got with the last header that carried one.
  std::optional<std::vector<std::string>> sent_environment_;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string stderr_tail_;
};

}  // namespace jobd
