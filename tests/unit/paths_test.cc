#include "common/paths.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace jobd {
namespace {

class PathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("jobd-paths-" + std::to_string(getpid()));
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

TEST_F(PathsTest, CreatesPrivateDirectories) {
  const std::string dir = (root_ / "a" / "b").string();
  ASSERT_TRUE(EnsurePrivateDir(dir).ok());
  struct stat st{};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((root_ / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "directories made on the way are private too";
  EXPECT_TRUE(EnsurePrivateDir(dir).ok()) << "an existing private directory is fine";
}

TEST_F(PathsTest, RefusesDirectoriesOthersCanEnterWithoutChangingThem) {
  const std::string dir = (root_ / "shared").string();
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  chmod(dir.c_str(), 0755);
  Status s = EnsurePrivateDir(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is open to other users (mode 755)"), std::string::npos) << s.message();
  struct stat st{};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u) << "the mode of someone's directory was changed";
  const std::string file = (root_ / "file").string();
  std::FILE* f = std::fopen(file.c_str(), "w");
  std::fclose(f);
  EXPECT_NE(EnsurePrivateDir(file).message().find("is not a directory"), std::string::npos);
}

TEST_F(PathsTest, EndpointsAndEnvironment) {
  EXPECT_EQ(*IpcPath("ipc:///run/x.sock"), "/run/x.sock");
  EXPECT_FALSE(IpcPath("tcp://1.2.3.4:5").ok());
  EXPECT_FALSE(IpcPath("ipc://").ok());
  setenv("JOBD_PATHS_TEST", "v", 1);
  EXPECT_EQ(ExpandEnv("a/$JOBD_PATHS_TEST/${JOBD_PATHS_TEST}b/$"), "a/v/vb/$");
  unsetenv("JOBD_PATHS_UNSET");
  EXPECT_EQ(ExpandEnv("x$JOBD_PATHS_UNSET/y"), "x/y");
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved = xdg ? xdg : "";
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(ExpandEnv("$XDG_RUNTIME_DIR/jobd"), "/tmp/jobd-" + std::to_string(getuid()) + "/jobd");
  EXPECT_EQ(DefaultEndpoint(), "ipc:///tmp/jobd-" + std::to_string(getuid()) + "/jobd/jobd.sock");
  if (xdg) setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
}

}  // namespace
}  // namespace jobd
