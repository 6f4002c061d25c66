// Bytes between jobd and its workers: FromWorker and ToWorker decoding.
#include <cstdint>

#include "common/wire.h"
#include "round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckRoundTrip(bytes, &jobd::DecodeFromWorker);
  CheckRoundTrip(bytes, &jobd::DecodeToWorker);
  return 0;
}
