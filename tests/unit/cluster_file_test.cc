#include "common/cluster_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/random.h"

namespace jobd {
namespace {

class ClusterFileTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("jobd-cluster-" + RandomHex(6));
    std::filesystem::create_directory(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(ClusterFileTest, WrittenThenReadWithModeSixHundredAndNoSecretOfTheHead) {
  Result<ClusterFile> made = ClusterFile::Generate("tcp://127.0.0.1:7321");
  ASSERT_TRUE(made.ok()) << made.message();
  EXPECT_NE(made->server_public, made->client_public);
  ASSERT_TRUE(made->Write(Path("cluster")).ok());
  struct stat st{};
  ASSERT_EQ(stat(Path("cluster").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Result<ClusterFile> read = ClusterFile::Read(Path("cluster"));
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(read->endpoint, "tcp://127.0.0.1:7321");
  EXPECT_EQ(read->server_public, made->server_public);
  EXPECT_EQ(read->client_public, made->client_public);
  EXPECT_EQ(read->client_secret, made->client_secret);
  EXPECT_EQ(read->server_secret, "") << "the head's secret key never leaves it";
  std::ifstream text(Path("cluster"));
  const std::string whole((std::istreambuf_iterator<char>(text)), {});
  EXPECT_EQ(whole.find(made->server_secret), std::string::npos);

  // Written again (a head restarted): replaced whole, still 0600.
  Result<ClusterFile> again = ClusterFile::Generate("tcp://127.0.0.1:7322");
  ASSERT_TRUE(again->Write(Path("cluster")).ok());
  EXPECT_EQ(ClusterFile::Read(Path("cluster"))->endpoint, "tcp://127.0.0.1:7322");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1) << "no temporary left";
}

// Where the head runs, for clients on its host: all of host, local socket and
// pid, or none (a client then takes the TCP way).
TEST_F(ClusterFileTest, TheHeadsHostLocalSocketAndPidGoTogether) {
  Result<ClusterFile> made = ClusterFile::Generate("tcp://127.0.0.1:7321");
  ASSERT_TRUE(made.ok()) << made.message();
  made->host = "node1";
  made->local = "ipc:///run/jobd/jobd.sock";
  made->pid = 4242;
  ASSERT_TRUE(made->Write(Path("cluster")).ok());
  Result<ClusterFile> read = ClusterFile::Read(Path("cluster"));
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(read->host, "node1");
  EXPECT_EQ(read->local, "ipc:///run/jobd/jobd.sock");
  EXPECT_EQ(read->pid, 4242u);

  for (const std::string& broken : {std::string("pid 0\n"), std::string("pid x\n"),
                                    std::string("local tcp://1.2.3.4:5\n")}) {
    std::ifstream text(Path("cluster"));
    std::string whole((std::istreambuf_iterator<char>(text)), {});
    const std::string field = broken.substr(0, broken.find(' '));
    const size_t at = whole.find("\n" + field + " ") + 1;
    whole.replace(at, whole.find('\n', at) + 1 - at, broken);
    std::ofstream(Path("edited"), std::ios::trunc) << whole;
    chmod(Path("edited").c_str(), 0600);
    Result<ClusterFile> edited = ClusterFile::Read(Path("edited"));
    ASSERT_TRUE(edited.ok()) << edited.message();
    EXPECT_EQ(edited->local, "") << broken;
    EXPECT_EQ(edited->pid, 0u) << broken;
    EXPECT_EQ(edited->endpoint, "tcp://127.0.0.1:7321") << "the TCP way stays";
  }
}

TEST_F(ClusterFileTest, AFileOthersMayReadIsRefusedAndSaysWhatToDo) {
  ASSERT_TRUE(ClusterFile::Generate("tcp://127.0.0.1:1")->Write(Path("cluster")).ok());
  chmod(Path("cluster").c_str(), 0644);
  Result<ClusterFile> read = ClusterFile::Read(Path("cluster"));
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.message().find("mode 0644"), std::string::npos) << read.message();
  EXPECT_NE(read.message().find("chmod 600"), std::string::npos) << read.message();
}

TEST_F(ClusterFileTest, MissingOrForeignFilesSayWhatIsWrong) {
  Result<ClusterFile> missing = ClusterFile::Read(Path("none"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("is it running"), std::string::npos) << missing.message();

  std::ofstream(Path("garbage")) << "endpoint ipc:///tmp/x\nserver_key short\n";
  chmod(Path("garbage").c_str(), 0600);
  Result<ClusterFile> garbage = ClusterFile::Read(Path("garbage"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.message().find("is not one jobd wrote"), std::string::npos) << garbage.message();

  std::filesystem::create_symlink(Path("garbage"), Path("link"));
  EXPECT_FALSE(ClusterFile::Read(Path("link")).ok()) << "a symlink is not followed";
}

}  // namespace
}  // namespace jobd
