// A node's link to its head (jobd join, jobd --slurm): a CurveZMQ connection
// with the cluster file's keys, on which the node says NodeHello, then sends
// NodeReports (results of the head's tasks, tasks it lost; empty ones as
// heartbeats) and receives the head's tasks. See message NodeHello.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/cluster_file.h"
#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

class HeadLink {
 public:
  // Connects to the head of the cluster file at `path` (waiting up to
  // `wait` for the file to appear and the head to answer) and says `hello`.
  static Result<std::unique_ptr<HeadLink>> Start(const std::string& path, wire::NodeHello hello,
                                                 std::chrono::seconds wait);

  zmq::socket_t& socket() { return socket_; }
  const std::string& endpoint() const { return cluster_.endpoint; }

  // What the head sent: its tasks are appended to `tasks`, the jobs that
  // ended to `cancelled`. A head that no longer knows this node (it took it
  // for lost) is greeted again.
  Status Receive(std::vector<std::unique_ptr<wire::Task>>* tasks, std::vector<uint64_t>* cancelled);
  // Says NodeHello again, now with `pool_workers` (none: it takes no more).
  void Greet(const std::map<std::string, uint32_t>& pool_workers);
  // Sends `report` (empty: a heartbeat) and clears it.
  void Send(wire::NodeReport& report);
  // Whether nothing was sent for a heartbeat's interval.
  bool Quiet(std::chrono::steady_clock::time_point now) const;
  // Whether the head said nothing for kNodeTimeout.
  bool Lost(std::chrono::steady_clock::time_point now) const;
  // Counts the head's silence from `now` (this node did not run until now).
  void Restart(std::chrono::steady_clock::time_point now) { last_heard_ = now; }

 private:
  HeadLink() = default;
  void SendRequest(wire::Request& request);

  ClusterFile cluster_;
  wire::NodeHello hello_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::chrono::steady_clock::time_point last_heard_, last_sent_;
};

}  // namespace jobd
