// The check every message fuzzer makes: decoding returns whatever the bytes,
// and a message it accepts decodes again after a round trip.
#pragma once

#include <cstdlib>
#include <string_view>

#include "jobd/status.h"

template <typename Message>
void CheckRoundTrip(std::string_view bytes, jobd::Status (*decode)(std::string_view, Message*)) {
  Message message;
  if (!decode(bytes, &message).ok()) return;
  Message again;
  if (!decode(message.SerializeAsString(), &again).ok()) std::abort();
}
