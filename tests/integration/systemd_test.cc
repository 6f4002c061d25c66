// jobd under systemd's Type=notify, against a real notify socket (a Unix
// datagram socket, as systemd makes): READY=1 once it serves, STATUS=,
// WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 and READY=1 around a
// SIGHUP, STOPPING=1 when it drains; and log lines with journal priorities
// when stderr is the stream named by JOURNAL_STREAM.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "common/random.h"
#include "daemon_fixture.h"

namespace jobd::testing {
namespace {

class SystemdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("jobd-systemd-test-" + RandomHex(8));
    std::filesystem::create_directories(dir_);
    socket_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(socket_, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = dir_ + "/notify";
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    ASSERT_EQ(bind(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(socket_);
    std::filesystem::remove_all(dir_);
  }

  // The next datagram jobd sent, or "" after `timeout_ms`.
  std::string Next(int timeout_ms = 15'000) {
    pollfd ready{socket_, POLLIN, 0};
    if (poll(&ready, 1, timeout_ms) != 1) return "";
    char buffer[4096];
    const ssize_t n = recv(socket_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }
  // Datagrams until one contains `state`; all of them, or "" if none did in time.
  std::string Until(const std::string& state) {
    std::string seen;
    for (std::string message = Next(); !message.empty(); message = Next()) {
      seen += message + "\n";
      if (message.find(state) != std::string::npos) return seen;
    }
    return "";
  }

  std::string dir_;
  int socket_ = -1;
  pid_t pid_ = 0;
};

TEST_F(SystemdTest, ReadinessStatusWatchdogReloadAndStoppingReachTheNotifySocket) {
  WriteFile(dir_ + "/jobd.yaml", "pools:\n  cpu: {workers: 1}\n");
  const std::string log = dir_ + "/jobd.out";
  WriteFile(log + ".err", "");  // (Spawn keeps the file: its inode is the journal's stream)
  struct stat st{};
  ASSERT_EQ(stat((log + ".err").c_str(), &st), 0);
  const std::vector<std::string> env = {
      "XDG_RUNTIME_DIR=" + dir_, "NOTIFY_SOCKET=" + dir_ + "/notify", "WATCHDOG_USEC=400000",
      "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)};
  pid_ = Spawn({Bin("jobd"), "--config", dir_ + "/jobd.yaml"}, "/dev/null", log, env);

  const std::string ready = Until("READY=1");
  ASSERT_NE(ready, "") << ReadFile(log + ".err");
  EXPECT_NE(ready.find("STATUS=0 jobs running; 0 of 1 workers busy"), std::string::npos) << ready;
  // Workers are ready before jobd says so: a map works at once.
  Command mapped = RunCommand({Bin("jobctl"), "map", "identity", "x"}, "", env);
  EXPECT_EQ(mapped.out, "x\n") << mapped.err;

  // At half the interval: about 5 in a second.
  int pets = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < until) {
    pets += Next(500).find("WATCHDOG=1") != std::string::npos;
  }
  EXPECT_GE(pets, 3);
  EXPECT_LE(pets, 8);

  kill(pid_, SIGHUP);
  const std::string reload = Until("READY=1");
  EXPECT_NE(reload.find("RELOADING=1\nMONOTONIC_USEC="), std::string::npos) << reload;

  Command stop = RunCommand({Bin("jobctl"), "shutdown"}, "", env);
  EXPECT_EQ(stop.status, 0) << stop.err;
  EXPECT_NE(Until("STOPPING=1"), "");
  int status = 0;
  EXPECT_EQ(waitpid(pid_, &status, 0), pid_);
  pid_ = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Priorities for the journal: info <6>, as sd-daemon(3) defines them.
  const std::string lines = ReadFile(log + ".err");
  EXPECT_EQ(lines.rfind("<6>", 0), 0u) << lines;
  EXPECT_NE(lines.find("\n<6>"), std::string::npos) << lines;
}

TEST_F(SystemdTest, WithoutANotifySocketNothingIsSentAndLinesHaveNoPriority) {
  WriteFile(dir_ + "/jobd.yaml", "pools:\n  cpu: {workers: 1}\n");
  const std::string log = dir_ + "/jobd.out";
  pid_ = Spawn({Bin("jobd"), "--config", dir_ + "/jobd.yaml"}, "/dev/null", log,
               {"XDG_RUNTIME_DIR=" + dir_, "JOURNAL_STREAM=1:1"});
  ASSERT_TRUE(Eventually([&] { return ReadFile(log + ".err").find("serving") != std::string::npos; }));
  EXPECT_EQ(Next(300), "");
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = 0;
  EXPECT_EQ(ReadFile(log + ".err").find('<'), std::string::npos) << "not the journal's stream";
}

}  // namespace
}  // namespace jobd::testing
