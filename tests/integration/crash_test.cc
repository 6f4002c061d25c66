// Workers that die cost a retry, not the job.
#include <signal.h>

#include <chrono>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

using CrashTest = DaemonTest;

uint32_t Restarts(DaemonTest& test, Client& client) {
  Result<wire::StatusReport> report = client.Status();
  uint32_t restarts = 0;
  for (const auto& pool : report->pools()) {
    for (const auto& worker : pool.workers()) restarts += worker.restarts();
  }
  return restarts;
}

TEST_F(CrashTest, AnItemThatKillsWorkersFailsAloneNamingTheSignal) {
  for (const char* chunksize : {"1", "4"}) {
    Command run = Jobctl({"map", "--chunksize", chunksize, "crash", "ok1", "boom", "ok2", "ok3"});
    EXPECT_EQ(run.status, 1) << run.err;
    EXPECT_EQ(run.out, "ok1\nok2\nok3\n") << "chunksize " << chunksize;
    EXPECT_NE(run.err.find("item 2 failed: the worker was killed by SIGABRT (signal 6) while "
                           "running this item, 3 times; giving up (retries: 2)"),
              std::string::npos)
        << run.err;
  }
  // Every death was replaced, and the pool still works.
  Client client = Connect();
  EXPECT_EQ(Restarts(*this, client), 6u);
  Result<std::vector<std::string>> after = client.Map("len", {"abc"});
  ASSERT_TRUE(after.ok()) << after.message();
  EXPECT_EQ((*after)[0], "3");
}

TEST_F(CrashTest, KillingABusyWorkerCostsNothing) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string items;
  for (int i = 0; i < 30; ++i) items += std::to_string(40 + i) + "\n";
  WriteFile(in, items);
  const pid_t jobctl = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(jobctl);

  // Find a busy worker and kill it mid-task.
  Client client = Connect();
  pid_t victim = 0;
  for (int i = 0; i < 200 && victim == 0; ++i) {
    Result<wire::StatusReport> report = client.Status();
    for (const auto& worker : report->pools(0).workers()) {
      if (worker.state() == "busy") victim = static_cast<pid_t>(worker.pid());
    }
    if (victim == 0) usleep(10000);
  }
  ASSERT_NE(victim, 0) << "no worker became busy";
  usleep(20000);
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  int status = 0;
  waitpid(jobctl, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(out + ".err");
  EXPECT_EQ(ReadFile(out), items);
  EXPECT_EQ(Restarts(*this, client), 1u);
  EXPECT_NE(Log().find("killed by SIGKILL (signal 9); re-queueing its tasks"), std::string::npos);
  EXPECT_NE(Log().find("re-queued after a worker or node was lost"), std::string::npos);
}

TEST_F(CrashTest, AJobsTimeoutStopsItsSlowItemAlone) {
  Command run = Jobctl({"map", "--chunksize", "1", "--timeout", "0.3", "--retries", "0", "sleep",
                        "10", "5000", "20"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "10\n20\n");
  EXPECT_NE(run.err.find("item 2 failed: timed out after 0.3 s while running this item, 1 time; "
                         "giving up (retries: 0)"),
            std::string::npos) << run.err;
}

class TimeoutTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "pools:\n  cpu: {workers: 2, retries: 1, task_timeout: 0.4}\n";
  }
};

TEST_F(TimeoutTest, ThePoolsTimeoutIsRetriedThenFailsAndJobsCannotRaiseIt) {
  const auto start = std::chrono::steady_clock::now();
  Command run = Jobctl({"map", "--chunksize", "1", "--timeout", "60", "--retries", "5", "sleep",
                        "10", "5000", "20"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "10\n20\n");
  EXPECT_NE(run.err.find("item 2 failed: timed out after 0.4 s while running this item, 2 times; "
                         "giving up (retries: 1)"),
            std::string::npos) << run.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

class DegradedTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "pools:\n  cpu: {workers: 2, retries: 2, max_restarts: 3, restart_window: 2}\n";
  }
};

TEST_F(DegradedTest, AFunctionThatKillsEveryWorkerDegradesThePoolInsteadOfSpinning) {
  Command run = Jobctl({"map", "--chunksize", "1", "crash", "a", "b", "c", "d"});
  EXPECT_EQ(run.status, 4);
  EXPECT_NE(run.err.find("pool 'cpu' is degraded: its workers died 4 times within 2 s (the last "
                         "killed by SIGABRT (signal 6)); it rests for 2 s"),
            std::string::npos) << run.err;
  EXPECT_NE(Jobctl({"status"}).out.find("is degraded"), std::string::npos);
  Command refused = Jobctl({"map", "len", "x"});
  EXPECT_EQ(refused.status, 4);
  EXPECT_NE(refused.err.find("is degraded"), std::string::npos) << refused.err;
  // After its rest it serves again.
  Command later;
  for (int i = 0; i < 40; ++i) {
    later = Jobctl({"map", "len", "abc"});
    if (later.status == 0) break;
    usleep(200000);
  }
  EXPECT_EQ(later.status, 0) << later.err;
  EXPECT_EQ(later.out, "3\n");
}

class MemoryLimitTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "pools:\n  cpu: {workers: 1, memory_limit: 256M}\n";
  }
};

TEST_F(MemoryLimitTest, AnItemOverTheLimitFailsAloneWithOutOfMemory) {
  // identity of 120 MB: the mapped item and its copy exceed 256M with the worker's own.
  WriteFile(dir_ + "/big", std::string(120 << 20, 'x'));
  WriteFile(dir_ + "/small", "small");
  Command run = Jobctl({"map", "identity", "--files", dir_ + "/big", dir_ + "/small"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "small\n");
  EXPECT_NE(run.err.find("item 1 failed: out of memory"), std::string::npos) << run.err;
  // Commands inherit the limit.
  Command command = Jobctl({"map", "--exec", "python3 -c 'bytearray(400 * 2**20)'", "x"});
  EXPECT_EQ(command.status, 1);
  EXPECT_NE(command.err.find("MemoryError"), std::string::npos) << command.err;
  Client client = Connect();
  EXPECT_EQ(Restarts(*this, client), 0u) << "no worker died for it";
}

class RecycleTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "default_pool: recycled\n"
           "pools:\n"
           "  recycled: {workers: 1, max_tasks_per_worker: 2}\n";
  }
};

TEST_F(RecycleTest, WorkersAreReplacedAfterMaxTasksWithoutCountingARestart) {
  // Each command prints its parent: the worker that ran the item.
  Command run = Jobctl({"map", "--chunksize", "1", "--exec", "sh -c 'echo $PPID'"},
                       "a\nb\nc\nd\ne\nf\n");
  ASSERT_EQ(run.status, 0) << run.err;
  std::vector<std::string> pids;
  for (size_t start = 0, end; (end = run.out.find('\n', start)) != std::string::npos; start = end + 1) {
    pids.push_back(run.out.substr(start, end - start));
  }
  ASSERT_EQ(pids.size(), 6u) << run.out;
  for (size_t i = 0; i < 6; i += 2) {
    EXPECT_EQ(pids[i], pids[i + 1]) << "two tasks per worker: " << run.out;
    if (i > 0) {
      EXPECT_NE(pids[i], pids[i - 1]) << "then a fresh worker: " << run.out;
    }
  }
  Client client = Connect();
  EXPECT_EQ(Restarts(*this, client), 0u) << "recycling is not a crash";
}

}  // namespace
}  // namespace jobd::testing
