#include "daemon/remote.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/log.h"
#include "common/wire.h"

namespace jobd {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";  // fixed by ZAP (RFC 27)
constexpr const char* kMonitorEndpoint = "inproc://jobd-remote-monitor";
constexpr const char* kZapDomain = "jobd-cluster";
// A client that stops answering heartbeats is dropped (its jobs are then
// cancelled, as a local client's are when it exits).
constexpr int kHeartbeatMs = 2000;
constexpr int kHeartbeatTimeoutMs = 10000;

// "tcp://0.0.0.0:PORT" names no host a client can reach: the host's name does.
std::string Reachable(const std::string& bound) {
  const std::string any = "tcp://0.0.0.0:";
  if (bound.rfind(any, 0) != 0) return bound;
  return "tcp://" + HostName() + ":" + bound.substr(any.size());
}

}  // namespace

Result<std::unique_ptr<RemoteListener>> RemoteListener::Start(const std::string& endpoint,
                                                              const std::string& cluster_file,
                                                              const std::string& local) {
  if (!IsTcpEndpoint(endpoint)) {
    return Status::Error("a cluster endpoint is tcp://HOST:PORT, not " + endpoint);
  }
  Result<ClusterFile> keys = ClusterFile::Generate(endpoint);
  if (!keys.ok()) return keys.status();
  std::unique_ptr<RemoteListener> listener(new RemoteListener());
  listener->keys_ = std::move(*keys);
  try {
    listener->zap_ = zmq::socket_t(listener->context_, zmq::socket_type::rep);
    listener->zap_.set(zmq::sockopt::linger, 0);
    listener->zap_.bind(kZapEndpoint);

    zmq::socket_t& socket = listener->socket_;
    socket = zmq::socket_t(listener->context_, zmq::socket_type::router);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
    socket.set(zmq::sockopt::router_mandatory, true);
    // Peers name themselves (a random id): one that reconnects takes its
    // place again, so its jobs (or its node) carry on.
    socket.set(zmq::sockopt::router_handover, true);
    socket.set(zmq::sockopt::sndhwm, 0);
    socket.set(zmq::sockopt::rcvhwm, 0);
    socket.set(zmq::sockopt::heartbeat_ivl, kHeartbeatMs);
    socket.set(zmq::sockopt::heartbeat_timeout, kHeartbeatTimeoutMs);
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, listener->keys_.server_secret);
    socket.set(zmq::sockopt::zap_domain, kZapDomain);
    if (zmq_socket_monitor(socket.handle(), kMonitorEndpoint,
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0) {
      throw zmq::error_t();
    }
    listener->monitor_ = zmq::socket_t(listener->context_, zmq::socket_type::pair);
    listener->monitor_.connect(kMonitorEndpoint);
    socket.bind(endpoint);
    listener->keys_.endpoint = Reachable(socket.get(zmq::sockopt::last_endpoint));
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot listen on " + endpoint + ": " + e.what());
  }
  listener->keys_.host = HostName();
  listener->keys_.local = local;
  listener->keys_.pid = static_cast<uint32_t>(getpid());
  if (Status s = listener->keys_.Write(cluster_file); !s.ok()) return s;
  return listener;
}

RemoteListener::~RemoteListener() {
  if (socket_) zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

void RemoteListener::HandleZap() {
  while (true) {
    std::vector<zmq::message_t> frames;
    zmq::message_t frame;
    if (!zap_.recv(frame, zmq::recv_flags::dontwait)) return;
    frames.push_back(std::move(frame));
    while (frames.back().more()) {
      zmq::message_t next;
      (void)zap_.recv(next, zmq::recv_flags::none);
      frames.push_back(std::move(next));
    }
    // version, request id, domain, address, routing id, mechanism, credentials...
    std::string status = "400", text = "not this cluster's key";
    if (frames.size() >= 6) {
      const std::string mechanism = frames[5].to_string();
      const std::string address = frames[3].to_string();
      uint8_t expected[32];
      zmq_z85_decode(expected, keys_.client_public.c_str());
      if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == sizeof expected &&
          std::memcmp(frames[6].data(), expected, sizeof expected) == 0) {
        status = "200";
        text = "OK";
      } else {
        Refused("a TCP client at " + address + " (" + mechanism +
                "): its key is not the one in this cluster's file");
      }
    }
    const std::string request_id = frames.size() >= 2 ? frames[1].to_string() : "";
    zap_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(status), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap_.send(zmq::str_buffer(""), zmq::send_flags::sndmore);  // user id
    zap_.send(zmq::str_buffer(""), zmq::send_flags::none);     // metadata
  }
}

void RemoteListener::HandleMonitor() {
  while (true) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
    zmq::message_t address;
    if (event.more()) (void)monitor_.recv(address, zmq::recv_flags::none);
    Refused("a TCP peer on " + address.to_string() +
            " that failed the CurveZMQ handshake (plaintext, or not this cluster's server key)");
  }
}

void RemoteListener::Refused(const std::string& why) {
  refusals_.Warn([&] { return "cluster endpoint " + keys_.endpoint + ": refused " + why; });
}

}  // namespace jobd
