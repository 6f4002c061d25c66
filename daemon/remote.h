// Clients on other hosts: a ROUTER socket on the cluster's TCP endpoint, in a
// ZeroMQ context of its own, where every connection is CurveZMQ with the
// cluster file's keys. Its ZAP handler admits the cluster's client key alone:
// a peer with another key is refused at the handshake, and one speaking
// plaintext (or expecting another server key) fails the handshake; neither
// ever gets a message through, and each refusal is logged (at most once a
// second, with a count of the rest). Local clients keep jobd's Unix socket,
// where the kernel tells who sends each message.
#pragma once

#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/cluster_file.h"
#include "common/log.h"
#include "jobd/status.h"

namespace jobd {

class RemoteListener {
 public:
  // Listens on `endpoint` (tcp://HOST:PORT; port 0 picks one) with new keys,
  // then writes the cluster file at `cluster_file` naming the bound endpoint
  // (and `local`, this jobd's local endpoint, for clients on this host).
  static Result<std::unique_ptr<RemoteListener>> Start(const std::string& endpoint,
                                                       const std::string& cluster_file,
                                                       const std::string& local);
  ~RemoteListener();

  zmq::socket_t& socket() { return socket_; }
  const std::string& endpoint() const { return keys_.endpoint; }

  // The sockets the poll loop watches besides socket(): ZAP requests, and
  // the monitor's events (handshakes that failed).
  zmq::socket_t& zap() { return zap_; }
  zmq::socket_t& monitor() { return monitor_; }
  // Answers the ZAP requests that wait.
  void HandleZap();
  // Logs the handshakes that failed since the last call.
  void HandleMonitor();

 private:
  RemoteListener() = default;
  void Refused(const std::string& why);

  ClusterFile keys_;
  zmq::context_t context_{1};
  zmq::socket_t zap_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  RefusalLog refusals_;
};

}  // namespace jobd
