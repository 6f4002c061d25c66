#include "daemon/host_payloads.h"

#include "common/packed.h"
#include "common/payload.h"

namespace jobd {

Result<std::string> ShareForWorker(wire::Task& task) {
  task.set_output_segment(NewSegmentName());
  // Each item's bytes: packed ones came together in one string.
  std::vector<std::string_view> bytes;
  if (task.has_packed()) {
    for (PackedReader packed(task.packed()); !packed.done();) bytes.push_back(packed.Next());
  } else {
    for (const wire::Payload& item : task.items()) bytes.push_back(item.data());  // "" for a ref
  }
  size_t large = 0;
  for (std::string_view item : bytes) large += item.size() > kInlineLimit ? item.size() : 0;
  if (large == 0) return std::string();

  PayloadWriter writer(large);  // one segment holds them all
  std::vector<wire::Payload> shared(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i].size() <= kInlineLimit) continue;
    if (Status s = writer.Add(bytes[i], &shared[i]); !s.ok()) {
      for (const std::string& name : writer.TakeNewSegments()) RemoveSegment(name);
      task.clear_output_segment();
      return s;
    }
  }
  // The task now carries Payloads: a ref for each large item.
  google::protobuf::RepeatedPtrField<wire::Payload> items;
  for (size_t i = 0; i < bytes.size(); ++i) {
    wire::Payload* item = items.Add();
    if (shared[i].has_ref()) {
      item->Swap(&shared[i]);
    } else if (task.has_packed()) {
      item->set_data(std::string(bytes[i]));
    } else {
      item->Swap(task.mutable_items(static_cast<int>(i)));
    }
  }
  task.clear_packed();
  task.mutable_items()->Swap(&items);
  return writer.TakeNewSegments().front();
}

Status InlineItems(wire::Task& task) {
  SegmentReader reader;
  for (wire::Payload& item : *task.mutable_items()) {
    if (!item.has_ref()) continue;
    Result<std::string_view> bytes = reader.Read(item);
    if (!bytes.ok()) return bytes.status();
    item.set_data(std::string(*bytes));  // (clears the ref: one of a oneof)
  }
  return {};
}

void InlineResults(wire::TaskResult& result, const std::string& output) {
  SegmentReader reader;
  for (wire::Outcome& outcome : *result.mutable_outcomes()) {
    if (!outcome.has_value() || !outcome.value().has_ref()) continue;
    if (outcome.value().ref().segment() != output) {
      outcome.set_error("internal error: the worker returned a result outside its segment");
      continue;
    }
    Result<std::string_view> bytes = reader.Read(outcome.value());
    if (!bytes.ok()) {
      outcome.set_error("its result could not be read from shared memory: " + bytes.message());
      continue;
    }
    outcome.mutable_value()->set_data(std::string(*bytes));
  }
}

}  // namespace jobd
