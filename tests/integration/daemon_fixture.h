// A real jobd for integration tests: started from the built binaries in a
// private runtime directory, driven with the real jobctl and client library.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "jobd/client.h"

namespace jobd::testing {

struct Command {
  int status = -1;  // exit status, or 128 + signal
  pid_t pid = 0;
  std::string out;
  std::string err;
};

// Runs `argv` with `input` on stdin and `env` added to the environment; waits.
Command RunCommand(const std::vector<std::string>& argv, const std::string& input = "",
            const std::vector<std::string>& env = {});
// Starts `argv` in the background with stdin and stdout from/to files; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& stdin_path,
            const std::string& stdout_path, const std::vector<std::string>& env = {});
std::string Bin(const std::string& program);
// Polls `condition` every 20 ms until it holds (true) or `timeout_ms` passes (false).
bool Eventually(const std::function<bool()>& condition, int timeout_ms = 10'000);
std::string ReadFile(const std::string& path);
// A connected Unix stream socket (no ZeroMQ), or -1.
int ConnectUnix(const std::string& path);
// Whether the peer closes `fd` within `timeout_ms`, reading and dropping
// what it sends (a ZMTP greeting) meanwhile.
bool ClosedByPeer(int fd, int timeout_ms);
void WriteFile(const std::string& path, const std::string& text);

// A running jobd. Tests derive from DaemonTest, which starts one per test with
// Config() and, after the test, stops it and checks that no shared-memory
// segment of the daemon, the test or its jobctl runs is left behind.
class DaemonTest : public ::testing::Test {
 protected:
  // Two pools: "cpu" (2 workers, default) and "four" (4 workers).
  virtual std::string Config() const;
  void SetUp() override;
  void TearDown() override;

  // Starts jobd with `yaml` (waits until it serves); returns jobd's exit status
  // and output if it failed to start.
  Command StartDaemon(const std::string& yaml);
  // Asks jobd to stop and waits for it; returns its exit status.
  int StopDaemon();
  // SIGKILLs jobd and reaps it; returns its pid.
  pid_t KillDaemon();
  // jobctl ARGS against this daemon.
  Command Jobctl(const std::vector<std::string>& args, const std::string& input = "");
  // The environment that points jobd and jobctl at the private directory.
  std::vector<std::string> Env() const;
  Client Connect();
  // Segments of processes this test started (including itself) that exist now.
  std::vector<std::string> OurSegments() const;
  std::string Log() const { return ReadFile(dir_ + "/jobd.log"); }
  // Worker pids of `pool` from `jobctl status --json`, with their task counts.
  std::vector<std::pair<pid_t, uint64_t>> Workers(const std::string& pool);
  int RunningJobs();

  std::string dir_;       // private XDG_RUNTIME_DIR
  std::string endpoint_;  // ipc://dir_/jobd/jobd.sock
  pid_t daemon_pid_ = 0;
  std::set<pid_t> pids_;  // processes whose segments we check
};

}  // namespace jobd::testing
