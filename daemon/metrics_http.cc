#include "daemon/metrics_http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace jobd {
namespace {

constexpr auto kIdleLimit = std::chrono::seconds(5);
constexpr size_t kMaxRequestBytes = 8192;

std::string Answer(const char* status, const char* type, const std::string& body) {
  return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace

std::string MetricsHttpAnswer(const std::string& request,
                              const std::function<std::string()>& metrics) {
  const std::string line = request.substr(0, request.find_first_of("\r\n"));
  const size_t space = line.find(' ');
  const std::string method = line.substr(0, space);
  const std::string target =
      space == std::string::npos ? "" : line.substr(space + 1, line.find(' ', space + 1) - space - 1);
  if (method != "GET" && method != "HEAD") {
    return Answer("405 Method Not Allowed", "text/plain", "only GET /metrics\n");
  }
  if (target != "/metrics" && target.rfind("/metrics?", 0) != 0) {
    return Answer("404 Not Found", "text/plain", "jobd serves /metrics only\n");
  }
  std::string answer = Answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics());
  if (method == "HEAD") answer.resize(answer.find("\r\n\r\n") + 4);
  return answer;
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::Error("metrics_listen '" + address + "' must be HOST:PORT");
  }
  const std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int error = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      error != 0) {
    return Status::Error("metrics_listen '" + address + "': " + gai_strerror(error));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int on = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    freeaddrinfo(found);
    if (fd >= 0) close(fd);
    return Status::Error("cannot serve metrics at " + address + ": " + why);
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  char name[INET6_ADDRSTRLEN] = {};
  char service[16] = {};
  getnameinfo(reinterpret_cast<sockaddr*>(&bound), length, name, sizeof name, service,
              sizeof service, NI_NUMERICHOST | NI_NUMERICSERV);
  const std::string shown = bound.ss_family == AF_INET6 ? "[" + std::string(name) + "]" : name;
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(fd, "http://" + shown + ":" + service + "/metrics"));
}

MetricsEndpoint::~MetricsEndpoint() {
  for (const Connection& connection : connections_) close(connection.fd);
  close(listener_);
}

void MetricsEndpoint::AddPollItems(std::vector<zmq::pollitem_t>& items) const {
  items.push_back({nullptr, listener_, ZMQ_POLLIN, 0});
  for (const Connection& connection : connections_) {
    items.push_back({nullptr, connection.fd,
                     static_cast<short>(connection.out.empty() ? ZMQ_POLLIN : ZMQ_POLLOUT), 0});
  }
}

void MetricsEndpoint::Handle(const zmq::pollitem_t* items,
                             const std::function<std::string()>& metrics) {
  const auto now = Clock::now();
  // The connections as they were polled, items[1...]: Accept below adds after them.
  size_t polled = 1;
  for (auto it = connections_.begin(); it != connections_.end(); ++polled) {
    const short events = items[polled].revents;
    if (now >= it->deadline || (events != 0 && !Serve(*it, metrics))) {
      close(it->fd);
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
  if (items[0].revents & ZMQ_POLLIN) Accept();
}

void MetricsEndpoint::Accept() {
  while (true) {
    const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (connections_.size() == kMaxConnections) {
      close(connections_.front().fd);
      connections_.pop_front();
    }
    connections_.push_back({fd, "", "", Clock::now() + kIdleLimit});
  }
}

bool MetricsEndpoint::Serve(Connection& connection, const std::function<std::string()>& metrics) {
  if (connection.out.empty()) {
    char buffer[4096];
    const ssize_t n = recv(connection.fd, buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
    if (n > 0) connection.in.append(buffer, static_cast<size_t>(n));
    const bool complete = connection.in.find("\r\n\r\n") != std::string::npos ||
                          connection.in.find("\n\n") != std::string::npos;
    if (!complete && connection.in.size() < kMaxRequestBytes) return true;
    connection.out = complete ? MetricsHttpAnswer(connection.in, metrics)
                              : Answer("431 Request Header Fields Too Large", "text/plain", "");
  }
  const ssize_t sent = send(connection.fd, connection.out.data(), connection.out.size(),
                            MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) return errno == EAGAIN || errno == EINTR;
  connection.out.erase(0, static_cast<size_t>(sent));
  return !connection.out.empty();  // done once all of it went
}

}  // namespace jobd
