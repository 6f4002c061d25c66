// Faults injected for real while jobs run (ctest label: fault).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <zmq.hpp>

#include "common/wire.h"
#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

class FaultTest : public DaemonTest {
 protected:
  std::string Config() const override {
    // Retries to spare: with a kill every 50 ms an item may be hit twice.
    return "pools:\n  cpu: {workers: 2, retries: 10, max_restarts: 1000}\n";
  }
};

TEST_F(FaultTest, KillingABusyWorkerEvery50MsLosesAndDuplicatesNothing) {
  const int count = 100000;
  std::string input, expected;
  for (int i = 0; i < count; ++i) {
    const int n = 20000 + i % 1000;  // ~0.05 ms of work each
    input += std::to_string(n) + "\n";
  }
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, input);
  // The same job without faults gives the expected output.
  Command clean = Jobctl({"map", "primes"}, input);
  ASSERT_EQ(clean.status, 0) << clean.err;
  expected = clean.out;

  const pid_t job = Spawn({Bin("jobctl"), "map", "primes"}, in, out, Env());
  pids_.insert(job);
  Client client = Connect();
  std::mt19937 random(42);
  int kills = 0;
  int status = 0;
  while (waitpid(job, &status, WNOHANG) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Result<wire::StatusReport> report = client.Status();
    if (!report.ok()) continue;
    std::vector<pid_t> busy;
    for (const auto& worker : report->pools(0).workers()) {
      if (worker.state() == "busy") busy.push_back(static_cast<pid_t>(worker.pid()));
    }
    if (busy.empty()) continue;
    if (kill(busy[random() % busy.size()], SIGKILL) == 0) ++kills;
  }
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(out + ".err");
  EXPECT_GE(kills, 5) << "the job ended before the faults could bite";
  const std::string got = ReadFile(out);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), count) << "every result exactly once";
  EXPECT_TRUE(got == expected) << "results differ from the clean run";
  std::cerr << "[ info     ] " << kills << " workers killed during " << count << " items\n";
}

TEST_F(FaultTest, ThousandsOfBadMessagesDuringAJobLeaveItCorrectAndTheDaemonSmall) {
  auto rss_kib = [&] {
    const std::string status = ReadFile("/proc/" + std::to_string(daemon_pid_) + "/status");
    return std::atol(status.c_str() + status.find("VmRSS:") + 6);
  };
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string input;
  for (int i = 0; i < 3000; ++i) input += std::to_string(i % 5) + "\n";
  WriteFile(in, input);
  // Warm up the allocator and the sockets before measuring.
  ASSERT_EQ(Jobctl({"map", "len"}, input).status, 0);
  const long before = rss_kib();
  const pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);

  zmq::context_t context(1);
  std::mt19937 random(7);
  wire::Request valid;
  valid.set_version(wire::VERSION_CURRENT);
  valid.mutable_submit()->set_function("sha256");
  const std::string valid_bytes = valid.SerializeAsString();
  for (int round = 0; round < 100; ++round) {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint_);
    for (int i = 0; i < 100; ++i) {  // 10,000 in all
      std::string bytes;
      switch (i % 4) {
        case 0:  // random bytes
          bytes.resize(random() % 512);
          for (char& c : bytes) c = static_cast<char>(random());
          break;
        case 1:  // a valid request cut short
          bytes = valid_bytes.substr(0, random() % valid_bytes.size());
          break;
        case 2:  // a valid request with a byte flipped
          bytes = valid_bytes;
          bytes[random() % bytes.size()] ^= static_cast<char>(1 + random() % 255);
          break;
        case 3:  // oversized
          if (round % 25 == 0) bytes.assign(static_cast<size_t>(kMaxMessageBytes) + 1, 'x');
          break;
      }
      socket.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
    }
  }
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(out + ".err");
  EXPECT_EQ(ReadFile(out), input);
  EXPECT_EQ(Jobctl({"ping"}).status, 0) << "the daemon is up";
  const long after = rss_kib();
  EXPECT_LT(after - before, 5 * 1024) << "RSS grew from " << before << " to " << after << " KiB";
  std::cerr << "[ info     ] daemon RSS " << before << " -> " << after << " KiB\n";
}

TEST_F(FaultTest, ADaemonKilledMidJobLeavesNothingAfterItsRestart) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, "2000\n" + std::string(64 * 1024, 'x') + "\n2000\n");  // one item in a segment
  const pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  const pid_t old_daemon = KillDaemon();
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(ReadFile(out + ".err").find("died while running job"), std::string::npos)
      << ReadFile(out + ".err");
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  for (const std::string& name : OurSegments()) {
    EXPECT_EQ(name.find("-" + std::to_string(old_daemon) + "-"), std::string::npos)
        << "left by the killed daemon: " << name;
    EXPECT_EQ(name.find("-" + std::to_string(job) + "-"), std::string::npos)
        << "left by its client: " << name;
  }
}

TEST_F(FaultTest, ResubmitDeliversEveryResultOnceInOrderAcrossADaemonRestart) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string input;
  for (int i = 1; i <= 150; ++i) {
    input += (i == 40 ? std::string(64 * 1024, 'x') : std::to_string(i)) + "\n";  // one in a segment
  }
  WriteFile(in, input);
  const pid_t job = Spawn({Bin("jobctl"), "map", "--resubmit-wait", "30", "--shell", "--exec",
                           "sleep 0.02; echo {}"},
                          in, out, Env());
  pids_.insert(job);
  ASSERT_TRUE(Eventually([&] { return ReadFile(out).size() > 100; })) << ReadFile(out + ".err");
  const pid_t old_daemon = KillDaemon();
  usleep(500'000);
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();

  int status = 0;
  waitpid(job, &status, 0);
  const std::string err = ReadFile(out + ".err");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_TRUE(ReadFile(out) == input) << "results missing, repeated or out of order:\n"
                                      << ReadFile(out).substr(0, 2000);
  EXPECT_NE(err.find("jobd (pid " + std::to_string(old_daemon) + ") died while running job 1; "),
            std::string::npos) << err;
  EXPECT_NE(err.find("waiting up to 30 s for jobd to serve"), std::string::npos) << err;
  EXPECT_NE(err.find("items without a result as job 1 to jobd (pid " + std::to_string(daemon_pid_)),
            std::string::npos) << err;
}

// The items a dead jobd held ran again: the summary counts them as retried,
// as it does those of a dead worker.
TEST_F(FaultTest, ResubmittedItemsCountAsRetried) {
  Client client = Connect();
  std::vector<std::string> items(40, "100");  // sleep 100 ms each
  VectorSource source(items);
  MapOptions options;
  options.chunksize = 1;
  options.resubmit_wait_seconds = 30;
  std::atomic<int> results{0};
  Result<JobSummary> summary = Status::Error("not run");
  std::thread map([&] {
    summary = client.Map("sleep", source, options, [&](const ItemResult&) {
      ++results;
      return Status();
    });
  });
  ASSERT_TRUE(Eventually([&] { return results.load() >= 4; }));
  KillDaemon();
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  map.join();
  ASSERT_TRUE(summary.ok()) << summary.message();
  EXPECT_EQ(summary->succeeded, 40u);
  EXPECT_EQ(summary->resubmits, 1u);
  EXPECT_GE(summary->retried, 1u) << "the items without a result ran again";
  EXPECT_LE(summary->retried, 36u);
  EXPECT_EQ(results.load(), 40);
}

TEST_F(FaultTest, ResubmitKeepsResultsThatWaitedTheirTurn) {
  // Item 1 is a file that cannot be read: its error is made by jobctl at once
  // and waits for item 0, which is running when jobd dies.
  WriteFile(dir_ + "/f0", "1500");
  WriteFile(dir_ + "/f2", "10");
  const std::string out = dir_ + "/out";
  const pid_t job = Spawn({Bin("jobctl"), "map", "--files", "--chunksize", "1", "--resubmit-wait",
                           "30", "sleep", dir_ + "/f0", dir_ + "/missing", dir_ + "/f2"},
                          "/dev/null", out, Env());
  pids_.insert(job);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 1; }));
  usleep(300'000);
  KillDaemon();
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  int status = 0;
  waitpid(job, &status, 0);
  const std::string err = ReadFile(out + ".err");
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_EQ(ReadFile(out), "1500\n10\n") << err;
  EXPECT_NE(err.find("item 2 failed: cannot read " + dir_ + "/missing"), std::string::npos) << err;
}

TEST_F(FaultTest, ResubmitGivesUpWhenNoDaemonComesBack) {
  WriteFile(dir_ + "/in", "3000\n3000\n");
  const pid_t waiting = Spawn({Bin("jobctl"), "map", "--resubmit-wait", "1", "--chunksize", "1",
                               "sleep"}, dir_ + "/in", dir_ + "/out2", Env());
  pids_.insert(waiting);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() >= 1; }));
  KillDaemon();
  int status = 0;
  waitpid(waiting, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 4);
  const std::string err = ReadFile(dir_ + "/out2.err");
  EXPECT_NE(err.find("no jobd came back within 1 s (no jobd answers at"), std::string::npos)
      << err;
  // The next jobd reaps what the killed one left.
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
}

}  // namespace
}  // namespace jobd::testing
