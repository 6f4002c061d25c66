// The check every message fuzzer makes: decoding returns whatever the bytes;
// every packed string of a message it accepts can be read; and the message
// decodes again after a round trip.
#pragma once

#include <cstdlib>
#include <string_view>

#include "common/packed.h"
#include "jobd/status.h"

inline void ReadPacked(const jobd::wire::Packed& packed) {
  size_t total = 0;
  for (jobd::PackedReader strings(packed); !strings.done();) total += strings.Next().size();
  if (total != packed.data().size()) std::abort();
}
inline void ReadPacked(const jobd::wire::Request& request) { ReadPacked(request.items().packed()); }
inline void ReadPacked(const jobd::wire::Reply& reply) { ReadPacked(reply.results().values()); }
inline void ReadPacked(const jobd::wire::FromWorker& message) {
  for (const auto& result : message.results().results()) ReadPacked(result.values());
}
inline void ReadPacked(const jobd::wire::ToWorker& message) {
  for (const auto& task : message.tasks().tasks()) ReadPacked(task.packed());
}

template <typename Message>
void CheckRoundTrip(std::string_view bytes, jobd::Status (*decode)(std::string_view, Message*)) {
  Message message;
  if (!decode(bytes, &message).ok()) return;
  ReadPacked(message);
  Message again;
  if (!decode(message.SerializeAsString(), &again).ok()) std::abort();
}
