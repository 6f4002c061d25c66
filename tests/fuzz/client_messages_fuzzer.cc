// Bytes a client or jobd may send: Request and Reply decoding. Whatever the
// bytes, decoding returns; a message it accepts survives a round trip.
#include <cstdint>
#include <cstdlib>

#include "common/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  jobd::wire::Request request;
  if (jobd::DecodeRequest(bytes, &request).ok()) {
    jobd::wire::Request again;
    if (!jobd::DecodeRequest(request.SerializeAsString(), &again).ok()) std::abort();
  }
  jobd::wire::Reply reply;
  if (jobd::DecodeReply(bytes, &reply).ok()) {
    jobd::wire::Reply again;
    if (!jobd::DecodeReply(reply.SerializeAsString(), &again).ok()) std::abort();
  }
  return 0;
}
