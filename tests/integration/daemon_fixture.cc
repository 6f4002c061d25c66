#include "daemon_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <fstream>
#include <sstream>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "common/payload.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// A path in the temporary directory that nothing uses yet: pids repeat, and a
// directory an earlier test left there (perhaps another user's) must not be
// taken for ours.
std::string TempPath(const std::string& tag) {
  static int counter = 0;
  std::random_device random;
  while (true) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", random());
    const std::filesystem::path path =
        std::filesystem::temp_directory_path() /
        ("jobd-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + "-" +
         suffix + tag);
    std::error_code error;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) return path.string();
  }
}

int DecodeWait(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

std::string Bin(const std::string& program) { return std::string(JOBD_BIN_DIR) + "/" + program; }

std::optional<Account> FindAccount(const std::string& name) {
  const passwd* entry = getpwnam(name.c_str());
  if (entry == nullptr) return std::nullopt;
  return Account{entry->pw_uid, entry->pw_gid, name};
}

std::vector<std::string> AsAccount(const Account& account, const std::vector<std::string>& argv) {
  // The uid change clears the parent-death signal Spawn set: set it again, so
  // that a test killed midway leaves no jobd of another user behind.
  std::vector<std::string> wrapped{"/usr/bin/setpriv", "--reuid=" + std::to_string(account.uid),
                                   "--regid=" + std::to_string(account.gid), "--clear-groups",
                                   "--pdeathsig=TERM", "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

std::string SharedBin(const std::string& program) {
  static const std::string dir = [] {
    const std::string made = TempPath(".bin");
    std::filesystem::create_directories(made);
    chmod(made.c_str(), 0755);
    for (const char* name : {"jobd", "jobd-worker", "jobctl"}) {
      std::filesystem::copy_file(Bin(name), made + "/" + name);
      chmod((made + "/" + name).c_str(), 0755);
    }
    static std::string to_remove;  // constructed before `dir`, so destroyed after it
    to_remove = made;
    std::atexit([] { std::filesystem::remove_all(to_remove); });
    return made;
  }();
  return dir + "/" + program;
}

std::vector<std::string> SegmentsOf(uid_t uid) {
  const std::string prefix = "jobd-" + std::to_string(uid) + "-";
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) names.push_back(name);
  }
  return names;
}

size_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& stdin_path,
            const std::string& stdout_path, const std::vector<std::string>& env) {
  const pid_t pid = fork();
  if (pid == 0) {
    // A test that dies must not leave a daemon behind.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (const std::string& assignment : env) putenv(const_cast<char*>(assignment.c_str()));
    const int in = open(stdin_path.c_str(), O_RDONLY);
    const int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open((stdout_path + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(argv[0].c_str(), CStrings(argv).data());
    _exit(127);
  }
  return pid;
}

int ConnectUnix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

bool ClosedByPeer(int fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd item{fd, POLLIN, 0};
    if (poll(&item, 1, 50) <= 0) continue;
    char buffer[256];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

bool Eventually(const std::function<bool()>& condition, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

Command RunCommand(const std::vector<std::string>& argv, const std::string& input,
            const std::vector<std::string>& env) {
  const std::string in = TempPath(".in"), out = TempPath(".out");
  WriteFile(in, input);
  const pid_t pid = Spawn(argv, in, out, env);
  int status = 0;
  waitpid(pid, &status, 0);
  Command result{DecodeWait(status), pid, ReadFile(out), ReadFile(out + ".err")};
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  std::filesystem::remove(out + ".err");
  return result;
}

std::string DaemonTest::Config() const {
  return "default_pool: cpu\n"
         "pools:\n"
         "  cpu: {workers: 2, retries: 2}\n"
         "  four: {workers: 4}\n";
}

std::vector<std::string> DaemonTest::Env() const { return {"XDG_RUNTIME_DIR=" + dir_}; }

std::string DaemonTest::Program(const std::string& program) const {
  return account_ ? SharedBin(program) : Bin(program);
}

std::vector<std::string> DaemonTest::AsUs(const std::vector<std::string>& argv) const {
  return account_ ? AsAccount(*account_, argv) : argv;
}

void DaemonTest::SetUp() {
  dir_ = TempPath(".rt");
  std::filesystem::create_directories(dir_);
  if (account_) {
    ASSERT_EQ(chown(dir_.c_str(), account_->uid, account_->gid), 0);
    ASSERT_EQ(chmod(dir_.c_str(), 0700), 0);
  }
  endpoint_ = "ipc://" + dir_ + "/jobd/jobd.sock";
  pids_.insert(getpid());
  Command started = StartDaemon(Config());
  ASSERT_EQ(started.status, 0) << started.err << Log();
}

void DaemonTest::TearDown() {
  if (dir_.empty()) return;  // skipped before SetUp made anything
  if (daemon_pid_ > 0) {
    EXPECT_EQ(StopDaemon(), 0) << Log();
  }
  EXPECT_EQ(OurSegments(), std::vector<std::string>{}) << "segments left behind\n" << Log();
  if (HasFailure()) std::cerr << "---- jobd log ----\n" << Log();
  std::filesystem::remove_all(dir_);
}

Command DaemonTest::StartDaemon(const std::string& yaml) {
  const std::string config = dir_ + "/jobd.yaml";
  WriteFile(config, yaml);
  const std::string log = dir_ + "/jobd.log";
  // jobd logs to stderr, which Spawn puts beside stdout. An earlier jobd's
  // log goes first, so that its "serving" cannot be mistaken for this one's.
  std::filesystem::remove(dir_ + "/jobd.out.err");
  std::filesystem::remove(log);
  std::vector<std::string> argv = {Program("jobd"), "--config", config};
  for (const std::string& arg : DaemonArgs()) argv.push_back(arg);
  const pid_t pid = Spawn(AsUs(argv), "/dev/null", dir_ + "/jobd.out", Env());
  std::filesystem::create_symlink(dir_ + "/jobd.out.err", log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return {DecodeWait(status), pid, "", Log()};
    if (Log().find("serving ") != std::string::npos) {
      daemon_pid_ = pid;
      pids_.insert(pid);
      return {0, pid, "", ""};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return {-1, pid, "", "jobd did not start within 20 s\n" + Log()};
}

int DaemonTest::StopDaemon() {
  Command stop = Jobctl({"shutdown"});
  EXPECT_EQ(stop.status, 0) << stop.err;
  int status = 0;
  for (int i = 0; i < 400 && waitpid(daemon_pid_, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (waitpid(daemon_pid_, &status, WNOHANG) == 0) {
    ADD_FAILURE() << "jobd did not stop within 20 s of `jobctl shutdown`";
    kill(daemon_pid_, SIGKILL);
    waitpid(daemon_pid_, &status, 0);
  }
  daemon_pid_ = 0;
  return DecodeWait(status);
}

pid_t DaemonTest::KillDaemon() {
  const pid_t pid = daemon_pid_;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  daemon_pid_ = 0;
  return pid;
}

Command DaemonTest::Jobctl(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv{Program("jobctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  Command result = RunCommand(AsUs(argv), input, Env());
  pids_.insert(result.pid);
  return result;
}

Client DaemonTest::Connect() {
  EXPECT_FALSE(account_) << "the client library talks only to a jobd of its own user";
  Result<Client> client = Client::Connect(endpoint_);
  if (!client.ok()) throw std::runtime_error(client.message());
  return std::move(client).value();
}

std::vector<std::string> DaemonTest::OurSegments() const {
  std::vector<std::string> ours;
  for (const std::string& name : SegmentsOf(account_ ? account_->uid : getuid())) {
    // jobd-<uid>-<pid>-<random>
    const size_t start = name.find('-', 5) + 1;
    const pid_t creator = std::atoi(name.c_str() + start);
    if (pids_.count(creator) > 0) ours.push_back(name);
  }
  return ours;
}

Result<wire::StatusReport> DaemonTest::Report() {
  if (!account_) return Connect().Status();
  Command status = Jobctl({"status", "--json"});
  wire::StatusReport report;
  if (status.status != 0 ||
      !google::protobuf::util::JsonStringToMessage(status.out, &report).ok()) {
    return jobd::Status::Error("jobctl status --json: " + status.err);
  }
  return report;
}

std::vector<std::pair<pid_t, uint64_t>> DaemonTest::Workers(const std::string& pool) {
  Result<wire::StatusReport> report = Report();
  EXPECT_TRUE(report.ok()) << report.message();
  std::vector<std::pair<pid_t, uint64_t>> workers;
  for (const auto& p : report->pools()) {
    if (p.name() != pool) continue;
    for (const auto& w : p.workers()) workers.emplace_back(w.pid(), w.tasks_done());
  }
  return workers;
}

int DaemonTest::RunningJobs() {
  Result<wire::StatusReport> report = Report();
  return report.ok() ? report->jobs_size() : -1;
}

}  // namespace jobd::testing
