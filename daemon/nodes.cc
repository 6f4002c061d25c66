#include "daemon/nodes.h"

#include <algorithm>


namespace jobd {

bool Node::HasCredit(const std::string& pool) const {
  auto found = workers.find(pool);
  if (found == workers.end() || found->second == 0) return false;
  const auto held = static_cast<uint32_t>(std::count_if(
      tasks.begin(), tasks.end(), [&](const auto& task) { return task.second == pool; }));
  return held < found->second + kNodePrefetch;
}

std::string Node::State(std::chrono::steady_clock::time_point now) const {
  if (!gone.empty()) return gone;
  if (stopping) return "stopping";
  return now - last_heard > 2 * kNodeHeartbeat ? "silent" : "serving";
}

void SetNodeVariable(google::protobuf::RepeatedPtrField<std::string>* environment,
                     const std::string& name) {
  if (environment->empty()) return;  // the worker's own environment: left as it is
  for (auto it = environment->begin(); it != environment->end();) {
    it = it->rfind("JOBD_NODE=", 0) == 0 ? environment->erase(it) : std::next(it);
  }
  environment->Add("JOBD_NODE=" + name);
}

}  // namespace jobd
