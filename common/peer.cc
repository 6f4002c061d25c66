#include "common/peer.h"

#include <charconv>
#include <cstdint>
#include <string_view>

namespace jobd {

std::optional<ucred> PeerOf(const zmq::message_t& message) {
  const char* address = zmq_msg_gets(const_cast<zmq::message_t&>(message).handle(), "Peer-Address");
  if (address == nullptr) return std::nullopt;
  // "<host>:uid:gid:pid": read from the right, whatever the host part holds.
  const std::string_view text(address);
  uint64_t fields[3] = {};
  size_t end = text.size();
  for (int i = 2; i >= 0; --i) {
    if (end == 0) return std::nullopt;
    const size_t colon = text.rfind(':', end - 1);
    if (colon == std::string_view::npos) return std::nullopt;
    const auto [ptr, error] = std::from_chars(text.data() + colon + 1, text.data() + end, fields[i]);
    if (error != std::errc() || ptr != text.data() + end) return std::nullopt;
    end = colon;
  }
  ucred credentials{};
  credentials.uid = static_cast<uid_t>(fields[0]);
  credentials.gid = static_cast<gid_t>(fields[1]);
  credentials.pid = static_cast<pid_t>(fields[2]);
  return credentials;
}

}  // namespace jobd
