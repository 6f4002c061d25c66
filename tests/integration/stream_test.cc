// jobctl map --stream: one coprocess per worker and job, fed item after item.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

class StreamTest : public DaemonTest {
 protected:
  // A Python stream function: `body` is the function's expression of `item`.
  std::string Script(const std::string& name, const std::string& body, bool binary = false) {
    const std::string path = dir_ + "/" + name + ".py";
    WriteFile(path, "import os, sys\n"
                    "sys.path.insert(0, '" + std::string(JOBD_SOURCE_DIR) + "/worker/stream')\n"
                    "import jobd_stream\n"
                    "def function(item):\n"
                    "    return " + body + "\n"
                    "jobd_stream.serve(function" + (binary ? ", binary=True" : "") + ")\n");
    return "python3 " + path;
  }
};

TEST_F(StreamTest, LinesGoThroughAWarmCoprocessInOrder) {
  std::string input, expected;
  for (int i = 0; i < 5000; ++i) {
    input += "item" + std::to_string(i) + "\n";
    expected += "ITEM" + std::to_string(i) + "\n";
  }
  Command run = Jobctl({"map", "--stream", Script("upper", "item.upper()")}, input);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, expected);
}

TEST_F(StreamTest, OneCoprocessPerWorkerForTheJob) {
  const std::string pid = Script("pid", "str(os.getpid())");
  const std::vector<std::string> args{"map", "--pool", "four", "--workers", "1", "--stream", pid};
  Command first = Jobctl(args, "a\nb\nc\nd\n");
  ASSERT_EQ(first.status, 0) << first.err;
  const std::string one = first.out.substr(0, first.out.find('\n'));
  EXPECT_EQ(first.out, one + "\n" + one + "\n" + one + "\n" + one + "\n") << "one warm process";
  Command second = Jobctl(args, "e\n");
  EXPECT_NE(second.out, one + "\n") << "a new job gets a fresh coprocess";
}

TEST_F(StreamTest, FramesCarryBinaryItemsAndPerItemErrors) {
  const std::string input = std::string("a\nb\0", 4) + std::string("\x01\x02\xff", 3) + '\0' +
                            std::string("boom\0", 5);
  Command run = Jobctl({"map", "-0", "--json", "--framed", "--stream",
                        Script("framed", "item[::-1] if item != b'boom' else 1 / 0", true)},
                       input);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.out.find("{\"index\":0,\"ok\":true,\"result\":\"b\\na\"}"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("{\"index\":1,\"ok\":true,\"result\":\"\xff\\u0002\\u0001\"}"),
            std::string::npos) << run.out;
  EXPECT_NE(run.out.find("{\"index\":2,\"ok\":false,\"error\":\"Traceback"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("ZeroDivisionError"), std::string::npos) << run.out;
}

TEST_F(StreamTest, ACoprocessThatDiesIsRestartedAndItsItemRetriedThenFailed) {
  const std::string script = Script("dies", "sys.exit(3) if item == 'die' else item");
  Command run = Jobctl({"map", "--chunksize", "5", "--stream", script}, "a\nb\ndie\nc\nd\n");
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "a\nb\nc\nd\n");
  EXPECT_NE(run.err.find("item 3 failed: the stream coprocess exited with status 3 while on this "
                         "item, 3 times; giving up (retries: 2)"),
            std::string::npos) << run.err;
}

TEST_F(StreamTest, OnlyTheItemThatKillsThePipelinedCoprocessFails) {
  // Killed by a signal mid-chunk, with earlier items in flight and unanswered.
  const std::string script =
      Script("segv", "os.kill(os.getpid(), 11) if item == 'boom' else item");
  Command run = Jobctl({"map", "--chunksize", "7", "--workers", "1", "--stream", script},
                       "a\nb\nc\nd\nboom\ne\nf\n");
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "a\nb\nc\nd\ne\nf\n");
  EXPECT_NE(run.err.find("item 5 failed: the stream coprocess was killed by SIGSEGV"),
            std::string::npos) << run.err;
  EXPECT_NE(run.err.find("1 of 7 items failed"), std::string::npos) << run.err;
}

TEST_F(StreamTest, PrintingInTheFunctionDoesNotShiftResults) {
  Command run = Jobctl({"map", "--stream", Script("noisy", "print('debug') or item.upper()")},
                       "a\nb\nc\n");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "A\nB\nC\n");
}

TEST_F(StreamTest, CancellingAStreamJobFreesItsWorker) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, "a\nb\n");
  const pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "2", "--workers", "1", "--stream",
                           "sleep 1000"}, in, out, Env());
  pids_.insert(job);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  usleep(300000);
  kill(job, SIGINT);
  waitpid(job, nullptr, 0);
  for (int i = 0; i < 100 && RunningJobs() != 0; ++i) usleep(20000);
  Command after = Jobctl({"map", "--chunksize", "1", "len"}, "a\nbb\nccc\ndddd\n");
  EXPECT_EQ(after.out, "1\n2\n3\n4\n");
  bool all_idle = false;
  for (int i = 0; i < 100 && !all_idle; ++i) {
    Client client = Connect();
    Result<wire::StatusReport> report = client.Status();
    all_idle = true;
    for (const auto& worker : report->pools(0).workers()) {
      all_idle = all_idle && worker.state() == "idle";
    }
    if (!all_idle) usleep(20000);
  }
  EXPECT_TRUE(all_idle) << "a worker stayed busy with a cancelled job";
}

TEST_F(StreamTest, LinesCannotCarryNewlines) {
  Command run = Jobctl({"map", "-0", "--stream", Script("same", "item")},
                       std::string("ok\0two\nlines\0", 13));
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "ok\n");
  EXPECT_NE(run.err.find("item 2 failed: the item contains a newline, which the line protocol "
                         "cannot carry; use --framed"),
            std::string::npos) << run.err;
}

// An exception is the item's error, once: not a crash that restarts the
// coprocess and runs the item again.
TEST_F(StreamTest, AnExceptionInLinesModeFailsItsItemOnce) {
  const std::string calls = dir_ + "/calls";
  const std::string script =
      Script("count", "open('" + calls + "', 'a').write(str(os.getpid()) + '\\n') and int(item)");
  Command run = Jobctl({"map", "--workers", "1", "--stream", script}, "1\nx\n3\n");
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "1\n3\n");
  EXPECT_NE(run.err.find("item 2 failed: ValueError: invalid literal for int() with base 10: 'x'"),
            std::string::npos) << run.err;
  std::ifstream file(calls);
  std::vector<std::string> pids;
  for (std::string line; std::getline(file, line);) pids.push_back(line);
  ASSERT_EQ(pids.size(), 3u) << "each item ran once";
  EXPECT_TRUE(pids[0] == pids[1] && pids[1] == pids[2]) << "one coprocess throughout";
}

TEST_F(StreamTest, ACoprocessThatCannotStartFailsItsItems) {
  Command run = Jobctl({"map", "--stream", "no-such-program-for-jobd"}, "a\n");
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("cannot run 'no-such-program-for-jobd': no such command"),
            std::string::npos) << run.err;
}

}  // namespace
}  // namespace jobd::testing
