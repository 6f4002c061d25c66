// The one place where bytes from another process become messages. Every
// Decode* parses and then validates everything later code relies on (version,
// which oneof is set, names, counts, segment references), so the rest of jobd
// can trust a decoded message. These functions are the fuzzing surface.
#pragma once

#include <string>
#include <string_view>
#include <zmq.hpp>

#include "jobd/status.h"
#include "jobd.pb.h"

namespace jobd {

// Messages above this size are refused by the socket before parsing.
inline constexpr int64_t kMaxMessageBytes = 64 << 20;
// At most this many items per Items message or task.
inline constexpr int kMaxItemsPerMessage = 1 << 16;

// `message` serialised into a ZeroMQ message that owns its bytes, so that
// sending it copies nothing (payloads inline in a message may be megabytes).
zmq::message_t Encode(const google::protobuf::MessageLite& message);

Status DecodeRequest(std::string_view bytes, wire::Request* out);
Status DecodeReply(std::string_view bytes, wire::Reply* out);
Status DecodeFromWorker(std::string_view bytes, wire::FromWorker* out);
Status DecodeToWorker(std::string_view bytes, wire::ToWorker* out);

// Checks one payload: a segment reference must name a segment of this user and
// its offset + length must not overflow. Size against the segment is checked
// by whoever maps it (Segment::Slice).
Status ValidatePayload(const wire::Payload& payload);
// Function and pool names: 1..64 characters of [A-Za-z0-9_.-].
bool IsValidName(std::string_view name);

}  // namespace jobd
