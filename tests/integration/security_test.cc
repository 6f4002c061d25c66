// Attacks on jobd, each performed for real (ctest label: security). jobd runs
// as an unprivileged victim; the attacks run as another unprivileged user, or
// as the victim where the threat is a hostile client of the same user. The
// users are made by tests/security_users.sh; making them needs root, as does
// running processes as them, so these tests run as root (CI does).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs `body` in a child process as `account`; returns the child's pid. Its
// exit status is what `body` returns.
pid_t StartAs(const Account& account, const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (setgroups(0, nullptr) != 0 || setresgid(account.gid, account.gid, account.gid) != 0 ||
        setresuid(account.uid, account.uid, account.uid) != 0) {
      _exit(125);
    }
    _exit(body());
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int RunAs(const Account& account, const std::function<int()>& body) {
  return Wait(StartAs(account, body));
}

// What `body`, run as `account`, returns (through a pipe: the account may
// write nowhere the test can read).
std::string Ask(const Account& account, const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = StartAs(account, [&] {
    close(fds[0]);
    const std::string said = body();
    return write(fds[1], said.data(), said.size()) == static_cast<ssize_t>(said.size()) ? 0 : 1;
  });
  close(fds[1]);
  std::string said;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) said.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  Wait(pid);
  return said;
}

std::string Encode(const google::protobuf::MessageLite& message) {
  return message.SerializeAsString();
}

wire::Request NewRequest() {
  wire::Request request;
  request.set_version(wire::VERSION_CURRENT);
  return request;
}

wire::Request Ping() {
  wire::Request ping = NewRequest();
  ping.mutable_ping();
  return ping;
}

// A ZeroMQ peer that speaks jobd's protocol by hand, as an attacker would.
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint, const std::string& routing_id = "")
      : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    if (!routing_id.empty()) socket_.set(zmq::sockopt::routing_id, routing_id);
    socket_.connect(endpoint);
  }
  void Send(const std::string& bytes) { socket_.send(zmq::buffer(bytes), zmq::send_flags::none); }
  // The next message, or nothing within `timeout_ms`.
  std::optional<std::string> Receive(int timeout_ms = 3000) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) return std::nullopt;
    zmq::message_t message;
    (void)socket_.recv(message, zmq::recv_flags::none);
    return message.to_string();
  }
  // What jobd answers to `request`: its error message, "pong", "accepted N",
  // or "nothing".
  std::string Ask(const wire::Request& request) {
    Send(Encode(request));
    return Describe(Receive());
  }
  static std::string Describe(const std::optional<std::string>& bytes) {
    wire::Reply reply;
    if (!bytes) return "nothing";
    if (!reply.ParseFromString(*bytes)) return "garbage";
    if (reply.has_error()) return reply.error().message();
    if (reply.has_pong()) return "pong";
    if (reply.has_accepted()) return "accepted " + std::to_string(reply.accepted().job());
    if (reply.has_results()) {
      std::string values;
      for (const auto& result : reply.results().results()) {
        values += result.outcome().has_value() ? result.outcome().value().data() : result.outcome().error();
      }
      return "results " + values + reply.results().values().data();
    }
    return "reply " + std::to_string(reply.kind_case());
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

class SecurityTest : public DaemonTest {
 protected:
  std::string Config() const override { return "pools:\n  cpu: {workers: 2}\n  four: {workers: 4}\n"; }

  void SetUp() override {
    if (getuid() != 0) {
      if (std::getenv("CI") != nullptr) FAIL() << "CI runs the security tests as root";
      GTEST_SKIP() << "needs root: runs jobd and the attacks as the users tests/security_users.sh makes";
    }
    victim_ = FindAccount("jobd-victim");
    attacker_ = FindAccount("jobd-attacker");
    ASSERT_TRUE(victim_ && attacker_) << "the test users are missing: run tests/security_users.sh";
    account_ = victim_;
    DaemonTest::SetUp();
  }

  // Lets every user reach the victim's sockets, as a careless chmod would: the
  // checks of the senders themselves must still hold. (The victim's jobctl
  // then refuses the endpoint, until the permissions are closed again.)
  void OpenThePermissions(bool open = true) {
    for (const std::string& path : {dir_, dir_ + "/jobd"}) {
      ASSERT_EQ(chmod(path.c_str(), open ? 0711 : 0700), 0);
    }
    for (const std::string& path : {dir_ + "/jobd/jobd.sock", dir_ + "/jobd/jobd.sock.workers"}) {
      ASSERT_EQ(chmod(path.c_str(), 0777), 0);
    }
  }

  std::string Socket() const { return dir_ + "/jobd/jobd.sock"; }

  void TearDown() override {
    for (const char* suffix : {"-lair", "-shared", "-closed"}) std::filesystem::remove_all(dir_ + suffix);
    DaemonTest::TearDown();
  }

  std::optional<Account> victim_, attacker_;
};

// ------------------------------------------ finding 1: directories on the way

class FallbackTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // Tests of the fallback directory take turns: there is one per user.
    lock_ = open("/tmp/jobd-security-fallback.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_EQ(flock(lock_, LOCK_EX), 0);
    fallback_ = "/tmp/jobd-" + std::to_string(victim_->uid);
    std::filesystem::remove_all(fallback_);
  }
  void TearDown() override {
    if (!fallback_.empty()) std::filesystem::remove_all(fallback_);
    if (lock_ >= 0) close(lock_);
    SecurityTest::TearDown();
  }
  // The victim's command without XDG_RUNTIME_DIR: the /tmp fallback. (A jobd
  // in the foreground that serves where it must not is stopped after 10 s.)
  Command AsVictim(const std::vector<std::string>& argv) {
    return RunCommand(AsAccount(*victim_, argv), "", {"XDG_RUNTIME_DIR="});
  }
  std::string fallback_;
  int lock_ = -1;
};

TEST_F(FallbackTest, ADirectoryAnotherUserMadeFirstIsRefusedByJobdAndJobctl) {
  // The attacker makes /tmp/jobd-<victim> first, open to all, and waits there
  // with a fake jobd that records what reaches it.
  const std::string endpoint = "ipc://" + fallback_ + "/jobd/jobd.sock";
  ASSERT_EQ(RunAs(*attacker_, [&] {
              return mkdir(fallback_.c_str(), 0777) == 0 && chmod(fallback_.c_str(), 0777) == 0 &&
                             mkdir((fallback_ + "/jobd").c_str(), 0777) == 0 &&
                             chmod((fallback_ + "/jobd").c_str(), 0777) == 0
                         ? 0
                         : 1;
            }),
            0);
  const pid_t fake = StartAs(*attacker_, [&] {
    zmq::context_t context;
    zmq::socket_t router(context, zmq::socket_type::router);
    router.bind(endpoint);
    chmod((fallback_ + "/jobd/jobd.sock").c_str(), 0777);
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, std::chrono::milliseconds(4000)) == 0 ? 0 : 1;
  });
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(fallback_ + "/jobd/jobd.sock"); }));

  const std::string owner = fallback_ + " belongs to uid " + std::to_string(attacker_->uid) +
                            " (jobd-attacker), not to you (uid " + std::to_string(victim_->uid) +
                            " (jobd-victim)) or root";
  Command jobd = AsVictim({"/usr/bin/timeout", "10", SharedBin("jobd"), "--config", dir_ + "/jobd.yaml"});
  EXPECT_EQ(jobd.status, 1);
  EXPECT_TRUE(Has(jobd.err, owner)) << jobd.err;
  Command jobctl = AsVictim({SharedBin("jobctl"), "map", "identity", "the victim's item"});
  EXPECT_EQ(jobctl.status, 3);
  EXPECT_TRUE(Has(jobctl.err, "refusing to use " + endpoint + ": " + owner)) << jobctl.err;
  EXPECT_EQ(Wait(fake), 0) << "the victim's jobctl talked to the attacker's fake jobd";
}

TEST_F(FallbackTest, ASymlinkOrAWritableDirectoryOnTheWayIsRefused) {
  // A symlink the attacker put in /tmp, pointing at a directory of theirs.
  const std::string lair = dir_ + "-lair";
  ASSERT_EQ(RunAs(*attacker_, [&] {
              return mkdir(lair.c_str(), 0777) == 0 && chmod(lair.c_str(), 0777) == 0 &&
                             symlink(lair.c_str(), fallback_.c_str()) == 0
                         ? 0
                         : 1;
            }),
            0);
  Command jobd = AsVictim({"/usr/bin/timeout", "10", SharedBin("jobd"), "--config", dir_ + "/jobd.yaml"});
  EXPECT_EQ(jobd.status, 1);
  EXPECT_TRUE(Has(jobd.err, fallback_ + " is a symlink in /tmp, where other users can create "
                                        "entries (mode 1777)"))
      << jobd.err;
  EXPECT_FALSE(std::filesystem::exists(lair + "/jobd")) << "jobd followed the attacker's symlink";
  std::filesystem::remove(fallback_);
  std::filesystem::remove_all(lair);

  // The victim's own directory, but writable by everyone: anyone could swap
  // the socket directory inside it.
  ASSERT_EQ(RunAs(*victim_, [&] { return mkdir(fallback_.c_str(), 0700) == 0 ? 0 : 1; }), 0);
  ASSERT_EQ(chmod(fallback_.c_str(), 0777), 0);
  jobd = AsVictim({"/usr/bin/timeout", "10", SharedBin("jobd"), "--config", dir_ + "/jobd.yaml"});
  EXPECT_EQ(jobd.status, 1);
  EXPECT_TRUE(Has(jobd.err, fallback_ + " is writable by other users (mode 0777) and not sticky"))
      << jobd.err;
  Command jobctl = AsVictim({SharedBin("jobctl"), "ping"});
  EXPECT_EQ(jobctl.status, 3);
  EXPECT_TRUE(Has(jobctl.err, "`chmod go-w " + fallback_ + "`")) << jobctl.err;

  // Once it is private, jobd serves there.
  ASSERT_EQ(chmod(fallback_.c_str(), 0700), 0);
  jobd = AsVictim({SharedBin("jobd"), "--config", dir_ + "/jobd.yaml", "--detach"});
  ASSERT_EQ(jobd.status, 0) << jobd.err;
  Command map = AsVictim({SharedBin("jobctl"), "map", "len", "abc"});
  EXPECT_EQ(map.out, "3\n") << map.err;
  struct stat st{};
  ASSERT_EQ(stat((fallback_ + "/jobd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, victim_->uid);
  EXPECT_EQ(AsVictim({SharedBin("jobctl"), "shutdown"}).status, 0);
  EXPECT_TRUE(Eventually([&] { return !std::filesystem::exists(fallback_ + "/jobd/jobd.sock"); }));
}

TEST_F(SecurityTest, PidAndLogFilesInSharedDirectoriesAreNeverFollowedNorTakenOver) {
  // A directory like /tmp (root's, sticky, open to all), and a file the
  // victim cares about.
  const std::string shared = dir_ + "-shared", precious = dir_ + "/precious";
  std::filesystem::create_directories(shared);
  ASSERT_EQ(chmod(shared.c_str(), 01777), 0);
  WriteFile(precious, "precious\n");
  ASSERT_EQ(chown(precious.c_str(), victim_->uid, victim_->gid), 0);
  ASSERT_EQ(RunAs(*attacker_, [&] {
              const int fd = open((shared + "/theirs.log").c_str(), O_CREAT | O_WRONLY, 0666);
              fchmod(fd, 0666);
              return symlink(precious.c_str(), (shared + "/jobd.pid").c_str()) == 0 && fd >= 0 &&
                             mkdir((shared + "/lair").c_str(), 0777) == 0 &&
                             chmod((shared + "/lair").c_str(), 0777) == 0
                         ? 0
                         : 1;
            }),
            0);
  WriteFile(dir_ + "/other.yaml", "listen: ipc://" + dir_ + "/other/jobd.sock\npools:\n  cpu: {workers: 1}\n");
  auto detach = [&](const std::string& pid_file, const std::string& log_file) {
    return RunCommand(AsUs({Program("jobd"), "--config", dir_ + "/other.yaml", "--detach",
                            "--pid-file", pid_file, "--log-file", log_file}),
                      "", Env());
  };
  Command run = detach(shared + "/jobd.pid", dir_ + "/other.log");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Has(run.err, shared + "/jobd.pid is a symlink; jobd does not follow one here"))
      << run.err;
  run = detach(shared + "/victim.pid", shared + "/theirs.log");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Has(run.err, shared + "/theirs.log belongs to uid " + std::to_string(attacker_->uid)))
      << run.err;
  run = detach(shared + "/lair/jobd.pid", dir_ + "/other.log");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Has(run.err, shared + "/lair belongs to uid " + std::to_string(attacker_->uid)))
      << run.err;
  EXPECT_EQ(ReadFile(precious), "precious\n");

  // Files of its own in the shared directory are fine, and the pid file goes
  // when jobd stops.
  run = detach(shared + "/victim.pid", shared + "/victim.log");
  ASSERT_EQ(run.status, 0) << run.err;
  const pid_t pid = std::atoi(ReadFile(shared + "/victim.pid").c_str());
  EXPECT_GT(pid, 0);
  EXPECT_EQ(RunCommand(AsUs({Program("jobctl"), "--socket", "ipc://" + dir_ + "/other/jobd.sock",
                             "shutdown"}),
                       "", Env())
                .status,
            0);
  EXPECT_TRUE(Eventually([&] { return kill(pid, 0) != 0; }));
  EXPECT_FALSE(std::filesystem::exists(shared + "/victim.pid"));
  EXPECT_TRUE(Has(ReadFile(shared + "/victim.log"), "serving ipc://"));
  std::filesystem::remove_all(shared);
}

// ------------------------------------------- finding 2: the workers' socket

// A process that poses as a worker: says Hello under `routing_id`, then
// counts what jobd sends it for `seconds` (its exit status, at most 100).
int PoseAsWorker(const std::string& endpoint, const std::vector<std::string>& routing_ids,
                 int seconds) {
  zmq::context_t context;
  std::vector<zmq::socket_t> sockets;
  for (const std::string& id : routing_ids) {
    sockets.emplace_back(context, zmq::socket_type::dealer);
    sockets.back().set(zmq::sockopt::routing_id, id);
    sockets.back().set(zmq::sockopt::linger, 0);
    sockets.back().connect(endpoint);
    wire::FromWorker hello;
    hello.set_version(wire::VERSION_CURRENT);
    hello.mutable_hello()->set_pid(static_cast<uint32_t>(getpid()));
    hello.mutable_hello()->set_secret("a guess");
    sockets.back().send(zmq::buffer(Encode(hello)), zmq::send_flags::none);
  }
  int received = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<zmq::pollitem_t> items;
  for (auto& socket : sockets) items.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
  while (std::chrono::steady_clock::now() < deadline && received < 100) {
    if (zmq::poll(items, std::chrono::milliseconds(100)) == 0) continue;
    for (size_t i = 0; i < items.size(); ++i) {
      zmq::message_t message;
      while (sockets[i].recv(message, zmq::recv_flags::dontwait)) ++received;
    }
  }
  return received;
}

TEST_F(SecurityTest, ImpostorsOnTheWorkersSocketAreRefusedAndNeverDelayARealWorker) {
  OpenThePermissions();
  const std::string endpoint = "ipc://" + Socket() + ".workers";
  // Another user's connections are closed as they are accepted, before a
  // byte is read.
  EXPECT_EQ(RunAs(*attacker_, [&] {
              const int fd = ConnectUnix(Socket() + ".workers");
              return fd >= 0 && ClosedByPeer(fd, 3000) ? 0 : 1;
            }),
            0) << "jobd kept another user's connection to the workers' socket";
  // Under every routing id the old naming (w<slot>.<n>) would give the next
  // workers, so that one would be taken before its worker came.
  std::vector<std::string> guesses;
  for (int slot = 0; slot < 4; ++slot) {
    for (int n = 1; n <= 40; ++n) guesses.push_back("w" + std::to_string(slot) + "." + std::to_string(n));
  }
  const pid_t stranger = StartAs(*attacker_, [&] { return PoseAsWorker(endpoint, guesses, 6); });
  const pid_t stranger_guessing = StartAs(*victim_, [&] { return PoseAsWorker(endpoint, guesses, 6); });
  // The victim's own process, which is not a worker jobd started.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the log's rate limit
  const pid_t own = StartAs(*victim_, [&] { return PoseAsWorker(endpoint, {"anything"}, 5); });
  ASSERT_TRUE(Eventually([&] { return Has(Log(), "a Hello from pid " + std::to_string(own)); }))
      << Log();

  // Workers replaced now get their places, and every item is served.
  OpenThePermissions(false);
  for (const auto& [pid, tasks] : Workers("cpu")) kill(pid, SIGKILL);
  std::string input, expected;
  for (int i = 0; i < 200; ++i) {
    input += "item" + std::to_string(i) + "\n";
    expected += std::to_string(4 + std::to_string(i).size()) + "\n";
  }
  const auto start = std::chrono::steady_clock::now();
  Command run = Jobctl({"map", "--chunksize", "1", "len"}, input);
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, expected);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(Wait(stranger), 0) << "another user's impostor received work";
  EXPECT_EQ(Wait(stranger_guessing), 0) << "an impostor under old-style routing ids received work";
  EXPECT_EQ(Wait(own), 0) << "an impostor of the same user received work";
  const std::string log = Log();
  EXPECT_TRUE(Has(log, "workers' socket: refused a Hello from pid " + std::to_string(own) + ", uid " +
                           std::to_string(victim_->uid) +
                           " (jobd-victim), which is not a worker this jobd started"))
      << log;
  EXPECT_FALSE(Has(log, "uid " + std::to_string(attacker_->uid))) << "another user got as far as a message";
}

TEST_F(SecurityTest, WorkersGetTheirCredentialsFromNoCommandLineOrFile) {
  for (const auto& [pid, tasks] : Workers("cpu")) {
    // jobd-worker ENDPOINT RUNNING_ITEM_SEGMENT SUPERVISOR_PID SLOT: nothing secret.
    const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    EXPECT_EQ(std::count(cmdline.begin(), cmdline.end(), '\0'), 5) << cmdline;
    EXPECT_FALSE(Has(ReadFile("/proc/" + std::to_string(pid) + "/environ"), "JOBD")) << pid;
    // The pipe they came on is closed once read.
    for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
      EXPECT_FALSE(Has(std::filesystem::read_symlink(fd.path()).string(), "pipe:")) << fd.path();
    }
  }
}

// --------------------------------------- finding 3: another job's segments

TEST_F(SecurityTest, AClientCannotReadOrRemoveAnotherJobsSegments) {
  // The victim's job: four items of 40,000 bytes (in shared memory), one at
  // a time, slowly.
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string input;
  for (int i = 0; i < 4; ++i) input += std::string(40000, static_cast<char>('a' + i)) + "\n";
  WriteFile(in, input);
  const pid_t job = Spawn(AsUs({Program("jobctl"), "map", "--chunksize", "1", "--workers", "1",
                               "--shell", "--exec", "sleep 0.5; wc -c"}),
                          in, out, Env());
  pids_.insert(job);
  std::string segment;
  ASSERT_TRUE(Eventually([&] {
    for (const std::string& name : SegmentsOf(victim_->uid)) {
      if (Has(name, "-" + std::to_string(job) + "-")) segment = name;
    }
    return !segment.empty();
  })) << Log();

  // A client of the same user names that segment, unannounced and announced.
  const std::string said = Ask(*victim_, [&] {
              RawPeer thief("ipc://" + Socket());
              std::string said;
              for (bool announce : {false, true}) {
                wire::Request submit = NewRequest();
                submit.mutable_submit()->set_function("identity");
                const std::string accepted = thief.Ask(submit);
                wire::Request items = NewRequest();
                items.mutable_items()->set_job(std::stoull(accepted.substr(accepted.find(' ') + 1)));
                items.mutable_items()->set_last(true);
                if (announce) items.mutable_items()->add_segments(segment);
                wire::SegmentRef* ref = items.mutable_items()->add_items()->mutable_ref();
                ref->set_segment(segment);
                ref->set_length(100);
                said += thief.Ask(items) + "\n";
              }
              return said;
            });
  EXPECT_TRUE(Has(said, "refers to shared-memory segment " + segment +
                            ", which its client did not create and announce for this job"))
      << said;
  EXPECT_TRUE(Has(said, "announced shared-memory segment " + segment + ", which its client (pid"))
      << said;
  EXPECT_FALSE(Has(said, "aaaa")) << "the thief read the victim's item";

  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(out + ".err") << Log();
  EXPECT_EQ(ReadFile(out), "40000\n40000\n40000\n40000\n") << ReadFile(out + ".err");
}

// ------------------------------- finding 5: what another user sees and gets

TEST_F(SecurityTest, AnotherUserIsToldWhoseEndpointItIsAndGetsNothing) {
  Command theirs = RunCommand(AsAccount(*attacker_, {SharedBin("jobctl"), "--socket", endpoint_,
                                                     "ping"}));
  EXPECT_EQ(theirs.status, 3);
  EXPECT_TRUE(Has(theirs.err, "refusing to use " + endpoint_ + ": " + dir_ + " belongs to uid " +
                                  std::to_string(victim_->uid) + " (jobd-victim), not to you"))
      << theirs.err;

  // A directory on the way that they may not enter: not "does not exist".
  const std::string closed = dir_ + "-closed";
  std::filesystem::create_directories(closed + "/jobd");
  ASSERT_EQ(chmod(closed.c_str(), 0700), 0);
  Command denied = RunCommand(AsAccount(*attacker_, {SharedBin("jobctl"), "--socket",
                                                     "ipc://" + closed + "/jobd/jobd.sock", "ping"}));
  EXPECT_EQ(denied.status, 3);
  EXPECT_TRUE(Has(denied.err, closed + "/jobd is not accessible to you (uid " +
                                  std::to_string(attacker_->uid) + " (jobd-attacker)): " + closed +
                                  " belongs to uid 0 (root) and has mode 0700"))
      << denied.err;
  std::filesystem::remove_all(closed);

  // With the permissions open, jobd itself refuses the other user, also
  // under the routing id a client of the victim used before.
  OpenThePermissions();
  ASSERT_EQ(RunAs(*victim_, [&] {
              RawPeer own("ipc://" + Socket(), "reused");
              return own.Ask(Ping()) == "pong" ? 0 : 1;
            }),
            0);
  const std::string said = Ask(*attacker_, [&] {
              const wire::Request ping = Ping();
              RawPeer zmtp3("ipc://" + Socket(), "reused");
              std::string said = zmtp3.Ask(ping) + "\n";
              // ZMTP 1.0 names no sender: its routing id must earn nothing.
              const int fd = ConnectUnix(Socket());
              const std::string body = Encode(ping);
              std::string frames = std::string(1, '\x07') + '\0' + "reused";
              frames += std::string(1, static_cast<char>(body.size() + 1)) + '\0' + body;
              (void)!send(fd, frames.data(), frames.size(), MSG_NOSIGNAL);
              said += ClosedByPeer(fd, 3000) ? "closed\n" : "kept open\n";
              return said;
            });
  EXPECT_EQ(said, "this jobd serves uid " + std::to_string(victim_->uid) +
                      " only; start your own with `jobd --detach`\nclosed\n");
  EXPECT_TRUE(Has(Log(), "refused a request from uid " + std::to_string(attacker_->uid))) << Log();
  OpenThePermissions(false);
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

// ------------------------------------- finding 4: connections that speak no ZeroMQ

TEST_F(SecurityTest, RawConnectionsLeaveNoMemoryBehind) {
  ASSERT_EQ(Jobctl({"map", "sha256", "warm", "up"}).status, 0);
  std::this_thread::sleep_for(std::chrono::seconds(6));  // one idle trim
  const size_t before = ResidentBytes(daemon_pid_);
  const std::string signature("\xff\0\0\0\0\0\0\0\0\x7f", 10);
  const std::string null_greeting = signature + std::string("\x03\x00NULL", 6) + std::string(16, '\0') +
                                    std::string(1, '\0') + std::string(31, '\0');
  // READY (as a DEALER would say it), then the start of a 60 MiB message.
  const std::string ready = std::string("\x04\x1c\x05READY\x0bSocket-Type\0\0\0\x06" "DEALER", 30);
  const std::string big_frame = std::string("\x02\0\0\0\0\x03\xc0\0\0", 9) + std::string(65536, 'x');
  std::mt19937 random(42);
  std::string noise;
  for (int i = 0; i < 64 * 1000; ++i) noise += static_cast<char>(random());
  const std::vector<std::pair<std::string, std::string>> forms = {
      {"plain bytes", "GET / HTTP/1.0\r\n\r\n"},
      {"random bytes", ""},  // 64 different ones each time
      {"a partial greeting", signature.substr(0, 5)},
      {"a bogus mechanism", signature + std::string("\x03\x00" "BOGUS", 7) + std::string(15 + 32, '\0')},
      {"a ZMTP 2.0 greeting", signature.substr(0, 10) + std::string("\x01\x05", 2)},
      {"a 60 MiB message begun", null_greeting + ready + big_frame},
  };
  // As the victim's own process (the workers' socket closes other users'
  // connections before reading them): what is left is what libzmq and jobd
  // do with bytes that get in.
  const std::string said = Ask(*victim_, [&] {
    int connections = 0;
    for (const std::string& socket : {Socket(), Socket() + ".workers"}) {
      for (const auto& [form, bytes] : forms) {
        for (int i = 0; i < 1000; ++i, ++connections) {
          const int fd = ConnectUnix(socket);
          if (fd < 0) return "cannot connect to " + socket + " for " + form;
          const std::string sent = bytes.empty() ? noise.substr(64 * i, 64) : bytes;
          (void)!send(fd, sent.data(), sent.size(), MSG_NOSIGNAL);
          close(fd);
        }
      }
      // Hundreds held open at once, for seconds.
      std::vector<int> held;
      for (int i = 0; i < 500; ++i, ++connections) {
        held.push_back(ConnectUnix(socket));
        (void)!send(held.back(), null_greeting.data(), 11, MSG_NOSIGNAL);
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));
      for (int fd : held) close(fd);
    }
    return std::to_string(connections) + " connections";
  });
  EXPECT_EQ(said, "13000 connections");
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n") << "jobd stopped serving";
  size_t after = 0;
  EXPECT_TRUE(Eventually([&] {
    after = ResidentBytes(daemon_pid_);
    return after <= before + (4 << 20);
  }, 15'000)) << "RSS " << before / 1024 << " KiB before, " << after / 1024 << " KiB after";
}

}  // namespace
}  // namespace jobd::testing
