// The command-line layer of jobd and jobctl (common/command_line.h): what a
// usage error says, and the checks of numbers.
#include "common/command_line.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace jobd {
namespace {

struct Parsed {
  std::optional<int> exit;
  std::string err;  // what went to stderr
};

// A program with a command `map` (a --unordered flag, a number, items) and a
// command `status`, parsed from `args` with stderr captured.
Parsed Parse(std::vector<const char*> args) {
  CLI::App app("test", "prog");
  SetUpHelp(app, "usage: prog COMMAND", "", "1.0");
  app.require_subcommand(1);
  CLI::App* map = app.add_subcommand("map", "map");
  bool unordered = false;
  unsigned chunksize = 0;
  double timeout = 0;
  std::vector<std::string> items;
  map->add_flag("--unordered", unordered, "");
  map->add_option("--chunksize", chunksize, "")->check(WholeNumber(1, 100));
  map->add_option("--timeout", timeout, "")->check(Seconds(60));
  map->add_option("ITEM", items, "");
  app.add_subcommand("status", "status");
  args.insert(args.begin(), "prog");
  std::fflush(stderr);
  char path[] = "/tmp/command_line_test.XXXXXX";
  const int fd = mkstemp(path);
  const int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  Parsed parsed;
  parsed.exit = ParseCommandLine(app, static_cast<int>(args.size()), args.data(), 2);
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  char buffer[4096];
  const ssize_t n = pread(fd, buffer, sizeof buffer, 0);
  parsed.err.assign(buffer, n > 0 ? static_cast<size_t>(n) : 0);
  close(fd);
  unlink(path);
  return parsed;
}

TEST(CommandLineTest, AValidLineGoesOn) {
  Parsed parsed = Parse({"map", "--unordered", "--chunksize", "7", "a", "b"});
  EXPECT_FALSE(parsed.exit.has_value()) << parsed.err;
  EXPECT_EQ(parsed.err, "");
}

TEST(CommandLineTest, AMisspeltOptionIsNamedWithTheClosestOne) {
  Parsed parsed = Parse({"map", "a", "--unorderd"});
  EXPECT_EQ(parsed.exit, 2);
  EXPECT_EQ(parsed.err,
            "prog: unknown option '--unorderd'; did you mean --unordered? (an argument that "
            "starts with '-' goes after --)\n(see `prog map --help`)\n");
  // Nothing close: no guess.
  EXPECT_EQ(Parse({"map", "--frobnicate"}).err.find("did you mean"), std::string::npos);
}

TEST(CommandLineTest, AMisspeltOrMissingCommandIsNamed) {
  EXPECT_EQ(Parse({"stauts"}).err,
            "prog: unknown command 'stauts'; did you mean status?\n(see `prog --help`)\n");
  EXPECT_EQ(Parse({}).err, "prog: missing COMMAND: one of map, status\n(see `prog --help`)\n");
  EXPECT_EQ(Parse({"status", "extra"}).err,
            "prog: unexpected argument 'extra': `prog status` takes no arguments, only "
            "options\n(see `prog status --help`)\n");
}

TEST(CommandLineTest, NumbersOutOfRangeSayWhatIsWanted) {
  for (const char* bad : {"0", "101", "-1", "1.5", "x", ""}) {
    Parsed parsed = Parse({"map", "--chunksize", bad});
    EXPECT_EQ(parsed.exit, 2) << bad;
    EXPECT_NE(parsed.err.find("--chunksize: takes a whole number from 1 to 100, not '" +
                              std::string(bad) + "'"),
              std::string::npos)
        << parsed.err;
  }
  for (const char* bad : {"0", "-2", "61", "nan", "inf", "1s"}) {
    Parsed parsed = Parse({"map", "--timeout", bad});
    EXPECT_EQ(parsed.exit, 2) << bad;
    EXPECT_NE(parsed.err.find("--timeout: takes seconds, more than 0 and at most 60, not '" +
                              std::string(bad) + "'"),
              std::string::npos)
        << parsed.err;
  }
  EXPECT_FALSE(Parse({"map", "--timeout", "0.25"}).exit.has_value());
}

TEST(CommandLineTest, HelpAndVersionExitZero) {
  EXPECT_EQ(Parse({"--version"}).exit, 0);
  EXPECT_EQ(Parse({"map", "--help"}).exit, 0);
}

}  // namespace
}  // namespace jobd
