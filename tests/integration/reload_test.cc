// SIGHUP reloads the configuration without losing a task; the drain deadline.
#include <signal.h>

#include <algorithm>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

class ReloadTest : public DaemonTest {
 protected:
  // Rewrites the config file and sends SIGHUP; waits for the reload's log line.
  std::string Reload(const std::string& yaml) {
    WriteFile(dir_ + "/jobd.yaml", yaml);
    const size_t before = Count(Log(), "SIGHUP: ");
    EXPECT_EQ(kill(daemon_pid_, SIGHUP), 0);
    EXPECT_TRUE(Eventually([&] { return Count(Log(), "SIGHUP: ") > before; })) << Log();
    const std::string log = Log();
    const size_t line = log.rfind("SIGHUP: ");
    return log.substr(line, log.find('\n', line) - line);
  }

  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }

  // Pool name -> number of workers, as `jobctl status` reports them.
  std::map<std::string, size_t> PoolSizes() {
    std::map<std::string, size_t> sizes;
    Result<wire::StatusReport> report = Connect().Status();
    EXPECT_TRUE(report.ok()) << report.message();
    for (const auto& pool : report->pools()) sizes[pool.name()] = pool.workers_size();
    return sizes;
  }

  // Starts `jobctl map --chunksize 1 sleep` over `count` items of `ms` each;
  // returns its pid (its output goes to `out`).
  pid_t StartSleeps(const std::string& pool, int count, int ms, const std::string& out) {
    std::string items;
    for (int i = 0; i < count; ++i) items += std::to_string(ms + i % 3) + "\n";
    WriteFile(out + ".in", items);
    expected_[out] = items;
    const pid_t pid = Spawn({Bin("jobctl"), "map", "--pool", pool, "--chunksize", "1", "sleep"},
                            out + ".in", out, Env());
    pids_.insert(pid);
    return pid;
  }

  // Waits for the job started by StartSleeps and checks every result came back.
  void ExpectAllResults(pid_t job, const std::string& out) {
    int status = 0;
    waitpid(job, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(out + ".err");
    EXPECT_EQ(ReadFile(out), expected_[out]);
  }

  std::map<std::string, std::string> expected_;
};

TEST_F(ReloadTest, PoolsGrowShrinkAppearAndGoWithoutLosingATask) {
  const std::string cpu_out = dir_ + "/cpu.out", four_out = dir_ + "/four.out";
  const pid_t cpu_job = StartSleeps("cpu", 60, 30, cpu_out);
  const pid_t four_job = StartSleeps("four", 40, 50, four_out);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 2; }));

  const std::string line = Reload(
      "default_pool: cpu\n"
      "pools:\n"
      "  cpu: {workers: 3}\n"
      "  io: {workers: 1}\n");
  EXPECT_NE(line.find("pool 'cpu': 2 -> 3 workers"), std::string::npos) << line;
  EXPECT_NE(line.find("pool 'io' added with 1 workers"), std::string::npos) << line;
  EXPECT_NE(line.find("pool 'four' removed (its workers go once its jobs end)"), std::string::npos)
      << line;
  Command status = Jobctl({"status"});
  EXPECT_NE(status.out.find("reload: removed by a reload: it goes once its 1 jobs end"),
            std::string::npos) << status.out;
  // A removed pool takes no new job, and finishes those it has.
  Command refused = Jobctl({"map", "--pool", "four", "len", "x"});
  EXPECT_EQ(refused.status, 4);
  EXPECT_NE(refused.err.find("unknown pool 'four'; this jobd has: cpu, io"), std::string::npos)
      << refused.err;
  EXPECT_EQ(Jobctl({"map", "--pool", "io", "len", "abc"}).out, "3\n");
  ExpectAllResults(cpu_job, cpu_out);
  ExpectAllResults(four_job, four_out);
  EXPECT_TRUE(Eventually([&] {
    return PoolSizes() == std::map<std::string, size_t>{{"cpu", 3}, {"io", 1}};
  })) << ::testing::PrintToString(PoolSizes());

  // Shrinking while a job runs: the leaving workers finish what they hold.
  const pid_t shrink_job = StartSleeps("cpu", 9, 400, cpu_out);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 1; }));
  ASSERT_TRUE(Eventually([&] {
    Result<wire::StatusReport> report = Report();
    return report.ok() && std::all_of(report->pools(0).workers().begin(),
                                      report->pools(0).workers().end(),
                                      [](const auto& w) { return w.state() == "busy"; });
  })) << "every worker holds a 400 ms item";
  EXPECT_NE(Reload("pools:\n  cpu: {workers: 1}\n").find("pool 'cpu': 3 -> 1 workers"),
            std::string::npos);
  Command shrinking = Jobctl({"status"});
  EXPECT_NE(shrinking.out.find("reload: 2 workers leaving (the pool shrank), each once its tasks end"),
            std::string::npos) << shrinking.out;
  ExpectAllResults(shrink_job, cpu_out);
  EXPECT_TRUE(Eventually([&] {
    return PoolSizes() == std::map<std::string, size_t>{{"cpu", 1}};
  })) << ::testing::PrintToString(PoolSizes());
  EXPECT_EQ(Jobctl({"map", "len", "abcd"}).out, "4\n");
}

TEST_F(ReloadTest, AFileWithAnErrorChangesNothingAndTheLogSaysWhere) {
  const std::string line = Reload("pools:\n  cpu:\n    workers: many\n");
  EXPECT_NE(line.find("SIGHUP: not reloading, the current configuration stays: " + dir_ +
                      "/jobd.yaml:3: 'pools.cpu.workers' must be a whole number"),
            std::string::npos)
      << line;
  EXPECT_EQ(PoolSizes(), (std::map<std::string, size_t>{{"cpu", 2}, {"four", 4}}));
  EXPECT_EQ(Jobctl({"map", "--pool", "four", "len", "ab"}).out, "2\n");
}

TEST_F(ReloadTest, NewPluginsReplaceTheWorkersAndTheirFunctionsAppear) {
  EXPECT_EQ(Jobctl({"map", "upper", "x"}).status, 4) << "not loaded yet";
  const std::string line = Reload("pools:\n  cpu:\n    workers: 2\n    plugins: [" +
                                  std::string(JOBD_LIB_DIR) + "/libjobd_text.so]\n");
  EXPECT_NE(line.find("pool 'cpu': workers replaced as they finish"), std::string::npos) << line;
  EXPECT_NE(line.find("pool 'four' removed"), std::string::npos) << line;
  EXPECT_TRUE(Eventually([&] { return Jobctl({"map", "upper", "abc"}).out == "ABC\n"; }))
      << Jobctl({"map", "upper", "abc"}).err;
}

TEST_F(ReloadTest, ALowerMaxTasksPerWorkerReplacesWorkersThatAlreadyRanMore) {
  std::string items;
  for (int i = 0; i < 40; ++i) items += "x\n";
  ASSERT_EQ(Jobctl({"map", "--chunksize", "1", "len"}, items).status, 0);
  Reload("pools:\n  cpu: {workers: 2, max_tasks_per_worker: 5}\n");
  // Both workers ran about 20 tasks: they are replaced, not left without credit.
  Command run = RunCommand({"/usr/bin/timeout", "20", Bin("jobctl"), "map", "--chunksize", "1", "len"},
                           items, Env());
  EXPECT_EQ(run.status, 0) << run.err << Log();
  std::string ones;
  for (int i = 0; i < 40; ++i) ones += "1\n";
  EXPECT_EQ(run.out, ones);
}

TEST_F(ReloadTest, WorkersThatCannotStartWithTheNewSettingsBringTheOldOnesBack) {
  const std::string out = dir_ + "/out";
  const pid_t job = StartSleeps("cpu", 20, 50, out);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 1; }));
  Reload("pools:\n  cpu:\n    workers: 2\n    plugins: [" + std::string(JOBD_LIB_DIR) +
         "/libtest_failing_init.so]\n");
  EXPECT_TRUE(Eventually([&] {
    return Log().find("workers with the reloaded settings die as they start") != std::string::npos;
  })) << Log();
  ExpectAllResults(job, out);
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

TEST_F(ReloadTest, ShutdownEndsJobsThatOutlastTheDrainTimeout) {
  ASSERT_EQ(StopDaemon(), 0);
  ASSERT_EQ(StartDaemon("drain_timeout: 0.5\npools:\n  cpu: {workers: 1}\n").status, 0);
  const std::string out = dir_ + "/out";
  const pid_t job = StartSleeps("cpu", 5, 2000, out);
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 1; }));
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(Jobctl({"shutdown"}).status, 0);
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 4);
  EXPECT_NE(ReadFile(out + ".err").find("jobd stopped before the job finished (its shutdown "
                                        "deadline, drain_timeout: 0.5 s, passed)"),
            std::string::npos)
      << ReadFile(out + ".err");
  waitpid(daemon_pid_, &status, 0);
  daemon_pid_ = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(8))
      << "the worker running a 2 s item is stopped, not waited for the whole job";
}

}  // namespace
}  // namespace jobd::testing
