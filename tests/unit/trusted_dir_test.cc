#include "common/trusted_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace jobd {
namespace {

// What one user can check alone; the attacks by another user are in
// tests/integration/security_test.cc.
class TrustedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() / ("jobd-trusted-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(root_);
    chmod(root_.c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  static std::string Message(const std::string& path, DirUse use = DirUse::kAny) {
    Result<TrustedDir> dir = OpenTrustedDir(path, use, /*create=*/false);
    return dir.ok() ? "ok" : dir.message();
  }
  static bool Has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  std::string root_;
};

TEST_F(TrustedDirTest, CreatesMissingDirectoriesPrivate) {
  const std::string dir = root_ + "/a/b";
  bool missing = false;
  EXPECT_FALSE(OpenTrustedDir(dir, DirUse::kPrivate, /*create=*/false, &missing).ok());
  EXPECT_TRUE(missing);
  Result<TrustedDir> made = OpenTrustedDir(dir, DirUse::kPrivate, /*create=*/true);
  ASSERT_TRUE(made.ok()) << made.message();
  struct stat st{};
  for (const std::string& path : {root_ + "/a", dir}) {
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << path;
  }
  EXPECT_EQ(Message(dir, DirUse::kPrivate), "ok") << "an existing private directory is fine";
}

TEST_F(TrustedDirTest, RefusesWhatOthersCouldChangeAndSaysHowToFixIt) {
  const std::string open = root_ + "/open", inner = open + "/inner";
  std::filesystem::create_directories(inner);
  chmod(open.c_str(), 0777);
  EXPECT_TRUE(Has(Message(inner), open + " is writable by other users (mode 0777) and not sticky"))
      << Message(inner);
  EXPECT_TRUE(Has(Message(inner), "`chmod go-w " + open + "`"));

  chmod(open.c_str(), 0755);
  chmod(inner.c_str(), 0755);
  const std::string message = Message(inner, DirUse::kPrivate);
  EXPECT_TRUE(Has(message, inner + " is open to other users (mode 0755)")) << message;
  EXPECT_TRUE(Has(message, "`chmod 700 " + inner + "`")) << message;
  struct stat st{};
  ASSERT_EQ(stat(inner.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u) << "a checked directory's mode was changed";

  const std::string file = root_ + "/file";
  std::ofstream(file) << "x";
  EXPECT_TRUE(Has(Message(file), file + " is not a directory"));
}

TEST_F(TrustedDirTest, FollowsSymlinksOnlyWhereNobodyElseCouldHaveMadeThem) {
  const std::string target = root_ + "/target";
  std::filesystem::create_directories(target);
  std::filesystem::create_directory_symlink(target, root_ + "/private-link");
  std::filesystem::create_directory_symlink("target", root_ + "/relative-link");
  EXPECT_EQ(Message(root_ + "/private-link"), "ok");
  EXPECT_EQ(Message(root_ + "/relative-link/../target/."), "ok");

  // A sticky directory open to all, like /tmp: a symlink there may be anyone's.
  const std::string sticky = root_ + "/sticky";
  std::filesystem::create_directories(sticky + "/real");
  chmod(sticky.c_str(), 01777);
  std::filesystem::create_directory_symlink(target, sticky + "/link");
  EXPECT_EQ(Message(sticky + "/real"), "ok") << "a sticky directory is fine on the way";
  EXPECT_TRUE(Has(Message(sticky + "/link"), sticky + "/link is a symlink in " + sticky +
                                                 ", where other users can create entries (mode 1777)"))
      << Message(sticky + "/link");
}

TEST_F(TrustedDirTest, OwnFilesAreNeverFollowedLinkedOrTruncatedOnOpen) {
  Result<TrustedDir> dir = OpenTrustedDir(root_, DirUse::kAny, false);
  ASSERT_TRUE(dir.ok()) << dir.message();
  const std::string victim = root_ + "/victim";
  std::ofstream(victim) << "keep";

  symlink(victim.c_str(), (root_ + "/link").c_str());
  EXPECT_TRUE(Has(OpenOwnFile(*dir, "link", O_WRONLY).message(), "is a symlink")) << "followed";
  link(victim.c_str(), (root_ + "/hard").c_str());
  EXPECT_TRUE(Has(OpenOwnFile(*dir, "hard", O_WRONLY).message(), "has 2 hard links"));
  mkfifo((root_ + "/fifo").c_str(), 0600);
  EXPECT_TRUE(Has(OpenOwnFile(*dir, "fifo", O_WRONLY).message(), "is a FIFO or a socket")) << "blocked?";
  EXPECT_TRUE(Has(OpenOwnFile(*dir, "fifo", O_RDWR).message(), "is not a regular file"));
  EXPECT_FALSE(OpenOwnFile(*dir, "new", O_WRONLY | O_TRUNC).ok());

  std::filesystem::remove(root_ + "/hard");
  Result<UniqueFd> existing = OpenOwnFile(root_ + "/victim", O_WRONLY | O_APPEND);
  ASSERT_TRUE(existing.ok()) << existing.message();
  ASSERT_EQ(write(existing->get(), "!", 1), 1);
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "keep!");

  Result<UniqueFd> created = OpenOwnFile(*dir, "created", O_WRONLY);
  ASSERT_TRUE(created.ok()) << created.message();
  struct stat st{};
  ASSERT_EQ(fstat(created->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(TrustedDirTest, ListensInTheCheckedDirectoryReplacingOnlyAStaleSocket) {
  Result<TrustedDir> dir = OpenTrustedDir(root_, DirUse::kAny, false);
  ASSERT_TRUE(dir.ok());
  for (int round = 0; round < 2; ++round) {  // the second replaces the first's file
    Result<UniqueFd> listening = ListenUnixSocket(*dir, "s.sock");
    ASSERT_TRUE(listening.ok()) << listening.message();
    struct stat st{};
    ASSERT_EQ(stat((root_ + "/s.sock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
  }
  std::ofstream(root_ + "/file.sock") << "data";
  EXPECT_TRUE(Has(ListenUnixSocket(*dir, "file.sock").message(), "exists and is not a socket"));
}

TEST(DescribeUserTest, NamesTheUserWhenKnown) {
  EXPECT_EQ(DescribeUser(0), "uid 0 (root)");
  EXPECT_EQ(DescribeUser(4000000000u), "uid 4000000000");
}

}  // namespace
}  // namespace jobd
