#include "daemon/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace jobd {
namespace {

Config Parse(const std::string& yaml) {
  Result<Config> config = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.message();
  return config.ok() ? config.value() : Config{};
}

std::string ErrorOf(const std::string& yaml) {
  Result<Config> config = ParseConfig(yaml, "test.yaml");
  EXPECT_FALSE(config.ok()) << "accepted:\n" << yaml;
  return config.ok() ? "" : config.message();
}

TEST(ConfigTest, EmbeddedDefaultHasOneCpuWorkerPerCoreAndAnIoPool) {
  Config config = Parse(std::string(DefaultConfigText()));
  ASSERT_EQ(config.pools.size(), 2u);
  EXPECT_EQ(config.default_pool, "cpu");
  EXPECT_EQ(config.pools[0].name, "cpu");
  EXPECT_EQ(config.pools[0].workers, static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_EQ(config.pools[0].retries, 2u);
  EXPECT_EQ(config.pools[1].name, "io");
  EXPECT_EQ(config.pools[1].workers, 16u);
  EXPECT_EQ(config.listen.rfind("ipc://", 0), 0u);
  EXPECT_NE(config.listen.find("/jobd/jobd.sock"), std::string::npos);
  EXPECT_EQ(config.listen.find('$'), std::string::npos) << config.listen;
}

TEST(ConfigTest, EmptyFileMeansOneCpuPool) {
  Config config = Parse("");
  ASSERT_EQ(config.pools.size(), 1u);
  EXPECT_EQ(config.pools[0].name, "cpu");
}

TEST(ConfigTest, PoolsKeepFileOrderAndSettings) {
  Config config = Parse(
      "default_pool: b\n"
      "log_level: debug\n"
      "pools:\n"
      "  b: {workers: 3, retries: 0, max_tasks_per_worker: 100}\n"
      "  a:\n"
      "    workers: auto\n");
  ASSERT_EQ(config.pools.size(), 2u);
  EXPECT_EQ(config.pools[0].name, "b");
  EXPECT_EQ(config.pools[0].workers, 3u);
  EXPECT_EQ(config.pools[0].retries, 0u);
  EXPECT_EQ(config.pools[0].max_tasks_per_worker, 100u);
  EXPECT_EQ(config.pools[1].max_tasks_per_worker, 0u);
  EXPECT_EQ(config.pools[1].name, "a");
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
  EXPECT_NE(config.FindPool("a"), nullptr);
  EXPECT_EQ(config.FindPool("c"), nullptr);
}

TEST(ConfigTest, ListenExpandsEnvironment) {
  setenv("JOBD_TEST_DIR", "/tmp/xyz", 1);
  Config config = Parse("listen: ipc://${JOBD_TEST_DIR}/s.sock\n");
  EXPECT_EQ(config.listen, "ipc:///tmp/xyz/s.sock");
}

TEST(ConfigTest, TunableIntervalsHaveDefaultsAndBounds) {
  Result<Config> defaults = ParseConfig("pools:\n  cpu: {workers: 1}\n", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.message();
  EXPECT_EQ(defaults->stop_deadline_ms, 5000u);
  EXPECT_EQ(defaults->reap_interval_ms, 60000u);
  EXPECT_EQ(defaults->pools[0].credit_window_ms, 2u);
  Result<Config> set = ParseConfig(
      "stop_deadline: 1.5\nreap_interval: 0\npools:\n  cpu: {workers: 1, credit_window: 0}\n",
      "test.yaml");
  ASSERT_TRUE(set.ok()) << set.message();
  EXPECT_EQ(set->stop_deadline_ms, 1500u);
  EXPECT_EQ(set->reap_interval_ms, 0u);
  EXPECT_EQ(set->pools[0].credit_window_ms, 0u);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {credit_window: 11}\n")
                .find("'pools.cpu.credit_window' must be seconds from 0 (one task at a time) to 10"),
            std::string::npos);
  EXPECT_NE(ErrorOf("stop_deadline: -1\n").find("'stop_deadline' must be seconds"),
            std::string::npos);
}

TEST(ConfigTest, UnknownKeyNamesKeyAndLine) {
  const std::string error = ErrorOf("pools:\n  cpu:\n    workers: 2\n    wrokers: 3\n");
  EXPECT_NE(error.find("test.yaml:4"), std::string::npos) << error;
  EXPECT_NE(error.find("pools.cpu.wrokers"), std::string::npos) << error;
  EXPECT_NE(error.find("known keys here: credit_window, kinds, max_restarts, max_tasks_per_worker, "
                       "memory_limit, plugins, restart_window, retries, retry_backoff, task_timeout, "
                       "workers"),
            std::string::npos) << error;
}

TEST(ConfigTest, WrongTypeNamesKeyLineAndValue) {
  const std::string error = ErrorOf("log_level: info\npools:\n  cpu:\n    workers: many\n");
  EXPECT_NE(error.find("test.yaml:4"), std::string::npos) << error;
  EXPECT_NE(error.find("'pools.cpu.workers' must be a whole number"), std::string::npos) << error;
  EXPECT_NE(error.find("'many'"), std::string::npos) << error;

  EXPECT_NE(ErrorOf("pools:\n  cpu: {workers: 0}\n").find("from 1 to 1024"), std::string::npos);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {retries: -1}\n").find("pools.cpu.retries"), std::string::npos);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {workers: [1, 2]}\n").find("a list or mapping"),
            std::string::npos);
  EXPECT_NE(ErrorOf("log_level: loud\n").find("debug, info, warn or error"), std::string::npos);
  EXPECT_NE(ErrorOf("listen: tcp://1.2.3.4:5\n").find("ipc://"), std::string::npos);
  EXPECT_NE(ErrorOf("pools: 3\n").find("'pools' must map"), std::string::npos);
}

TEST(ConfigTest, DefaultPoolMustExist) {
  const std::string error = ErrorOf("default_pool: gpu\npools:\n  cpu: {}\n  io: {}\n");
  EXPECT_NE(error.find("test.yaml:1"), std::string::npos) << error;
  EXPECT_NE(error.find("default_pool 'gpu' is not one of the pools (cpu, io)"), std::string::npos)
      << error;
}

TEST(ConfigTest, BadPoolNamesAndDuplicatesAreRefused) {
  EXPECT_NE(ErrorOf("pools:\n  \"a b\": {}\n").find("pool name 'a b' is invalid"), std::string::npos);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {}\n  cpu: {}\n").find("defined twice"), std::string::npos);
}

TEST(ConfigTest, MalformedYamlNamesTheLine) {
  const std::string error = ErrorOf("pools:\n  cpu: {workers: 2\n");
  EXPECT_NE(error.find("not valid YAML"), std::string::npos) << error;
  EXPECT_NE(error.find("test.yaml:"), std::string::npos) << error;
}

TEST(ConfigTest, PluginPathsAreRelativeToTheFileAndMustExist) {
  const std::string dir = "/tmp/jobd-config-test-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/p.so") << "x";
  std::ofstream(dir + "/jobd.yaml") << "pools:\n  cpu:\n    plugins: [p.so, " << dir << "/p.so]\n";
  Result<Config> config = LoadConfigFile(dir + "/jobd.yaml");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->pools[0].plugins, (std::vector<std::string>{dir + "/p.so", dir + "/p.so"}));
  std::ofstream(dir + "/jobd.yaml") << "pools:\n  cpu:\n    plugins: [missing.so]\n";
  config = LoadConfigFile(dir + "/jobd.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.message().find(dir + "/jobd.yaml:3: plugin " + dir +
                                  "/missing.so of pool 'cpu': No such file or directory"),
            std::string::npos) << config.message();
  EXPECT_NE(ErrorOf("pools:\n  cpu: {plugins: x.so}\n").find("must be a list of .so files"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(ConfigTest, TaskTimeoutIsInSeconds) {
  EXPECT_EQ(Parse("pools:\n  cpu: {task_timeout: 0.5}\n").pools[0].task_timeout_ms, 500u);
  EXPECT_EQ(Parse("pools:\n  cpu: {}\n").pools[0].task_timeout_ms, 0u);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {task_timeout: soon}\n").find("must be seconds"),
            std::string::npos);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {task_timeout: -1}\n").find("pools.cpu.task_timeout"),
            std::string::npos);
}

TEST(ConfigTest, RetryBackoffAndDrainTimeoutAreInSeconds) {
  Config config = Parse("drain_timeout: 2.5\npools:\n  cpu: {retry_backoff: 0.25}\n");
  EXPECT_EQ(config.drain_timeout_ms, 2500u);
  EXPECT_EQ(config.pools[0].retry_backoff_ms, 250u);
  Config defaults = Parse("pools:\n  cpu: {}\n");
  EXPECT_EQ(defaults.drain_timeout_ms, 30'000u);
  EXPECT_EQ(defaults.pools[0].retry_backoff_ms, 100u);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {retry_backoff: 61}\n").find("'pools.cpu.retry_backoff' must be "
                                                                   "seconds from 0 (none) to 60"),
            std::string::npos);
  EXPECT_NE(ErrorOf("drain_timeout: later\n").find("test.yaml:1: 'drain_timeout' must be seconds"),
            std::string::npos);
}

TEST(ConfigTest, MemoryLimitTakesSizes) {
  EXPECT_EQ(Parse("pools:\n  cpu: {memory_limit: 512M}\n").pools[0].memory_limit, 512u << 20);
  EXPECT_EQ(Parse("pools:\n  cpu: {memory_limit: 2G}\n").pools[0].memory_limit, 2ull << 30);
  EXPECT_EQ(Parse("pools:\n  cpu: {}\n").pools[0].memory_limit, 0u);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {memory_limit: 10M}\n").find("at least 256M"),
            std::string::npos);
  EXPECT_NE(ErrorOf("pools:\n  cpu: {memory_limit: lots}\n").find("pools.cpu.memory_limit"),
            std::string::npos);
}

TEST(ConfigTest, KindsLimitWhatAPoolRuns) {
  Config config = Parse("default_pool: safe\npools:\n  safe:\n    kinds: [function]\n  any: {}\n");
  EXPECT_TRUE(config.pools[0].Accepts("function"));
  EXPECT_FALSE(config.pools[0].Accepts("exec"));
  EXPECT_TRUE(config.pools[1].Accepts("stream"));
  EXPECT_NE(ErrorOf("pools:\n  cpu: {kinds: [shell]}\n").find("the kinds are function, plugin"),
            std::string::npos);
}

TEST(ConfigTest, MissingFileSaysSo) {
  Result<Config> config = LoadConfigFile("/nonexistent/jobd.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.message().find("cannot read config file /nonexistent/jobd.yaml"),
            std::string::npos);
}

}  // namespace
}  // namespace jobd
