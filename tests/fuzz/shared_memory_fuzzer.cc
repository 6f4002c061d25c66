// Layouts read out of shared memory and pipes written by other processes:
// starmap tuples, payload references into a segment, stream results.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/args.h"
#include "common/payload.h"
#include "worker/stream.h"

namespace {

// A segment of fixed size that payload references point into.
jobd::Segment& Target() {
  static jobd::Segment* segment = [] {
    const std::string name = jobd::NewSegmentName();
    auto created = jobd::Segment::Create(name, 4096);
    if (!created.ok() || !created->Allocate(0, 4096).ok()) std::abort();
    jobd::RemoveSegment(name);  // the mapping stays; nothing is left behind
    return new jobd::Segment(std::move(created).value());
  }();
  return *segment;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // A tuple: what unpacks must pack back to the same bytes.
  auto args = jobd::UnpackArgs(bytes);
  if (args.ok()) {
    std::string packed(jobd::PackedSize(*args), '\0');
    jobd::PackArgs(*args, packed.data());
    if (packed != bytes) std::abort();
  }

  // An offset and a length: a slice accepted lies inside the segment.
  if (size >= 16) {
    uint64_t offset, length;
    std::memcpy(&offset, data, 8);
    std::memcpy(&length, data + 8, 8);
    auto slice = Target().Slice(offset, length);
    if (slice.ok()) {
      volatile char sum = 0;
      for (char c : *slice) sum = static_cast<char>(sum + c);  // touches every byte
    }
  }

  // Results from a coprocess, both protocols: each parse consumes what it says.
  for (bool framed : {false, true}) {
    std::string_view rest = bytes;
    while (true) {
      auto result = jobd::ParseStreamResult(rest, framed);
      if (!result.ok() || !result->complete) break;
      if (result->consumed == 0 || result->consumed > rest.size()) std::abort();
      rest.remove_prefix(result->consumed);
    }
  }
  return 0;
}
