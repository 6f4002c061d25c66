#include "daemon/nodes.h"

#include <algorithm>

#include "common/payload.h"

namespace jobd {

bool Node::HasCredit(const std::string& pool) const {
  auto found = workers.find(pool);
  if (found == workers.end() || found->second == 0) return false;
  const auto held = static_cast<uint32_t>(std::count_if(
      tasks.begin(), tasks.end(), [&](const auto& task) { return task.second == pool; }));
  return held < found->second + kNodePrefetch;
}

void SetNodeVariable(google::protobuf::RepeatedPtrField<std::string>* environment,
                     const std::string& name) {
  if (environment->empty()) return;  // the worker's own environment: left as it is
  for (auto it = environment->begin(); it != environment->end();) {
    it = it->rfind("JOBD_NODE=", 0) == 0 ? environment->erase(it) : std::next(it);
  }
  environment->Add("JOBD_NODE=" + name);
}

Status InlineForNode(wire::Task& task) {
  task.clear_output_segment();
  SegmentReader reader;
  for (wire::Payload& item : *task.mutable_items()) {
    if (!item.has_ref()) continue;
    Result<std::string_view> bytes = reader.Read(item);
    if (!bytes.ok()) return bytes.status();
    item.set_data(std::string(*bytes));  // (clears the ref: one of a oneof)
  }
  return {};
}

}  // namespace jobd
