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
//   host node1                      (optional: where the head runs,
//   local ipc:///run/user/1000/jobd/jobd.sock   its local socket there,
//   pid 4242                        and its pid)
//
// A client on the head's host reaches it on its local socket instead, when it
// finds that jobd there (the same pid): its payloads then go through shared
// memory, with no encryption to pay.
#pragma once

#include <cstdint>
#include <string>

#include "jobd/status.h"

namespace jobd {

struct ClusterFile {
  std::string endpoint;  // tcp://HOST:PORT, where the head listens
  std::string server_public;
  std::string client_public;
  std::string client_secret;
  std::string server_secret;  // the head's own, never written to the file
  std::string host;   // the head's host name (gethostname)
  std::string local;  // the head's local endpoint (ipc://PATH) on that host
  uint32_t pid = 0;   // the head's pid there

  // New keys (libzmq's CurveZMQ key pairs) for a head at `endpoint`.
  static Result<ClusterFile> Generate(const std::string& endpoint);
  // Reads and checks the file at `path` (what is wrong says how to fix it).
  static Result<ClusterFile> Read(const std::string& path);
  // Writes the file at `path` (mode 0600, replaced whole: readers never see
  // half of it), in a folder checked as jobd's own files are.
  Status Write(const std::string& path) const;
};

// This host's name, as a cluster file names the head's.
std::string HostName();

// Whether `endpoint` is a TCP one (tcp://HOST:PORT), which needs a cluster file.
bool IsTcpEndpoint(const std::string& endpoint);

}  // namespace jobd
