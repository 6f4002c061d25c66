// jobctl map --python: Python functions on warm interpreters.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include "daemon_fixture.h"

namespace jobd::testing {
namespace {

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class PythonTest : public DaemonTest {
 protected:
  // jobctl ARGS with the test's modules (in dir_/modules) on PYTHONPATH.
  Command Python(const std::vector<std::string>& args, const std::string& input = "",
                 const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv{Bin("jobctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> environment = Env();
    environment.push_back("PYTHONPATH=" + dir_ + "/modules");
    environment.insert(environment.end(), env.begin(), env.end());
    Command run = RunCommand(argv, input, environment);
    pids_.insert(run.pid);
    return run;
  }
  // Writes a module, with a modification time unlike any before it (so
  // that an edit within the same second is seen).
  void WriteModule(const std::string& name, const std::string& text) {
    std::filesystem::create_directories(dir_ + "/modules");
    const std::string path = dir_ + "/modules/" + name + ".py";
    WriteFile(path, text);
    static auto stamp = std::filesystem::file_time_type::clock::now();
    stamp += std::chrono::seconds(2);
    std::filesystem::last_write_time(path, stamp);
  }
  static std::set<std::string> Lines(const std::string& text) {
    std::set<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.insert(line);
    return lines;
  }
};

TEST_F(PythonTest, MapsAPythonFunctionAndFailsOnlyTheItemsThatRaise) {
  WriteModule("work", "def square(x):\n    return int(x) ** 2\n");
  Command run = Python({"map", "--python", "work:square"}, "1\n2\nthree\n4\n");
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "1\n4\n16\n");
  EXPECT_TRUE(Has(run.err, "item 3 failed: ValueError: invalid literal for int() with base 10: "
                           "'three' (at " + dir_ + "/modules/work.py:2 in square)"))
      << run.err;
  // Arguments given on the command line are items too.
  EXPECT_EQ(Python({"map", "--python", "work:square", "5", "6"}).out, "25\n36\n");
}

TEST_F(PythonTest, StarmapPassesEveryArgument) {
  WriteModule("work", "def join(a, b):\n    return a + '-' + b\n");
  Command run = Python({"starmap", "--python", "work:join"}, "a\tb\nc\td\n");
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "a-b\nc-d\n");
}

TEST_F(PythonTest, InterpretersStayWarmAcrossProgramsUntilAModuleChanges) {
  WriteModule("where", "import os\ndef pid(_):\n    return os.getpid()\n");
  const std::string items = "1\n2\n3\n4\n5\n6\n";
  Command first = Python({"map", "--chunksize", "1", "--python", "where:pid"}, items);
  Command second = Python({"map", "--chunksize", "1", "--python", "where:pid"}, items);
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_EQ(second.status, 0) << second.err;
  // The second program is served by interpreters the first one started.
  for (const std::string& pid : Lines(second.out)) {
    EXPECT_TRUE(Lines(first.out).count(pid)) << pid << " is a new interpreter:\n" << first.out;
  }
  WriteModule("where", "import os\ndef pid(_):\n    return -os.getpid()\n");
  // A fresh interpreter for an edited module is no crash: nothing is charged.
  Command edited = Python({"map", "--chunksize", "1", "--retries", "0", "--python", "where:pid"}, items);
  ASSERT_EQ(edited.status, 0) << edited.err << Log();
  for (const std::string& pid : Lines(edited.out)) {
    ASSERT_EQ(pid[0], '-') << "stale code served:\n" << edited.out;
    EXPECT_FALSE(Lines(first.out).count(pid.substr(1))) << "the stale interpreter was kept";
  }
}

TEST_F(PythonTest, EveryJobGetsItsCallersDirectoryAndEnvironment) {
  WriteModule("context", "import os\n"
                         "def get(name):\n"
                         "    if name == 'wander':\n"
                         "        os.chdir('/')\n"
                         "    return os.getcwd() if name in ('cwd', 'wander') else os.environ.get(name, '-')\n"
                         "def set(name):\n    os.environ[name] = 'set by a job'\n    return name\n"
                         "def pid(_):\n    return os.getpid()\n");
  const std::string here = std::filesystem::current_path().string();
  const std::vector<std::string> one = {"map", "--workers", "1"};
  auto run = [&](std::vector<std::string> args, const std::vector<std::string>& env) {
    args.insert(args.begin(), one.begin(), one.end());
    Command command = Python(args, "", env);
    EXPECT_EQ(command.status, 0) << command.err;
    return command.out;
  };
  const std::string pid = run({"--python", "context:pid", "x"}, {});
  EXPECT_EQ(run({"--python", "context:get", "cwd", "JOBD_TEST_VALUE", "wander"},
                {"JOBD_TEST_VALUE=from the caller"}),
            here + "\nfrom the caller\n/\n");
  // The next program's, in the same warm interpreter: its directory again,
  // its variables and none of the last program's.
  EXPECT_EQ(run({"--python", "context:get", "cwd", "JOBD_TEST_VALUE", "JOBD_OTHER"},
                {"JOBD_OTHER=other"}),
            here + "\n-\nother\n");
  // A job that changed os.environ leaves nothing to the next one, even with
  // the same caller's environment.
  const std::vector<std::string> caller = {"JOBD_TEST_VALUE=from the caller"};
  EXPECT_EQ(run({"--python", "context:set", "JOBD_TEST_VALUE"}, caller), "JOBD_TEST_VALUE\n");
  EXPECT_EQ(run({"--python", "context:get", "JOBD_TEST_VALUE"}, caller), "from the caller\n");
  EXPECT_EQ(run({"--python", "context:pid", "x"}, {}), pid) << "the interpreter was not kept";
  // A variable read only as an interpreter starts needs another one.
  EXPECT_NE(run({"--python", "context:pid", "x"}, {"PYTHONHASHSEED=7"}), pid);
}

TEST_F(PythonTest, FunctionsCannotDisturbTheProtocol) {
  // Reading stdin, printing, exiting, odd bytes: each stays the item's own
  // business.
  WriteModule("rude", "import os, sys, subprocess\n"
                      "def f(x):\n"
                      "    print('noise'); os.write(1, b'more noise\\n')\n"
                      "    if x == 'exit':\n        sys.exit(75)\n"
                      "    if x == 'odd':\n        raise ValueError('\\ud800')\n"
                      "    return sys.stdin.read() + subprocess.run(['cat'], capture_output=True).stdout.decode() + x\n");
  Command run = Python({"map", "--python", "rude:f", "a", "exit", "odd", "b\nc"});
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "a\nb\nc\n");
  EXPECT_TRUE(Has(run.err, "item 2 failed: SystemExit: 75")) << run.err;
  EXPECT_TRUE(Has(run.err, "item 3 failed: ValueError: \\ud800")) << run.err;
  // Starmap items of zero arguments (from the client library) keep the count.
  WriteModule("count", "def n(*args):\n    return len(args)\n");
  Result<Client> client = Client::Connect(endpoint_);
  ASSERT_TRUE(client.ok()) << client.message();
  struct Tuples : ItemSource {
    int next = 0;
    Result<bool> Read(ItemSink& sink, size_t) override {
      for (; next < 3; ++next) {
        std::vector<std::string_view> args(static_cast<size_t>(next), "x");
        if (Status s = sink.AddArgs(args); !s.ok()) return s;
      }
      return false;
    }
  } tuples;
  MapOptions options;
  options.starmap = true;
  std::vector<std::string> counts;
  setenv("PYTHONPATH", (dir_ + "/modules").c_str(), 1);
  PythonFunction count;
  count.function = "count:n";
  Result<JobSummary> summary = client->MapPython(count, tuples, options,
                                                 [&](const ItemResult& result) {
                                                   counts.emplace_back(result.value);
                                                   return Status();
                                                 });
  unsetenv("PYTHONPATH");
  ASSERT_TRUE(summary.ok()) << summary.message();
  EXPECT_EQ(counts, (std::vector<std::string>{"0", "1", "2"}));
}

TEST_F(PythonTest, AnItemPastItsTimeoutIsStopped) {
  WriteModule("slow", "import time\ndef f(x):\n    time.sleep(60) if x == 'slow' else None\n    return x\n");
  const auto start = std::chrono::steady_clock::now();
  Command run = Python({"map", "--timeout", "1", "--retries", "0", "--python", "slow:f", "a", "slow", "b"});
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "a\nb\n");
  EXPECT_TRUE(Has(run.err, "item 2 failed: timed out after 1 s")) << run.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  // The same with the three in one task: the interpreter answers 'a' while
  // 'slow' runs, so that the timeout is the slow item's, not the task's first.
  Command one_task = Python({"map", "--timeout", "1", "--retries", "0", "--chunksize", "3",
                             "--python", "slow:f", "a", "slow", "b"});
  EXPECT_EQ(one_task.status, 1) << one_task.err;
  EXPECT_EQ(one_task.out, "a\nb\n");
  EXPECT_TRUE(Has(one_task.err, "item 2 failed: timed out after 1 s")) << one_task.err;
}

TEST_F(PythonTest, AnItemThatKillsItsInterpreterIsRetriedThenFailsAlone) {
  WriteModule("fatal", "import os, signal\ndef f(x):\n    if x == 'die':\n"
                       "        os.kill(os.getpid(), signal.SIGKILL)\n    return x.upper()\n");
  Command run = Python({"map", "--python", "fatal:f"}, "a\ndie\nb\n");
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "A\nB\n");
  EXPECT_TRUE(Has(run.err, "item 2 failed: the Python interpreter")) << run.err;
  EXPECT_TRUE(Has(run.err, "3 times; giving up (retries: 2)")) << run.err;
}

TEST_F(PythonTest, ModulesThatCannotLoadAndBadNamesGetClearErrors) {
  Command missing = Python({"map", "--python", "nowhere:f", "x", "y"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(Has(missing.err, "item 1 failed: cannot load nowhere:f: ModuleNotFoundError: No "
                               "module named 'nowhere'"))
      << missing.err;
  WriteModule("work", "value = 3\n");
  Command value = Python({"map", "--python", "work:value", "x"});
  EXPECT_EQ(value.status, 1);
  EXPECT_TRUE(Has(value.err, "cannot load work:value: TypeError: work:value is not callable"))
      << value.err;
  Command unnamed = Python({"map", "--python", "work", "x"});
  EXPECT_EQ(unnamed.status, 4);
  EXPECT_TRUE(Has(unnamed.err, "a Python function is named MODULE:FUNCTION")) << unnamed.err;
  Command both = Python({"map", "--python", "work:f", "--exec", "echo", "x"});
  EXPECT_EQ(both.status, 2);
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

}  // namespace
}  // namespace jobd::testing
