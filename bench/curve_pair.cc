// The baseline of the cross-node payload benchmark (bench/cluster_bench.py):
// raw ZeroMQ over TCP with CurveZMQ, one DEALER sending ITEMS messages of
// BYTES each to a ROUTER that sends each back, in two contexts (as two hosts
// would have) on loopback. Prints the best round trip of ROUNDS in seconds.
//
//   curve_pair [ITEMS [BYTES [ROUNDS]]]      (default 64 4194304 3)
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace {

struct KeyPair {
  char public_key[41];
  char secret_key[41];
  KeyPair() {
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
      std::fprintf(stderr, "curve_pair: libzmq has no CurveZMQ\n");
      std::exit(1);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int items = argc > 1 ? std::atoi(argv[1]) : 64;
  const size_t bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4 << 20;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  const KeyPair server_keys, client_keys;

  zmq::context_t server_context(1), client_context(1);
  zmq::socket_t server(server_context, zmq::socket_type::router);
  server.set(zmq::sockopt::curve_server, 1);
  server.set(zmq::sockopt::curve_secretkey, std::string(server_keys.secret_key));
  server.set(zmq::sockopt::maxmsgsize, int64_t{-1});
  server.bind("tcp://127.0.0.1:*");
  const std::string endpoint = server.get(zmq::sockopt::last_endpoint);

  std::thread echo([&] {
    for (int i = 0; i < items * rounds; ++i) {
      zmq::message_t id, body;
      if (!server.recv(id) || !server.recv(body)) return;
      server.send(id, zmq::send_flags::sndmore);
      server.send(body, zmq::send_flags::none);
    }
  });

  zmq::socket_t client(client_context, zmq::socket_type::dealer);
  client.set(zmq::sockopt::curve_serverkey, std::string(server_keys.public_key));
  client.set(zmq::sockopt::curve_publickey, std::string(client_keys.public_key));
  client.set(zmq::sockopt::curve_secretkey, std::string(client_keys.secret_key));
  client.connect(endpoint);
  const std::string payload(bytes, 'x');
  double best = 1e9;
  for (int round = 0; round < rounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < items; ++i) client.send(zmq::buffer(payload), zmq::send_flags::none);
    for (int i = 0; i < items; ++i) {
      zmq::message_t back;
      if (!client.recv(back) || back.size() != bytes) {
        std::fprintf(stderr, "curve_pair: a message came back wrong\n");
        return 1;
      }
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  echo.join();
  std::printf("%.6f\n", best);
  return 0;
}
