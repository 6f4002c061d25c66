// Plugins through a real jobd: per job (--plugin) and per pool (YAML).
#include "daemon_fixture.h"

namespace jobd::testing {
namespace {

std::string Lib(const std::string& name) { return std::string(JOBD_LIB_DIR) + "/lib" + name + ".so"; }

using PluginTest = DaemonTest;

TEST_F(PluginTest, AJobLoadsItsPluginInEveryWorker) {
  Command upper = Jobctl({"map", "--plugin", Lib("jobd_text"), "upper", "hello", "big world"});
  ASSERT_EQ(upper.status, 0) << upper.err;
  EXPECT_EQ(upper.out, "HELLO\nBIG WORLD\n");
  Command words = Jobctl({"map", "--plugin", Lib("jobd_text"), "words"}, "a b  c\n\none\n");
  ASSERT_EQ(words.status, 0) << words.err;
  EXPECT_EQ(words.out, "3\n0\n1\n");
}

TEST_F(PluginTest, StateFromInitLivesAsLongAsTheWorker) {
  const std::vector<std::string> args{"map", "--plugin", Lib("jobd_text"), "--pool", "four",
                                      "--workers", "1", "--chunksize", "1", "seen"};
  Command first = Jobctl(args, "a\nb\nc\n");
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out, "1\n2\n3\n");
  Command second = Jobctl(args, "d\n");
  EXPECT_EQ(second.out, "4\n") << "a later job finds the plugin loaded, its state kept";
}

TEST_F(PluginTest, LargeResultsAreWrittenInPlaceIntoSharedMemory) {
  Command run = Jobctl({"map", "--plugin", Lib("jobd_text"), "repeat", "3:ab", "1000000:xyz"});
  ASSERT_EQ(run.status, 0) << run.err;
  std::string expected = "ababab\n";
  for (int i = 0; i < 1000000; ++i) expected += "xyz";
  EXPECT_TRUE(run.out == expected + "\n") << "size " << run.out.size();
  Command refused = Jobctl({"map", "--plugin", Lib("jobd_text"), "repeat", "no colon"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("item 1 failed: repeat: expected N:TEXT"), std::string::npos);
}

TEST_F(PluginTest, ASegfaultingPluginCostsARetryNotTheJob) {
  Command run = Jobctl({"map", "--plugin", Lib("jobd_text"), "--chunksize", "3", "segfault", "ok1",
                        "boom", "ok2"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "ok1\nok2\n");
  EXPECT_NE(run.err.find("item 2 failed: the worker was killed by SIGSEGV (signal 11) while "
                         "running this item, 3 times"),
            std::string::npos) << run.err;
}

TEST_F(PluginTest, BrokenPluginsAreNamedWithTheReason) {
  const struct {
    std::string plugin, error;
  } cases[] = {
      {Lib("test_no_entry"), "not a jobd plugin: it exports no jobd_plugin_v1"},
      {Lib("test_old_abi"), "built for plugin ABI version 2, but this jobd speaks 1; rebuild it"},
      {Lib("test_failing_init"), "init failed: the model file is missing"},
      {Lib("jobd_text"), "plugin " + Lib("jobd_text") + " has no function 'nope'"},
  };
  for (const auto& c : cases) {
    Command run = Jobctl({"map", "--plugin", c.plugin, "nope", "x"});
    EXPECT_EQ(run.status, 1) << c.plugin;
    EXPECT_NE(run.err.find("item 1 failed: "), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(c.error), std::string::npos) << run.err;
  }
  Command missing = Jobctl({"map", "--plugin", "/no/such/plugin.so", "f", "x"});
  EXPECT_EQ(missing.status, 4);
  EXPECT_NE(missing.err.find("plugin /no/such/plugin.so: No such file or directory"),
            std::string::npos) << missing.err;
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n") << "the workers still serve";
}

TEST_F(PluginTest, APoolWhosePluginCannotLoadStopsJobdWithTheReason) {
  const std::string config = dir_ + "/broken.yaml";
  WriteFile(config, "listen: ipc://" + dir_ + "/other/jobd.sock\npools:\n  cpu:\n    workers: 1\n"
                    "    plugins: [" + Lib("test_no_entry") + "]\n");
  Command run = RunCommand({Bin("jobd"), "--config", config}, "", Env());
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("not a jobd plugin: it exports no jobd_plugin_v1"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("workers of pool 'cpu' die as they start"), std::string::npos) << run.err;
}

class PoolPluginTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "pools:\n"
           "  cpu:\n"
           "    workers: 2\n"
           "    plugins: [" + Lib("jobd_text") + "]\n";
  }
};

TEST_F(PoolPluginTest, APoolsPluginsAreItsFunctions) {
  Command functions = Jobctl({"functions"});
  EXPECT_NE(functions.out.find("  upper      the item in capital letters"), std::string::npos)
      << functions.out;
  EXPECT_NE(functions.out.find("  sha256 "), std::string::npos) << "builtins stay";
  Command run = Jobctl({"map", "upper", "abc"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "ABC\n");
}

}  // namespace
}  // namespace jobd::testing
