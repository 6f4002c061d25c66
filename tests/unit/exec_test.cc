#include "worker/exec.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/words.h"

namespace jobd {
namespace {

std::string Expand(std::string_view word, std::string_view item, bool quote = false) {
  bool uses_item = false;
  return ExpandWord(word, item, 7, 2, quote, &uses_item);
}

TEST(ExecTest, ReplacementStringsFollowGnuParallel) {
  EXPECT_EQ(Expand("{}", "/a/b/c.tar.gz"), "/a/b/c.tar.gz");
  EXPECT_EQ(Expand("{.}", "/a/b/c.tar.gz"), "/a/b/c.tar");
  EXPECT_EQ(Expand("{/}", "/a/b/c.tar.gz"), "c.tar.gz");
  EXPECT_EQ(Expand("{//}", "/a/b/c.tar.gz"), "/a/b");
  EXPECT_EQ(Expand("{/.}", "/a/b/c.tar.gz"), "c.tar");
  EXPECT_EQ(Expand("{//}", "file"), ".");
  EXPECT_EQ(Expand("{//}", "/file"), "/");
  // As dirname(1) and GNU parallel: trailing and repeated slashes do not count.
  EXPECT_EQ(Expand("{//}", "trailing/"), ".");
  EXPECT_EQ(Expand("{//}", "a/b/"), "a");
  EXPECT_EQ(Expand("{//}", "dir//x.e"), "dir");
  EXPECT_EQ(Expand("{//}", "//x"), "/");
  EXPECT_EQ(Expand("{//}", "///"), "/");
  EXPECT_EQ(Expand("{.}", "dir.d/file"), "dir.d/file");
  EXPECT_EQ(Expand("{#}/{%}", "x"), "7/2");
  EXPECT_EQ(Expand("pre{}post-{/}", "a/b"), "prea/bpost-b");
  EXPECT_EQ(Expand("{x} {", "a"), "{x} {");
  EXPECT_EQ(Expand("{1}", "a"), "a") << "{1} of a plain item is the item";
  bool uses_item = false;
  const std::vector<std::string_view> args{"x y", "z"};
  EXPECT_EQ(ExpandWord("{2}:{1}:{3}:{}", "x y z", 1, 1, false, &uses_item, args), "z:x y:{3}:x y z");
  EXPECT_EQ(ExpandWord("{2}", "x y z", 1, 1, true, &uses_item, args), "\"${7}\"");
}

TEST(ExecTest, OnlyItemReplacementsCountAsUsingTheItem) {
  bool uses_item = false;
  ExpandWord("{#} {%}", "x", 1, 1, false, &uses_item);
  EXPECT_FALSE(uses_item);
  ExpandWord("{/.}", "x", 1, 1, false, &uses_item);
  EXPECT_TRUE(uses_item);
}

TEST(ExecTest, ShellCommandsGetItemsAsPositionalParameters) {
  signal(SIGPIPE, SIG_IGN);  // as in jobd-worker
  EXPECT_EQ(Expand("echo {} {.} {/} {//} {/.} | wc -c # {#}", "a;b", /*quote=*/true),
            "echo \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" | wc -c # 7");
  EXPECT_EQ(ItemForms("/d/f.txt"), (std::vector<std::string>{"/d/f.txt", "/d/f", "f.txt", "/d", "f"}));
  // Whatever quotes the user wrote around {}, the item is never code.
  for (const char* command : {"echo {}", "echo \"{}\"", "echo '{}'", "echo x{}y"}) {
    wire::Exec exec;
    exec.set_shell(true);
    exec.add_argv(command);
    Result<std::string> out = RunCommand(exec, "$(echo INJECTED); echo INJECTED2 '", 1, 1);
    ASSERT_TRUE(out.ok()) << out.message();
    EXPECT_EQ(out->find("INJECTED\n"), std::string::npos) << command << ": " << *out;
    EXPECT_EQ(out->find("\nINJECTED2"), std::string::npos) << command << ": " << *out;
  }
}

TEST(ExecTest, RunsCommandsAndReportsFailures) {
  signal(SIGPIPE, SIG_IGN);  // as in jobd-worker
  wire::Exec exec;
  exec.add_argv("printf");
  exec.add_argv("%s|");
  exec.add_argv("{}");
  EXPECT_EQ(*RunCommand(exec, "a b\nc", 1, 1), "a b\nc|");

  wire::Exec stdin_exec;
  stdin_exec.add_argv("wc");
  stdin_exec.add_argv("-c");
  EXPECT_EQ(*RunCommand(stdin_exec, std::string(200000, 'x'), 1, 1), "200000")
      << "an item larger than a pipe buffer reaches stdin whole";

  wire::Exec failing;
  failing.set_shell(true);
  failing.add_argv("echo out; echo oops >&2; exit 3");
  Result<std::string> failed = RunCommand(failing, "x", 1, 1);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("exited with status 3: oops"), std::string::npos)
      << failed.message();

  wire::Exec missing;
  missing.add_argv("no-such-command-for-jobd");
  EXPECT_NE(RunCommand(missing, "x", 1, 1).message().find("no such command"), std::string::npos);
  missing.set_cwd("/no/such/dir");
  EXPECT_NE(RunCommand(missing, "x", 1, 1).message().find("in /no/such/dir"), std::string::npos);
}

TEST(ExecTest, CommandsFoundOnPathAreRememberedUntilTheyMove) {
  signal(SIGPIPE, SIG_IGN);
  const std::string base = ::testing::TempDir() + "/jobd-path-" + std::to_string(getpid());
  const std::string first = base + "/first", second = base + "/second";
  std::filesystem::create_directories(first);
  std::filesystem::create_directories(second);
  auto script = [](const std::string& path, const std::string& says) {
    std::ofstream(path) << "#!/bin/sh\necho " << says << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  };
  script(first + "/jobd-test-cmd", "first");
  const std::string old_path = std::getenv("PATH");
  setenv("PATH", (first + ":" + second + ":" + old_path).c_str(), 1);
  wire::Exec exec;
  exec.add_argv("jobd-test-cmd");
  EXPECT_EQ(*RunCommand(exec, "x", 1, 1), "first");
  // It moves to the second directory: the remembered path fails, PATH is searched again.
  std::filesystem::remove(first + "/jobd-test-cmd");
  script(second + "/jobd-test-cmd", "second");
  EXPECT_EQ(*RunCommand(exec, "x", 1, 1), "second");
  EXPECT_EQ(*RunCommand(exec, "x", 1, 1), "second");
  setenv("PATH", old_path.c_str(), 1);
  std::filesystem::remove_all(base);
}

TEST(WordsTest, SplitsLikeAShellWithoutExpanding) {
  EXPECT_EQ(*SplitWords("gzip -9 {}"), (std::vector<std::string>{"gzip", "-9", "{}"}));
  EXPECT_EQ(*SplitWords("  a\t'b c'  \"d \\\"e\\\" $x\" f\\ g "),
            (std::vector<std::string>{"a", "b c", "d \"e\" $x", "f g"}));
  EXPECT_EQ(*SplitWords("'a'\"b\"c"), std::vector<std::string>{"abc"});
  EXPECT_EQ(*SplitWords("''"), std::vector<std::string>{""});
  EXPECT_NE(SplitWords("echo 'x").message().find("unclosed '"), std::string::npos);
  EXPECT_NE(SplitWords("echo \"x").message().find("unclosed \""), std::string::npos);
  EXPECT_NE(SplitWords("echo \\").message().find("lone backslash"), std::string::npos);
  EXPECT_NE(SplitWords("   ").message().find("empty"), std::string::npos);
}

}  // namespace
}  // namespace jobd
