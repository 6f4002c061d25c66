#include "daemon/head_link.h"

#include <thread>

#include "common/log.h"
#include "common/random.h"
#include "common/wire.h"
#include "daemon/nodes.h"

namespace jobd {

Result<std::unique_ptr<HeadLink>> HeadLink::Start(const std::string& path, wire::NodeHello hello,
                                                  std::chrono::seconds wait) {
  std::unique_ptr<HeadLink> link(new HeadLink());
  link->hello_ = std::move(hello);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  // The file may not be there yet (a head starting beside this node), or be
  // an earlier head's: read it until its head answers.
  Status last = Status::Error("no attempt");
  while (true) {
    Result<ClusterFile> cluster = ClusterFile::Read(path);
    if (cluster.ok()) {
      link->cluster_ = std::move(*cluster);
      link->socket_ = zmq::socket_t(link->context_, zmq::socket_type::dealer);
      zmq::socket_t& socket = link->socket_;
      socket.set(zmq::sockopt::linger, 1000);  // a last report still leaves
      // Its own routing id: a reconnect (the network, the head's restart)
      // keeps the head's view of this node.
      socket.set(zmq::sockopt::routing_id, RandomHex(16));
      socket.set(zmq::sockopt::rcvhwm, 0);
      socket.set(zmq::sockopt::sndhwm, 0);
      socket.set(zmq::sockopt::curve_serverkey, link->cluster_.server_public);
      socket.set(zmq::sockopt::curve_publickey, link->cluster_.client_public);
      socket.set(zmq::sockopt::curve_secretkey, link->cluster_.client_secret);
      socket.connect(link->cluster_.endpoint);
      wire::Request request;
      *request.mutable_node_hello() = link->hello_;
      link->SendRequest(request);
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(2000)) > 0) {
        zmq::message_t message;
        (void)socket.recv(message, zmq::recv_flags::none);
        wire::Reply reply;
        Status decoded = DecodeReply(message.to_string_view(), &reply);
        if (decoded.ok() && reply.has_node_tasks()) {
          link->last_heard_ = std::chrono::steady_clock::now();
          return link;
        }
        last = decoded.ok() ? Status::Error(reply.has_error() ? reply.error().message()
                                                              : "an unexpected answer")
                            : decoded;
        if (reply.has_error()) return Status::Error("the head at " + link->cluster_.endpoint +
                                                    " refused this node: " + last.message());
      } else {
        last = Status::Error("no head answers at " + link->cluster_.endpoint);
      }
    } else {
      last = cluster.status();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Error("cannot join the head of cluster file " + path + ": " + last.message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status HeadLink::Receive(std::vector<std::unique_ptr<wire::Task>>* tasks,
                         std::vector<uint64_t>* cancelled) {
  while (true) {
    zmq::message_t message;
    if (!socket_.recv(message, zmq::recv_flags::dontwait)) return {};
    last_heard_ = std::chrono::steady_clock::now();
    wire::Reply reply;
    if (Status s = DecodeReply(message.to_string_view(), &reply); !s.ok()) {
      return Status::Error("a malformed message from the head: " + s.message());
    }
    if (reply.has_error()) {  // the head took this node for lost: join again
      JOBD_LOG(kWarn) << "the head at " << cluster_.endpoint << " says: "
                      << reply.error().message() << "; joining it again";
      wire::Request request;
      *request.mutable_node_hello() = hello_;
      SendRequest(request);
      continue;
    }
    if (!reply.has_node_tasks()) continue;
    for (uint64_t job : reply.node_tasks().cancelled_jobs()) cancelled->push_back(job);
    for (wire::Task& task : *reply.mutable_node_tasks()->mutable_tasks()) {
      tasks->push_back(std::make_unique<wire::Task>(std::move(task)));
    }
  }
}

void HeadLink::Greet(const std::map<std::string, uint32_t>& pool_workers) {
  hello_.mutable_pool_workers()->clear();
  for (const auto& [pool, workers] : pool_workers) (*hello_.mutable_pool_workers())[pool] = workers;
  wire::Request request;
  *request.mutable_node_hello() = hello_;
  SendRequest(request);
}

void HeadLink::Send(wire::NodeReport& report) {
  wire::Request request;
  request.mutable_node_report()->Swap(&report);
  SendRequest(request);
  report.Clear();
}

void HeadLink::SendRequest(wire::Request& request) {
  request.set_version(wire::VERSION_CURRENT);
  socket_.send(Encode(request), zmq::send_flags::dontwait);
  last_sent_ = std::chrono::steady_clock::now();
}

bool HeadLink::Quiet(std::chrono::steady_clock::time_point now) const {
  return now - last_sent_ >= kNodeHeartbeat;
}

bool HeadLink::Lost(std::chrono::steady_clock::time_point now) const {
  return now - last_heard_ >= kNodeTimeout;
}

}  // namespace jobd
