// Many small byte strings in one wire::Packed (their bytes back to back, and
// their lengths): items and results travel this way when they are inline, so
// that a message costs one allocation instead of one per item.
#pragma once

#include <cstdint>
#include <string_view>

#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

// The lengths must add up to the bytes; at most `max_strings` of them.
Status ValidatePacked(const wire::Packed& packed, int max_strings);

inline void AppendPacked(wire::Packed* packed, std::string_view bytes) {
  packed->mutable_data()->append(bytes);
  packed->add_lengths(static_cast<uint32_t>(bytes.size()));
}

// The strings of a validated Packed, in order.
class PackedReader {
 public:
  explicit PackedReader(const wire::Packed& packed) : packed_(packed) {}
  int size() const { return packed_.lengths_size(); }
  bool done() const { return next_ == size(); }
  // The next string; only while !done().
  std::string_view Next() {
    const uint32_t length = packed_.lengths(next_++);
    const std::string_view bytes = std::string_view(packed_.data()).substr(offset_, length);
    offset_ += length;
    return bytes;
  }

 private:
  const wire::Packed& packed_;
  int next_ = 0;
  size_t offset_ = 0;
};

// Moves the strings of `packed` into Payloads made by `add_payload()` (one
// call per string, in order), and clears it: when a message that carried its
// payloads packed must go on one by one.
template <typename AddPayload>
void UnpackInto(wire::Packed* packed, const AddPayload& add_payload) {
  for (PackedReader strings(*packed); !strings.done();) {
    add_payload()->set_data(std::string(strings.Next()));
  }
  packed->Clear();
}

}  // namespace jobd
