// The optional HTTP endpoint for Prometheus (metrics_listen: in the config):
// GET /metrics answers what `jobctl metrics` prints. Served by the
// supervisor's loop without ever blocking it: every socket is non-blocking,
// a connection gets one answer and is closed, one silent for 5 s is dropped,
// and at most kMaxConnections are open (the oldest goes first).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "jobd/status.h"

namespace jobd {

class MetricsEndpoint {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxConnections = 32;

  // Listens on "HOST:PORT" (port 0: any free one).
  static Result<std::unique_ptr<MetricsEndpoint>> Listen(const std::string& address);
  ~MetricsEndpoint();

  // "http://HOST:PORT/metrics", with the port it got.
  const std::string& url() const { return url_; }
  // Appends what the loop must poll.
  void AddPollItems(std::vector<zmq::pollitem_t>& items) const;
  // Serves what `items` (as AddPollItems appended them, polled) say is ready.
  void Handle(const zmq::pollitem_t* items, const std::function<std::string()>& metrics);

 private:
  struct Connection {
    int fd;
    std::string in, out;  // out: the answer, once the request is in
    Clock::time_point deadline;
  };
  MetricsEndpoint(int fd, std::string url) : listener_(fd), url_(std::move(url)) {}
  void Accept();
  // Reads or writes what it can; false once the connection is done.
  bool Serve(Connection& connection, const std::function<std::string()>& metrics);

  int listener_;
  std::string url_;
  std::deque<Connection> connections_;
};

// The answer to an HTTP request whose head is `request`.
std::string MetricsHttpAnswer(const std::string& request, const std::function<std::string()>& metrics);

}  // namespace jobd
