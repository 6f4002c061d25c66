// Starting, detaching and stopping jobd.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <filesystem>

#include "common/payload.h"
#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

using LifecycleTest = DaemonTest;

TEST_F(LifecycleTest, ShutdownLetsRunningJobsFinishAndRefusesNewOnes) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, "400\n400\n400\n");
  const pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  ASSERT_EQ(RunningJobs(), 1);

  Command shutdown = Jobctl({"shutdown"});
  EXPECT_EQ(shutdown.status, 0) << shutdown.err;
  EXPECT_NE(shutdown.out.find("stopping after 1 running jobs finish"), std::string::npos)
      << shutdown.out;
  Command refused = Jobctl({"map", "len", "x"});
  EXPECT_EQ(refused.status, 4);
  EXPECT_NE(refused.err.find("jobd is shutting down and accepts no new jobs"), std::string::npos)
      << refused.err;
  Command draining = Jobctl({"status"});
  EXPECT_NE(draining.out.find("shutting down: draining: 1 jobs still running ("), std::string::npos)
      << draining.out;
  EXPECT_NE(draining.out.find("s (drain_timeout)"), std::string::npos) << draining.out;

  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ReadFile(out), "400\n400\n400\n");
  waitpid(daemon_pid_, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  daemon_pid_ = 0;
  EXPECT_NE(Log().find("stopped"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/jobd/jobd.sock"));
}

TEST_F(LifecycleTest, JobctlCancelAndCtrlCStopAJob) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, Lines(std::vector<std::string>(50, "200")));
  pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  ASSERT_EQ(RunningJobs(), 1);
  Command cancel = Jobctl({"cancel", "1"});
  EXPECT_EQ(cancel.status, 0) << cancel.err;
  EXPECT_NE(cancel.out.find("job 1 cancelled after "), std::string::npos) << cancel.out;
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 4);
  EXPECT_NE(ReadFile(out + ".err").find("job 1 was cancelled by `jobctl cancel` (pid "),
            std::string::npos) << ReadFile(out + ".err");
  EXPECT_EQ(RunningJobs(), 0);
  EXPECT_EQ(Jobctl({"cancel", "1"}).status, 4) << "it is gone";

  job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  kill(job, SIGINT);  // Ctrl-C
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  for (int i = 0; i < 100 && RunningJobs() != 0; ++i) usleep(20000);
  EXPECT_EQ(RunningJobs(), 0);
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

// `jobctl jobs --json`, parsed.
wire::JobList JobsOf(const Command& jobs) {
  wire::JobList list;
  EXPECT_EQ(jobs.status, 0) << jobs.err;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(jobs.out, &list).ok()) << jobs.out;
  return list;
}

TEST_F(LifecycleTest, JobsListsRunningAndFinishedJobsAndJobShowsOneWithItsErrors) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, Lines(std::vector<std::string>(30, "200")));
  const pid_t running = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(running);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  Command failing = Jobctl({"map", "--shell", "--exec", "test {} != 3 && echo {}", "1", "2", "3",
                            "4", "5"});
  EXPECT_EQ(failing.status, 1) << failing.err;

  wire::JobList list = JobsOf(Jobctl({"jobs", "--json"}));
  ASSERT_EQ(list.jobs_size(), 2) << list.DebugString();
  const wire::JobRecord& first = list.jobs(0);  // running ones first
  EXPECT_EQ(first.id(), 1u);
  EXPECT_EQ(first.state(), "running");
  EXPECT_EQ(first.function(), "sleep");
  EXPECT_EQ(first.pid(), static_cast<uint32_t>(running));
  EXPECT_NE(first.command().find("jobctl map --chunksize 1 sleep"), std::string::npos)
      << first.command();
  EXPECT_EQ(first.uid(), getuid());
  const wire::JobRecord& second = list.jobs(1);
  EXPECT_EQ(second.state(), "done");
  EXPECT_EQ(second.function(), "exec test {} != 3 && echo {}");
  EXPECT_EQ(second.received(), 5u);
  EXPECT_EQ(second.succeeded(), 4u);
  EXPECT_EQ(second.failed(), 1u);
  EXPECT_EQ(second.errors_size(), 0) << "only `jobctl job ID` lists errors";
  EXPECT_GT(second.started(), 1.7e9);

  Command one = Jobctl({"job", "2"});
  EXPECT_EQ(one.status, 0) << one.err;
  EXPECT_NE(one.out.find("4 succeeded, 1 failed, 0 retried"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("item 3: command"), std::string::npos) << one.out;
  wire::JobList json = JobsOf(Jobctl({"job", "2", "--json"}));
  ASSERT_EQ(json.jobs_size(), 1);
  ASSERT_EQ(json.jobs(0).errors_size(), 1);
  EXPECT_EQ(json.jobs(0).errors(0).index(), 2u) << "0-based, as --json";

  EXPECT_EQ(Jobctl({"cancel", "1"}).status, 0);
  waitpid(running, nullptr, 0);
  list = JobsOf(Jobctl({"jobs", "--json"}));
  ASSERT_EQ(list.jobs_size(), 2);
  EXPECT_EQ(list.jobs(0).id(), 1u) << "newest finished first";
  EXPECT_EQ(list.jobs(0).state(), "cancelled");
  EXPECT_NE(list.jobs(0).error().find("cancelled by `jobctl cancel`"), std::string::npos);
  Command text = Jobctl({"jobs"});
  EXPECT_NE(text.out.find("cancelled"), std::string::npos) << text.out;

  // A restarted jobd lists them still, and numbers its jobs after them.
  ASSERT_EQ(StopDaemon(), 0);
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
  list = JobsOf(Jobctl({"jobs", "--json"}));
  ASSERT_EQ(list.jobs_size(), 3) << list.DebugString();
  EXPECT_EQ(list.jobs(0).id(), 3u) << "numbered after the recorded ones";
  EXPECT_EQ(list.jobs(1).id(), 1u);
  EXPECT_EQ(list.jobs(1).state(), "cancelled");
  EXPECT_EQ(list.jobs(2).id(), 2u);
  EXPECT_NE(Jobctl({"job", "2"}).out.find("item 3: command"), std::string::npos)
      << "with its errors";

  Command unknown = Jobctl({"job", "99"});
  EXPECT_EQ(unknown.status, 4);
  EXPECT_NE(unknown.err.find("jobd knows no job 99"), std::string::npos) << unknown.err;
  EXPECT_EQ(Jobctl({"job"}).status, 2);
}

// A segment whose creator died while jobd runs (a client killed between
// creating it and naming it to jobd) goes at the next sweep, every
// reap_interval.
TEST_F(LifecycleTest, SegmentsOfDeadCreatorsAreReapedEveryReapInterval) {
  ASSERT_EQ(StopDaemon(), 0);
  ASSERT_EQ(StartDaemon(Config() + "reap_interval: 0.3\nstop_deadline: 1\n").status, 0) << Log();
  const pid_t gone = Spawn({"/bin/true"}, "/dev/null", dir_ + "/true.out");
  waitpid(gone, nullptr, 0);
  const std::string live = NewSegmentName();  // this test's own: kept
  ASSERT_TRUE(Segment::Create(live, 4096).ok());
  // Any jobd of this user that starts meanwhile (tests run in parallel)
  // removes orphans too: until this one's sweep is seen, a new orphan. (Not
  // its sweep at start: only what it logs from here on counts.)
  const size_t started = Log().size();
  auto swept = [&] {
    return Log().find(" shared-memory segments left by dead processes", started) !=
           std::string::npos;
  };
  for (int attempt = 0; attempt < 10 && !swept(); ++attempt) {
    const std::string orphan = NewSegmentName(gone);
    ASSERT_TRUE(Segment::Create(orphan, 4096).ok());
    EXPECT_TRUE(Eventually([&] {
      const std::vector<std::string> now = ListSegments();
      return std::find(now.begin(), now.end(), orphan) == now.end();
    }, 3000)) << Log();
    Eventually(swept, 500);
  }
  EXPECT_TRUE(swept()) << Log();
  const std::vector<std::string> now = ListSegments();
  EXPECT_NE(std::find(now.begin(), now.end(), live), now.end()) << "its creator lives";
  RemoveSegment(live);
}

TEST_F(LifecycleTest, SigtermStopsCleanlyAndNoWorkerOutlivesTheDaemon) {
  std::vector<pid_t> workers;
  for (auto [pid, done] : Workers("cpu")) workers.push_back(pid);
  for (auto [pid, done] : Workers("four")) workers.push_back(pid);
  ASSERT_EQ(workers.size(), 6u);
  ASSERT_EQ(kill(daemon_pid_, SIGTERM), 0);
  int status = 0;
  waitpid(daemon_pid_, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  daemon_pid_ = 0;
  for (pid_t pid : workers) {
    for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(10000);
    EXPECT_NE(kill(pid, 0), 0) << "worker " << pid << " outlived jobd";
  }
}

TEST_F(LifecycleTest, DetachReturnsOnceServingAndWritesThePidFile) {
  ASSERT_EQ(StopDaemon(), 0);
  const std::string pid_file = dir_ + "/jobd.pid";
  Command detached = RunCommand({Bin("jobd"), "--config", dir_ + "/jobd.yaml", "--detach", "--pid-file",
                          pid_file, "--log-file", dir_ + "/detached.log"},
                         "", Env());
  ASSERT_EQ(detached.status, 0) << detached.err;
  EXPECT_NE(detached.out.find("jobd started (pid "), std::string::npos) << detached.out;
  const pid_t pid = std::atoi(ReadFile(pid_file).c_str());
  ASSERT_GT(pid, 0);
  pids_.insert(pid);
  EXPECT_EQ(Jobctl({"ping"}).status, 0) << "serving as soon as --detach returned";
  EXPECT_EQ(Jobctl({"map", "len", "abcd"}).out, "4\n");
  EXPECT_EQ(Jobctl({"shutdown"}).status, 0);
  for (int i = 0; i < 200 && std::filesystem::exists(pid_file); ++i) usleep(25000);
  EXPECT_FALSE(std::filesystem::exists(pid_file)) << "jobd removes its pid file when it stops";
  EXPECT_NE(ReadFile(dir_ + "/detached.log").find("serving ipc://"), std::string::npos);
}

// logrotate moves the log file away, then sends SIGHUP: jobd logs on in a
// new file at the same path. --log-level holds across the reload.
TEST_F(LifecycleTest, SighupReopensTheLogFileThatLogrotateMoved) {
  ASSERT_EQ(StopDaemon(), 0);
  const std::string pid_file = dir_ + "/jobd.pid", log = dir_ + "/detached.log";
  Command detached = RunCommand({Bin("jobd"), "--config", dir_ + "/jobd.yaml", "--detach",
                                 "--pid-file", pid_file, "--log-file", log, "--log-level", "debug"},
                                "", Env());
  ASSERT_EQ(detached.status, 0) << detached.err;
  const pid_t pid = std::atoi(ReadFile(pid_file).c_str());
  ASSERT_GT(pid, 0);
  pids_.insert(pid);
  ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  EXPECT_TRUE(Eventually([&] { return ReadFile(log).find("SIGHUP: ") != std::string::npos; }))
      << "old file:\n" << ReadFile(log + ".1");
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
  EXPECT_NE(ReadFile(log + ".1").find("debug: "), std::string::npos) << ReadFile(log + ".1");
  // A replaced worker's "ready" is a debug line: --log-level holds after the reload.
  kill(Workers("cpu").at(0).first, SIGKILL);
  EXPECT_TRUE(Eventually([&] { return ReadFile(log).find("debug: ") != std::string::npos; }))
      << ReadFile(log);
  EXPECT_EQ(ReadFile(log + ".1").find("SIGHUP"), std::string::npos);
  EXPECT_EQ(Jobctl({"shutdown"}).status, 0);
  for (int i = 0; i < 200 && std::filesystem::exists(pid_file); ++i) usleep(25000);
}

}  // namespace
}  // namespace jobd::testing
