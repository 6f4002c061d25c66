// Bytes between jobd and its workers: FromWorker and ToWorker decoding.
#include <cstdint>
#include <cstdlib>

#include "common/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  jobd::wire::FromWorker from;
  if (jobd::DecodeFromWorker(bytes, &from).ok()) {
    jobd::wire::FromWorker again;
    if (!jobd::DecodeFromWorker(from.SerializeAsString(), &again).ok()) std::abort();
  }
  jobd::wire::ToWorker to;
  if (jobd::DecodeToWorker(bytes, &to).ok()) {
    jobd::wire::ToWorker again;
    if (!jobd::DecodeToWorker(to.SerializeAsString(), &again).ok()) std::abort();
  }
  return 0;
}
