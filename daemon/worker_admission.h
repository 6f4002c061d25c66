// Who may speak on the workers' socket. A message is taken only from the
// worker under whose routing id it arrives: sent by the very process jobd
// started (its pid, jobd's uid), and a Hello only as that worker's first
// message, carrying the secret jobd handed it.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "jobd.pb.h"

namespace jobd {

// What jobd knows of the worker a routing id belongs to.
struct ExpectedWorker {
  pid_t pid = 0;
  uid_t uid = 0;
  std::string_view secret;
  bool said_hello = false;
};

struct Admission {
  bool take = false;     // the message is the worker's, in turn
  bool replace = false;  // refused, and the worker itself misbehaved: replace it
  std::string why;       // when refused
};

// `sender`: the connection's credentials (PeerOf); `message`: the decoded
// message, null if it did not decode.
Admission AdmitWorkerMessage(const ExpectedWorker& worker, const std::optional<ucred>& sender,
                             const wire::FromWorker* message);

// Whether two secrets are equal, in time that does not depend on where they differ.
bool SameSecret(std::string_view a, std::string_view b);

}  // namespace jobd
