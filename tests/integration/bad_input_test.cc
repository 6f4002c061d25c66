// Bad input gets a clear message, and the daemon serves everyone else.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <zmq.hpp>

#include "common/payload.h"
#include "common/wire.h"
#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

using BadInputTest = DaemonTest;

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(BadInputTest, UnknownFunctionOrPoolIsRefusedByName) {
  Command function = Jobctl({"map", "nope", "x"});
  EXPECT_EQ(function.status, 4);
  EXPECT_TRUE(Has(function.err, "unknown function 'nope' in pool 'cpu'; it offers: crash, fail, "
                                "identity, len, primes, sha256, sleep"))
      << function.err;
  Command pool = Jobctl({"map", "--pool", "gpu", "len", "x"});
  EXPECT_EQ(pool.status, 4);
  EXPECT_TRUE(Has(pool.err, "unknown pool 'gpu'; this jobd has: cpu, four")) << pool.err;
  EXPECT_EQ(Jobctl({"map", "len", "x"}).out, "1\n");
}

TEST_F(BadInputTest, PeersThatSpeakNoZmtp3AreCutOffAtTheHandshake) {
  // Bytes that do not open a ZMTP 3 greeting would make ZeroMQ take the peer
  // for ZMTP 1.0 or 2.0, whose messages carry no credentials: jobd closes
  // such connections before any of their bytes become a message.
  for (const std::string& bytes : {std::string("\x01\x00\x06\x00hello", 9),
                                   std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a", 10),
                                   std::string("\xff\0\0\0\0\0\0\0\x01\x7f\x01\x05", 12)}) {
    for (const char* socket : {"/jobd/jobd.sock", "/jobd/jobd.sock.workers"}) {
      const int fd = ConnectUnix(dir_ + socket);
      ASSERT_GE(fd, 0) << socket;
      ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
      EXPECT_TRUE(ClosedByPeer(fd, 5000)) << "jobd kept a connection that sent " << bytes.size()
                                          << " stray bytes to " << socket;
      close(fd);
    }
  }
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n") << Log();
}

class KindsTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return "pools:\n  cpu: {workers: 1, kinds: [function]}\n";
  }
};

TEST_F(KindsTest, APoolRefusesKindsOfJobsItDoesNotRun) {
  Command exec = Jobctl({"map", "--exec", "echo {}", "x"});
  EXPECT_EQ(exec.status, 4);
  EXPECT_TRUE(Has(exec.err, "pool 'cpu' does not run exec jobs (it runs: function; see its "
                            "`kinds:` in the config)")) << exec.err;
  EXPECT_EQ(Jobctl({"map", "--stream", "cat", "x"}).status, 4);
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

TEST_F(BadInputTest, UsageErrorsExitTwoWithHelp) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"map"}, {"map", "--chunksize", "0", "len"}, {"bogus"}, {"map", "--frobnicate", "len"},
           {"status", "extra"}, {"map", "identity", "a", "--unorderd", "b"}}) {
    Command run = Jobctl(args);
    EXPECT_EQ(run.status, 2) << args[0] << ": " << run.err;
    EXPECT_TRUE(Has(run.err, "jobctl: ")) << run.err;
  }
  // A misspelt option or command is named, with the closest known one.
  Command misspelt = Jobctl({"map", "identity", "a", "--unorderd"});
  EXPECT_TRUE(Has(misspelt.err, "unknown option '--unorderd'; did you mean --unordered? (an "
                                "argument that starts with '-' goes after --)")) << misspelt.err;
  EXPECT_TRUE(Has(misspelt.err, "(see `jobctl map --help`)")) << misspelt.err;
  EXPECT_TRUE(Has(Jobctl({"stauts"}).err, "unknown command 'stauts'; did you mean status?"));
  EXPECT_TRUE(Has(Jobctl({"map", "--chunksize", "0", "len"}).err,
                  "--chunksize: takes a whole number from 1 to 65536, not '0'"));
  EXPECT_EQ(Jobctl({"map", "identity", "--", "-a", "--b"}).out, "-a\n--b\n");
  Command help = Jobctl({"map", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(Has(help.out, "--unordered")) << help.out;
}

// A command or a Python function takes the place of the FUNCTION: a name
// before it is not an item in disguise but a mistake.
TEST_F(BadInputTest, AFunctionNameWithACommandIsAUsageError) {
  for (const auto& [args, option] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"map", "upper", "--stream", "cat"}, "--stream"},
           {{"map", "upper", "--exec", "echo {}", "a"}, "--exec"},
           {{"map", "upper", "--python", "mod:f"}, "--python"}}) {
    Command run = Jobctl(args);
    EXPECT_EQ(run.status, 2) << run.err;
    EXPECT_TRUE(Has(run.err, "'upper' comes before " + option)) << run.err;
  }
  // Items after the command are items.
  EXPECT_EQ(Jobctl({"map", "--exec", "echo {}", "a", "b"}).out, "a\nb\n");
}

TEST_F(BadInputTest, NoDaemonSaysWhereItLookedAndHowToStartOne) {
  const std::string empty = dir_ + "/elsewhere";
  std::filesystem::create_directories(empty);
  Command run = RunCommand({Bin("jobctl"), "map", "len", "x"}, "", {"XDG_RUNTIME_DIR=" + empty});
  EXPECT_EQ(run.status, 3);
  EXPECT_TRUE(Has(run.err, "no jobd is running at ipc://" + empty + "/jobd/jobd.sock")) << run.err;
  EXPECT_TRUE(Has(run.err, "jobd --detach")) << run.err;
}

TEST_F(BadInputTest, SecondDaemonOnTheSameSocketIsRefused) {
  const std::string config = dir_ + "/jobd.yaml";
  Command second = RunCommand({Bin("jobd"), "--config", config}, "", Env());
  EXPECT_EQ(second.status, 1);
  EXPECT_TRUE(Has(second.err, "another jobd (pid " + std::to_string(daemon_pid_) +
                                  ") is already serving ipc://" + dir_ + "/jobd/jobd.sock"))
      << second.err;
  EXPECT_EQ(Jobctl({"ping"}).status, 0) << "the first jobd must still serve";
}

TEST_F(BadInputTest, BadConfigNamesFileLineAndKey) {
  const std::string config = dir_ + "/bad.yaml";
  WriteFile(config, "pools:\n  cpu:\n    workers: lots\n");
  Command run = RunCommand({Bin("jobd"), "--config", config}, "", Env());
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Has(run.err, config + ":3: 'pools.cpu.workers' must be a whole number")) << run.err;
  Command check = RunCommand({Bin("jobd"), "--check-config", "--config", config});
  EXPECT_EQ(check.status, 1);
  WriteFile(config, "pools:\n  cpu: {workers: 2}\n");
  EXPECT_EQ(RunCommand({Bin("jobd"), "--check-config", "--config", config}).status, 0);
}

// A raw socket speaking to jobd, to send what no well-behaved client would.
class RawClient {
 public:
  explicit RawClient(const std::string& endpoint) : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  void Send(const std::string& bytes) { socket_.send(zmq::buffer(bytes), zmq::send_flags::none); }
  void SendFrames(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      socket_.send(zmq::buffer(frames[i]),
                   i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  // The error message of the next reply; "" if none came within a second.
  std::string Error() {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(1000)) == 0) return "";
    zmq::message_t message;
    (void)socket_.recv(message, zmq::recv_flags::none);
    wire::Reply reply;
    reply.ParseFromArray(message.data(), static_cast<int>(message.size()));
    return reply.has_error() ? reply.error().message() : "(not an error)";
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

std::string Encode(const wire::Request& request) { return request.SerializeAsString(); }

TEST_F(BadInputTest, GarbageTruncatedAndOversizedMessagesLeaveTheDaemonServing) {
  // A real job runs throughout.
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string items;
  for (int i = 0; i < 200; ++i) items += std::to_string(i % 7) + "\n";
  WriteFile(in, items);
  const pid_t job = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(job);

  RawClient raw(endpoint_);
  raw.Send("\xde\xad\xbe\xef garbage");
  EXPECT_TRUE(Has(raw.Error(), "malformed request"));
  raw.SendFrames({"one", "two"});
  EXPECT_TRUE(Has(raw.Error(), "expected 1 frame, got 2"));

  wire::Request submit;
  submit.set_version(wire::VERSION_CURRENT);
  submit.mutable_submit()->set_function("sha256");
  const std::string whole = Encode(submit);
  raw.Send(whole.substr(0, whole.size() - 3));
  EXPECT_TRUE(Has(raw.Error(), "malformed request"));

  wire::Request old = submit;
  old.set_version(static_cast<wire::Version>(9));
  raw.Send(Encode(old));
  EXPECT_TRUE(Has(raw.Error(), "speaks protocol version 9"));

  wire::Request items_for_nobody;
  items_for_nobody.set_version(wire::VERSION_CURRENT);
  items_for_nobody.mutable_items()->set_job(99);
  raw.Send(Encode(items_for_nobody));
  EXPECT_TRUE(Has(raw.Error(), "no job 99 of yours is running"));

  wire::Request forged;
  forged.set_version(wire::VERSION_CURRENT);
  forged.mutable_items()->add_items()->mutable_ref()->set_segment("../../etc/passwd");
  raw.Send(Encode(forged));
  EXPECT_TRUE(Has(raw.Error(), "not a jobd segment of this user"));

  // The first items may travel with the Submit; they are checked as Items are.
  wire::Request forged_first = submit;
  forged_first.mutable_submit()->mutable_items()->add_items()->mutable_ref()->set_segment(
      "../../etc/passwd");
  raw.Send(Encode(forged_first));
  EXPECT_TRUE(Has(raw.Error(), "not a jobd segment of this user"));
  wire::Request out_of_sequence = submit;
  out_of_sequence.mutable_submit()->mutable_items()->set_first_index(5);
  out_of_sequence.mutable_submit()->mutable_items()->add_items()->set_data("x");
  raw.Send(Encode(out_of_sequence));
  EXPECT_EQ(raw.Error(), "(not an error)");  // accepted, then ended:
  EXPECT_TRUE(Has(raw.Error(), "items out of sequence"));

  // Over the size limit: refused by the socket before parsing, no reply.
  RawClient huge(endpoint_);
  huge.Send(std::string(static_cast<size_t>(kMaxMessageBytes) + 1, 'x'));
  EXPECT_EQ(huge.Error(), "");

  Command ping = Jobctl({"ping"});
  EXPECT_EQ(ping.status, 0) << ping.err;
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(out + ".err");
  EXPECT_EQ(ReadFile(out), items);
}

TEST_F(BadInputTest, ClientThatVanishesMidJobHasItsJobCancelledAndSegmentsRemoved) {
  // Item 1 is above the inline limit, so the client made a segment for it.
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, "2000\n" + std::string(64 * 1024, 'x') + "\n2000\n2000\n");
  const pid_t jobctl = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(jobctl);
  for (int i = 0; i < 100 && RunningJobs() == 0; ++i) usleep(20000);
  ASSERT_EQ(RunningJobs(), 1);
  ASSERT_FALSE(OurSegments().empty());
  kill(jobctl, SIGKILL);
  waitpid(jobctl, nullptr, 0);

  for (int i = 0; i < 100 && RunningJobs() != 0; ++i) usleep(50000);
  EXPECT_EQ(RunningJobs(), 0);
  EXPECT_TRUE(Has(Log(), "cancelled: its client (pid " + std::to_string(jobctl) + ") has exited"))
      << Log();
  // The daemon's own segments (worker pages) remain until it stops; the
  // client's are gone now.
  for (const std::string& name : OurSegments()) {
    EXPECT_EQ(name.find("-" + std::to_string(jobctl) + "-"), std::string::npos) << name;
  }
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
}

}  // namespace
}  // namespace jobd::testing
