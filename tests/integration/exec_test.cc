// jobctl map --exec: a command per item, through the same pools and retries.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

using ExecTest = DaemonTest;

TEST_F(ExecTest, ItemsReachTheCommandAsExactSingleArguments) {
  // Spaces, quotes, $(), ; and newlines (in -0 mode): never parsed, never split.
  const std::vector<std::string> items{"two words", "it's \"quoted\"", "$(touch /tmp/pwned)",
                                       "a; rm -rf /", "line1\nline2", "*", ""};
  std::string input;
  for (const std::string& item : items) input += item + std::string(1, '\0');
  Command run = Jobctl({"map", "-0", "--json", "--exec", "printf [%s] {}"}, input);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "{\"index\":0,\"ok\":true,\"result\":\"[two words]\"}\n"
            "{\"index\":1,\"ok\":true,\"result\":\"[it's \\\"quoted\\\"]\"}\n"
            "{\"index\":2,\"ok\":true,\"result\":\"[$(touch /tmp/pwned)]\"}\n"
            "{\"index\":3,\"ok\":true,\"result\":\"[a; rm -rf /]\"}\n"
            "{\"index\":4,\"ok\":true,\"result\":\"[line1\\nline2]\"}\n"
            "{\"index\":5,\"ok\":true,\"result\":\"[*]\"}\n"
            "{\"index\":6,\"ok\":true,\"result\":\"[]\"}\n");
}

TEST_F(ExecTest, ShellModePassesItemsAsParametersNeverAsCode) {
  Command run = Jobctl({"map", "--shell", "--exec", "echo {} | tr a-z A-Z", "a;b $(id) 'q'"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "A;B $(ID) 'Q'\n");
  // Quotes written around {} do not open a way in either.
  const std::string marker = dir_ + "/pwned";
  Command quoted = Jobctl({"map", "--shell", "--exec", "echo \"{}\"", "$(touch " + marker + ")"});
  ASSERT_EQ(quoted.status, 0) << quoted.err;
  EXPECT_EQ(quoted.out, "$(touch " + marker + ")\n");
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "an item ran as shell code";
}

TEST_F(ExecTest, CancellingAJobStopsItsCommands) {
  // jobctl is killed while its commands sleep: they must not run on.
  const std::string in = dir_ + "/in", out = dir_ + "/out", marker = dir_ + "/finished";
  WriteFile(in, "a\nb\n");
  const pid_t jobctl = Spawn({Bin("jobctl"), "map", "--shell", "--exec",
                              "sleep 3; touch " + marker}, in, out, Env());
  pids_.insert(jobctl);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  usleep(200000);
  kill(jobctl, SIGKILL);
  waitpid(jobctl, nullptr, 0);
  for (int i = 0; i < 100 && RunningJobs() != 0; ++i) usleep(50000);
  EXPECT_EQ(RunningJobs(), 0);
  sleep(4);
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "a cancelled job's command ran to its end";
  Command after = Jobctl({"map", "len", "abc"});
  EXPECT_EQ(after.out, "3\n") << "the workers are free again";
}

TEST_F(ExecTest, ReplacementStringsAndStdin) {
  Command names = Jobctl({"map", "--exec", "echo {} {.} {/} {//} {/.} {#}", "/d/f.txt", "g"});
  ASSERT_EQ(names.status, 0) << names.err;
  EXPECT_EQ(names.out, "/d/f.txt /d/f f.txt /d f 1\ng g g . g 2\n");
  Command slots = Jobctl({"map", "--pool", "four", "--exec", "echo {%}"}, "a\nb\nc\n");
  ASSERT_EQ(slots.status, 0) << slots.err;
  for (char c : slots.out) EXPECT_TRUE(c == '\n' || (c >= '1' && c <= '4')) << slots.out;
  // No item replacement: the item is the command's stdin.
  Command counted = Jobctl({"map", "--exec", "wc -c"}, "ab\ncde\n");
  ASSERT_EQ(counted.status, 0) << counted.err;
  EXPECT_EQ(counted.out, "2\n3\n");
}

TEST_F(ExecTest, RunsInTheCallersDirectory) {
  char cwd[PATH_MAX];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  Command run = Jobctl({"map", "--exec", "pwd", "x"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, std::string(cwd) + "\n");
}

// As with xargs: the caller's variables and PATH, not jobd's; a stream gets
// JOBD_STREAM from jobd whatever the caller's says.
TEST_F(ExecTest, CommandsRunWithTheCallersEnvironment) {
  const std::string bin = dir_ + "/callers-bin";
  std::filesystem::create_directories(bin);
  WriteFile(bin + "/only-the-caller-has-this", "#!/bin/sh\necho \"found $1\"\n");
  chmod((bin + "/only-the-caller-has-this").c_str(), 0755);
  const std::vector<std::string> env{"XDG_RUNTIME_DIR=" + dir_, "JOBD_TEST_VARIABLE=from the caller",
                                     "PATH=" + bin + ":/usr/bin:/bin", "JOBD_STREAM=bogus"};
  Command exec = RunCommand({Bin("jobctl"), "map", "--shell", "--exec",
                             "echo \"$JOBD_TEST_VARIABLE\"; only-the-caller-has-this {}", "x"},
                            "", env);
  EXPECT_EQ(exec.status, 0) << exec.err;
  EXPECT_EQ(exec.out, "from the caller\nfound x\n");
  Command stream = RunCommand({Bin("jobctl"), "map", "--stream",
                               "sh -c 'while read l; do echo \"$JOBD_STREAM $JOBD_TEST_VARIABLE\"; done'",
                               "x"},
                              "", env);
  EXPECT_EQ(stream.status, 0) << stream.err;
  EXPECT_EQ(stream.out, "lines from the caller\n");
}

// Results go out as they arrive, also into a pipe (not when a buffer fills).
TEST_F(ExecTest, EachResultReachesAPipeAsItArrives) {
  const std::string command = "XDG_RUNTIME_DIR=" + dir_ + " " + Bin("jobctl") +
                              " map --unordered --shell --exec 'sleep {}; echo {}' 0.1 3";
  const auto start = std::chrono::steady_clock::now();
  FILE* out = popen(command.c_str(), "r");
  ASSERT_NE(out, nullptr);
  char line[64] = {};
  ASSERT_NE(fgets(line, sizeof line, out), nullptr);
  const double first = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(std::string(line), "0.1\n");
  // Well before the 3 s item ends (the pipe's buffer would have held it until then).
  EXPECT_LT(first, 2.0);
  ASSERT_NE(fgets(line, sizeof line, out), nullptr);
  EXPECT_EQ(std::string(line), "3\n");
  EXPECT_EQ(pclose(out), 0);
}

// Every replacement string as GNU parallel (apt-get install parallel) makes
// it, on items with odd paths: what users of {} {.} {/} {//} {/.} {#} expect.
TEST_F(ExecTest, ReplacementStringsAreGnuParallels) {
  const std::string items =
      "trailing/\na/b/\ndir//x.e\nplain\nx.tar.gz\n/abs/p.q\n/\n//\n.hidden\na/.b\ndir/\n"
      "./x.y\n../up/f\na.b/c\nsp ace/f.e\n..\n.\na..b\n/x/.\nd.d/e.e/\nno_ext.\n";
  const std::string corpus = dir_ + "/corpus";
  WriteFile(corpus, items);
  Command ours = Jobctl({"map", "--exec", "echo {}|{.}|{/}|{//}|{/.}|{#}"}, items);
  ASSERT_EQ(ours.status, 0) << ours.err;
  Command theirs = RunCommand({"/usr/bin/parallel", "-k", "--will-cite", "echo", "{}\\|{.}\\|{/}\\|{//}\\|{/.}\\|{#}",
                               "::::", corpus});
  ASSERT_EQ(theirs.status, 0) << "GNU parallel (apt-get install parallel): " << theirs.err;
  EXPECT_EQ(ours.out, theirs.out);
}

TEST_F(ExecTest, FailuresAreTheItemsErrorsWithStderr) {
  Command run = Jobctl({"map", "--shell", "--exec", "[ {} = bad ] && { echo no >&2; exit 3; }; echo ok",
                        "good", "bad", "good"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "ok\nok\n");
  EXPECT_NE(run.err.find("item 2 failed: command '[ \"$1\" = bad ] && { echo no >&2; exit 3; }; "
                         "echo ok' exited with status 3: no"),
            std::string::npos) << run.err;
  Command killed = Jobctl({"map", "--exec", "sh -c 'kill -9 $$'", "x"});
  EXPECT_EQ(killed.status, 1);
  EXPECT_NE(killed.err.find("was killed by SIGKILL (signal 9)"), std::string::npos) << killed.err;
  Command missing = Jobctl({"map", "--exec", "no-such-command-for-jobd {}", "x"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("cannot run 'no-such-command-for-jobd': no such command"),
            std::string::npos) << missing.err;
  // The workers survived all of it.
  Client client = Connect();
  Result<wire::StatusReport> report = client.Status();
  for (const auto& pool : report->pools()) {
    for (const auto& worker : pool.workers()) EXPECT_EQ(worker.restarts(), 0u);
  }
}

TEST_F(ExecTest, BadCommandsAreUsageErrors) {
  Command unclosed = Jobctl({"map", "--exec", "echo 'x", "a"});
  EXPECT_EQ(unclosed.status, 2);
  EXPECT_NE(unclosed.err.find("--exec: the command has an unclosed '"), std::string::npos)
      << unclosed.err;
  Command shell_alone = Jobctl({"map", "--shell", "len", "a"});
  EXPECT_EQ(shell_alone.status, 2);
  EXPECT_NE(shell_alone.err.find("--shell goes with --exec"), std::string::npos);
}

}  // namespace
}  // namespace jobd::testing
