// A real jobd for integration tests: started from the built binaries in a
// private runtime directory, driven with the real jobctl and client library.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <optional>
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

// A user account that tests run jobd, jobctl or an attack as: the security
// tests' accounts are made by tests/security_users.sh.
struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};
std::optional<Account> FindAccount(const std::string& name);
// `argv` run as `account` (real and effective ids, no supplementary groups).
std::vector<std::string> AsAccount(const Account& account, const std::vector<std::string>& argv);
// Copies of jobd, jobd-worker and jobctl that every user may run (the build
// folder may be private), made once per test process.
std::string SharedBin(const std::string& program);
// Shared-memory segments of `uid` that exist now.
std::vector<std::string> SegmentsOf(uid_t uid);
// The resident memory of process `pid`, in bytes; 0 if it is gone.
size_t ResidentBytes(pid_t pid);
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
  // Arguments jobd gets besides --config.
  virtual std::vector<std::string> DaemonArgs() const { return {}; }
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
  // `program` as this daemon's account runs it.
  std::string Program(const std::string& program) const;
  // `argv` as this daemon's account.
  std::vector<std::string> AsUs(const std::vector<std::string>& argv) const;
  // The environment that points jobd and jobctl at the private directory.
  std::vector<std::string> Env() const;
  Client Connect();
  // Segments of processes this test started (including itself) that exist now.
  std::vector<std::string> OurSegments() const;
  std::string Log() const { return ReadFile(dir_ + "/jobd.log"); }
  // What `jobctl status` reports.
  Result<wire::StatusReport> Report();
  // Worker pids of `pool`, with their task counts.
  std::vector<std::pair<pid_t, uint64_t>> Workers(const std::string& pool);
  int RunningJobs();

  std::string dir_;       // private XDG_RUNTIME_DIR
  std::string endpoint_;  // ipc://dir_/jobd/jobd.sock
  pid_t daemon_pid_ = 0;
  std::set<pid_t> pids_;  // processes whose segments we check
  // The account jobd and jobctl run as (a derived fixture sets it before
  // DaemonTest::SetUp); none: the test's own. dir_ is then that account's,
  // and the programs run from SharedBin().
  std::optional<Account> account_;
};

}  // namespace jobd::testing
