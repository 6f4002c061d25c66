// Who sent a ZeroMQ message over a Unix socket, as the kernel said when its
// connection was made.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <zmq.hpp>

namespace jobd {

// The uid, gid and pid of the process that made `message`'s connection
// (SO_PEERCRED, which libzmq appends as ":uid:gid:pid" to the Peer-Address
// property every message of a connection carries), not what the message
// claims. It stays right after the connection closed, unlike a descriptor,
// whose number may by then name another connection. nullopt if the property
// is missing (not a Unix socket, or a peer that completed no handshake).
std::optional<ucred> PeerOf(const zmq::message_t& message);

}  // namespace jobd
