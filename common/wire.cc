#include "common/wire.h"

#include <cctype>
#include <cstdint>
#include <memory>

#include "common/packed.h"
#include "common/payload.h"

namespace jobd {

zmq::message_t Encode(const google::protobuf::MessageLite& message) {
  auto bytes = std::make_unique<std::string>();
  message.SerializeToString(bytes.get());
  void* data = bytes->data();
  const size_t size = bytes->size();
  return zmq::message_t(
      data, size, [](void*, void* owner) { delete static_cast<std::string*>(owner); },
      bytes.release());
}
namespace {

// `limit`: kMaxMessageBytes for what clients send; protobuf's own limit for
// what jobd and its workers send (results travel inline to another host).
Status Parse(std::string_view bytes, google::protobuf::MessageLite* out, const char* what,
             int64_t limit = INT32_MAX) {
  if (static_cast<int64_t>(bytes.size()) > limit) {
    return Status::Error(std::string(what) + " of " + std::to_string(bytes.size()) +
                         " bytes exceeds the limit of " + std::to_string(limit));
  }
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Error(std::string("malformed ") + what + " (" + std::to_string(bytes.size()) +
                         " bytes that are not a valid jobd " + what + ")");
  }
  return {};
}

Status CheckVersion(wire::Version version, const char* what) {
  if (version == wire::VERSION_CURRENT) return {};
  return Status::Error(std::string(what) + " speaks protocol version " + std::to_string(version) +
                       "; this jobd speaks version " + std::to_string(wire::VERSION_CURRENT) +
                       " (use jobctl and jobd from the same release)");
}

Status CheckCount(int count, int max) {
  if (count <= max) return {};
  return Status::Error("too many items in one message: " + std::to_string(count) + " (at most " +
                       std::to_string(max) + ")");
}

template <typename Payloads>
Status ValidatePayloads(const Payloads& payloads) {
  if (Status s = CheckCount(payloads.size(), kMaxItemsPerMessage); !s.ok()) return s;
  for (const wire::Payload& payload : payloads) {
    if (Status s = ValidatePayload(payload); !s.ok()) return s;
  }
  return {};
}

// Items come either one Payload each or all in one Packed, never both.
template <typename Message>
Status ValidateItemList(const Message& message) {
  if (!message.has_packed()) return ValidatePayloads(message.items());
  if (message.items_size() > 0) return Status::Error("items both packed and one by one");
  return ValidatePacked(message.packed(), kMaxItemsPerMessage);
}

template <typename Message>
int ItemCount(const Message& message) {
  return message.has_packed() ? message.packed().lengths_size() : message.items_size();
}

Status ValidateItems(const wire::Items& items) {
  if (Status s = ValidateItemList(items); !s.ok()) return s;
  if (items.first_index() > (uint64_t{1} << 62)) return Status::Error("item index out of range");
  for (uint64_t index : items.skipped()) {
    if (index < items.first_index() ||
        index - items.first_index() >= static_cast<uint64_t>(ItemCount(items))) {
      return Status::Error("a skipped item is not in its message");
    }
  }
  for (const std::string& name : items.segments()) {
    if (!IsSegmentName(name)) return Status::Error("'" + name + "' is not a jobd segment name");
  }
  return {};
}

bool HasNul(const std::string& text) { return text.find('\0') != std::string::npos; }

// A caller's environment, as NAME=VALUE entries.
Status ValidateEnvironment(const google::protobuf::RepeatedPtrField<std::string>& environment,
                           const std::string& whose) {
  if (environment.size() > 65536) return Status::Error(whose + " environment is too long");
  for (const std::string& variable : environment) {
    if (HasNul(variable) || variable.find('=') == std::string::npos || variable[0] == '=') {
      return Status::Error(whose + " environment holds NAME=VALUE entries");
    }
  }
  return {};
}

Status ValidateExec(const wire::Exec& exec) {
  if (exec.argv_size() == 0 || exec.argv(0).empty()) return Status::Error("the command is empty");
  if (!wire::Exec::Mode_IsValid(exec.mode())) return Status::Error("unknown command mode");
  if (exec.shell() && exec.argv_size() != 1) {
    return Status::Error("a --shell command is one string for /bin/sh -c");
  }
  if (exec.argv_size() > 4096) return Status::Error("the command has too many words");
  for (const std::string& word : exec.argv()) {
    if (HasNul(word)) return Status::Error("the command contains a NUL byte");
  }
  if (!exec.cwd().empty() && exec.cwd()[0] != '/') {
    return Status::Error("the command's directory must be an absolute path");
  }
  return ValidateEnvironment(exec.environment(), "a command's");
}

Status ValidatePython(const wire::Python& python) {
  if (python.interpreter().empty() || python.interpreter()[0] != '/' || HasNul(python.interpreter())) {
    return Status::Error("a Python job names its interpreter by an absolute path");
  }
  if (python.cwd().empty() || python.cwd()[0] != '/' || HasNul(python.cwd())) {
    return Status::Error("a Python job's directory must be an absolute path");
  }
  const std::string& function = python.function();
  const size_t colon = function.find(':');
  if (python.pickled()) {
    if (!function.empty()) return Status::Error("a pickled Python job carries its function pickled");
  } else if (colon == 0 || colon == std::string::npos || colon + 1 == function.size() ||
             function.size() > 1024 || HasNul(function)) {
    return Status::Error("a Python function is named MODULE:FUNCTION (e.g. mymodule:work), not '" +
                         function.substr(0, 80) + "'");
  }
  if (python.path_size() > 4096) return Status::Error("a Python job's path is too long");
  for (const std::string& entry : python.path()) {
    if (HasNul(entry)) return Status::Error("a Python path entry contains a NUL byte");
  }
  return ValidateEnvironment(python.environment(), "a Python job's");
}

Status ValidatePlugin(const std::string& path) {
  if (path.empty()) return {};
  if (path[0] != '/' || path.size() > 4096 || HasNul(path)) {
    return Status::Error("a plugin is named by an absolute path");
  }
  return {};
}

Status ValidateOutcome(const wire::Outcome& outcome) {
  switch (outcome.kind_case()) {
    case wire::Outcome::kValue:
      return ValidatePayload(outcome.value());
    case wire::Outcome::kError:
      return {};
    default:
      return Status::Error("an outcome has neither value nor error");
  }
}

Status ValidateTaskResults(const google::protobuf::RepeatedPtrField<wire::TaskResult>& results) {
  for (const wire::TaskResult& result : results) {
    for (const wire::Outcome& outcome : result.outcomes()) {
      if (Status s = ValidateOutcome(outcome); !s.ok()) return s;
    }
    if (result.has_values()) {
      if (result.outcomes_size() > 0) return Status::Error("outcomes both packed and one by one");
      if (Status s = ValidatePacked(result.values(), kMaxItemsPerMessage); !s.ok()) return s;
    }
  }
  return {};
}

Status ValidateTasks(const google::protobuf::RepeatedPtrField<wire::Task>& tasks) {
  for (const wire::Task& task : tasks) {
    if (Status s = ValidateItemList(task); !s.ok()) return s;
    if (Status s = ValidatePlugin(task.plugin()); !s.ok()) return s;
    if (task.has_exec()) {
      if (Status s = ValidateExec(task.exec()); !s.ok()) return s;
      if (task.indexes_size() != ItemCount(task)) {
        return Status::Error("a command task needs the index of every item");
      }
    }
    if (task.has_python()) {
      if (Status s = ValidatePython(task.python()); !s.ok()) return s;
    }
    if (!task.output_segment().empty() && !IsSegmentName(task.output_segment())) {
      return Status::Error("task output segment '" + task.output_segment() + "' is invalid");
    }
  }
  return {};
}

}  // namespace

Status ValidatePacked(const wire::Packed& packed, int max_strings) {
  if (Status s = CheckCount(packed.lengths_size(), max_strings); !s.ok()) return s;
  uint64_t total = 0;
  for (uint32_t length : packed.lengths()) total += length;
  if (total != packed.data().size()) {
    return Status::Error("packed lengths add up to " + std::to_string(total) + " bytes, not " +
                         std::to_string(packed.data().size()));
  }
  return {};
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

Status ValidatePayload(const wire::Payload& payload) {
  if (!payload.has_ref()) return {};
  const wire::SegmentRef& ref = payload.ref();
  if (!IsSegmentName(ref.segment())) {
    return Status::Error("payload refers to '" + ref.segment() +
                         "', which is not a jobd segment of this user");
  }
  if (ref.offset() > UINT64_MAX - ref.length()) return Status::Error("payload offset overflows");
  return {};
}

Status DecodeRequest(std::string_view bytes, wire::Request* out) {
  if (Status s = Parse(bytes, out, "request", kMaxMessageBytes); !s.ok()) return s;
  if (Status s = CheckVersion(out->version(), "the client"); !s.ok()) return s;
  switch (out->kind_case()) {
    case wire::Request::kPing:
    case wire::Request::kStatus:
    case wire::Request::kFunctions:
    case wire::Request::kShutdown:
    case wire::Request::kRelease:
    case wire::Request::kCancel:
    case wire::Request::kJobs:
    case wire::Request::kMetrics:
      return {};
    case wire::Request::kSubmit: {
      const wire::Submit& submit = out->submit();
      if (!IsValidName(submit.function())) {
        return Status::Error("invalid function name '" + submit.function().substr(0, 80) +
                             "' (names are 1-64 characters of letters, digits, '_', '-', '.')");
      }
      if (!submit.pool().empty() && !IsValidName(submit.pool())) {
        return Status::Error("invalid pool name '" + submit.pool().substr(0, 80) + "'");
      }
      if ((submit.function() == "exec") != submit.has_exec()) {
        return Status::Error("a command job is function 'exec' with a command, nothing else");
      }
      if ((submit.function() == "python") != submit.has_python()) {
        return Status::Error("a Python job is function 'python' with a Python function");
      }
      if (submit.python().pickled() && !submit.starmap()) {
        return Status::Error("a pickled Python job's items are starmap tuples (a pickle and its buffers)");
      }
      if (submit.has_python()) {
        if (Status s = ValidatePython(submit.python()); !s.ok()) return s;
      }
      if (submit.has_exec()) {
        if (Status s = ValidateExec(submit.exec()); !s.ok()) return s;
      }
      if (Status s = ValidatePlugin(submit.plugin()); !s.ok()) return s;
      if (submit.chunksize() > kMaxItemsPerMessage) {
        return Status::Error("chunksize " + std::to_string(submit.chunksize()) +
                             " is too large (at most " + std::to_string(kMaxItemsPerMessage) + ")");
      }
      return submit.has_items() ? ValidateItems(submit.items()) : Status{};
    }
    case wire::Request::kItems:
      return ValidateItems(out->items());
    case wire::Request::kNodeHello: {
      const wire::NodeHello& hello = out->node_hello();
      if (!IsValidName(hello.name())) {
        return Status::Error("invalid node name '" + hello.name().substr(0, 80) + "'");
      }
      for (const auto& [pool, workers] : hello.pool_workers()) {
        if (!IsValidName(pool)) return Status::Error("invalid pool name '" + pool.substr(0, 80) + "'");
      }
      return {};
    }
    case wire::Request::kNodeReport:
      return ValidateTaskResults(out->node_report().results());
    default:
      return Status::Error("request names no known operation (an empty or newer request?)");
  }
}

Status DecodeReply(std::string_view bytes, wire::Reply* out) {
  if (Status s = Parse(bytes, out, "reply"); !s.ok()) return s;
  if (out->kind_case() == wire::Reply::KIND_NOT_SET) return Status::Error("empty reply from jobd");
  if (out->has_results()) {
    const wire::Results& results = out->results();
    for (const wire::ItemResult& result : results.results()) {
      if (Status s = ValidateOutcome(result.outcome()); !s.ok()) return s;
    }
    if (Status s = ValidatePacked(results.values(), INT32_MAX); !s.ok()) return s;
    if (results.value_indexes_size() != results.values().lengths_size()) {
      return Status::Error("packed results need the index of every value");
    }
  }
  if (out->has_node_tasks()) return ValidateTasks(out->node_tasks().tasks());
  return {};
}

Status DecodeFromWorker(std::string_view bytes, wire::FromWorker* out) {
  if (Status s = Parse(bytes, out, "worker message"); !s.ok()) return s;
  if (Status s = CheckVersion(out->version(), "the worker"); !s.ok()) return s;
  switch (out->kind_case()) {
    case wire::FromWorker::kHello:
      return {};
    case wire::FromWorker::kResults:
      return ValidateTaskResults(out->results().results());
    default:
      return Status::Error("worker message names no known kind");
  }
}

Status DecodeToWorker(std::string_view bytes, wire::ToWorker* out) {
  if (Status s = Parse(bytes, out, "task message"); !s.ok()) return s;
  if (Status s = CheckVersion(out->version(), "jobd"); !s.ok()) return s;
  switch (out->kind_case()) {
    case wire::ToWorker::kStop:
      return {};
    case wire::ToWorker::kTasks:
      return ValidateTasks(out->tasks().tasks());
    default:
      return Status::Error("task message names no known kind");
  }
}

}  // namespace jobd
