// The nodes that lend their workers to this jobd, the head (jobd join, jobd
// --slurm): each a connection on the cluster endpoint that said NodeHello.
// The scheduler sees a node as one large worker per pool, with credit for its
// workers there plus a small prefetch, so that it is never sent more than it
// can start and a faster node gets more. Its tasks travel with their items
// inline and come back with inline results. A node silent for kNodeTimeout is
// lost: its tasks go back to the queue without charging their items, and what
// it sends later is dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "jobd.pb.h"

namespace jobd {

inline constexpr auto kNodeHeartbeat = std::chrono::seconds(1);
inline constexpr auto kNodeTimeout = std::chrono::seconds(5);
// Tasks a node may hold beyond one per worker, so that none waits for the next.
inline constexpr uint32_t kNodePrefetch = 2;

struct Node {
  std::string client;  // its connection (the Supervisor's client key)
  std::string name;
  std::string host;
  uint32_t pid = 0;
  uint64_t key = 0;  // as a worker's, for the scheduler
  std::map<std::string, uint32_t, std::less<>> workers;  // pool -> its workers there
  std::map<uint64_t, std::string> tasks;                 // in flight: task id -> pool
  uint64_t tasks_done = 0;
  std::chrono::steady_clock::time_point joined, last_heard, last_sent;
  bool stopping = false;    // it said it takes no more tasks
  uint32_t times_lost = 0;  // under its name, since the head started
  uint32_t rejoined = 0;    // times it joined again under its name
  std::string gone;         // once gone: "left" (it stopped) or "lost"

  // serving, stopping, silent (no heartbeat for a while), or how it went.
  std::string State(std::chrono::steady_clock::time_point now) const;

  // Whether it may take another task of `pool`.
  bool HasCredit(const std::string& pool) const;
};

// Sets JOBD_NODE=`name` among a job's variables (the caller's, which its
// commands and Python functions run with): which jobd runs them.
void SetNodeVariable(google::protobuf::RepeatedPtrField<std::string>* environment,
                     const std::string& name);

}  // namespace jobd
