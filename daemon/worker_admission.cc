#include "daemon/worker_admission.h"

namespace jobd {

bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

Admission AdmitWorkerMessage(const ExpectedWorker& worker, const std::optional<ucred>& sender,
                             const wire::FromWorker* message) {
  // Not from the worker's process: someone else's, dropped; the worker is
  // not to blame.
  if (!sender) return {false, false, "a message whose sender the kernel does not name"};
  if (sender->uid != worker.uid || sender->pid != worker.pid) {
    return {false, false, "a message under the routing id of worker pid " + std::to_string(worker.pid)};
  }
  if (message == nullptr) return {false, true, "a message that does not decode"};
  if (message->has_hello() == worker.said_hello) {
    return {false, true, message->has_hello() ? "a second Hello" : "results before its Hello"};
  }
  if (message->has_hello() && !SameSecret(message->hello().secret(), worker.secret)) {
    return {false, true, "a Hello without the secret its worker was given"};
  }
  return {true, false, ""};
}

}  // namespace jobd
