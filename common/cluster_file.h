// The cluster file: what a client (or a node) needs to reach a jobd over TCP,
// written by that jobd (the head) when it starts. Every TCP connection to a
// jobd is CurveZMQ: the file carries the head's public key, which a peer
// checks the head against, and the one client key pair the head accepts.
// Whoever can read the file can use the head, so it is mode 0600 in a folder
// only its user may change, and a file others can read is refused.
//
// The format is one "name value" per line:
//
//   endpoint tcp://10.0.0.1:7321
//   server_key <40 characters of Z85: the head's public key>
//   client_public <40 characters of Z85>
//   client_secret <40 characters of Z85>
#pragma once

#include <string>

#include "jobd/status.h"

namespace jobd {

struct ClusterFile {
  std::string endpoint;  // tcp://HOST:PORT, where the head listens
  std::string server_public;
  std::string client_public;
  std::string client_secret;
  std::string server_secret;  // the head's own, never written to the file

  // New keys (libzmq's CurveZMQ key pairs) for a head at `endpoint`.
  static Result<ClusterFile> Generate(const std::string& endpoint);
  // Reads and checks the file at `path` (what is wrong says how to fix it).
  static Result<ClusterFile> Read(const std::string& path);
  // Writes the file at `path` (mode 0600, replaced whole: readers never see
  // half of it), in a folder checked as jobd's own files are.
  Status Write(const std::string& path) const;
};

// Whether `endpoint` is a TCP one (tcp://HOST:PORT), which needs a cluster file.
bool IsTcpEndpoint(const std::string& endpoint);

}  // namespace jobd
