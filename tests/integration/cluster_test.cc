// jobd serving clients on other hosts: over TCP on loopback, every connection
// CurveZMQ with the keys of the cluster file jobd writes.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <set>
#include <sstream>

#include <zmq.hpp>

#include "common/cluster_file.h"
#include "common/random.h"
#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

class ClusterTest : public DaemonTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--listen", "tcp://127.0.0.1:0", "--cluster-file",
            written_cluster_file_.empty() ? ClusterPath() : written_cluster_file_};
  }
  std::string ClusterPath() const { return dir_ + "/cluster"; }
  std::string written_cluster_file_;  // set: where the head writes it, not ClusterPath()
  // A node (jobd join) beside the head, once the head says it joined.
  pid_t JoinNode(const std::string& name);
  // The lines 1 to `count`, written to `path` too.
  std::string Numbers(const std::string& path, int count) const {
    std::string text;
    for (int i = 1; i <= count; ++i) text += std::to_string(i) + "\n";
    WriteFile(path, text);
    return text;
  }
  // Spawns a map of the numbers 1..`count` (in dir_/in, results in dir_/out)
  // whose items sleep `seconds` and print their number and $JOBD_NODE;
  // returns it once nodeA has printed one.
  pid_t SpawnNodeMap(int count, const std::string& seconds);
  // The numbers of those lines, without their nodes.
  std::string NumbersOut() const {
    std::string numbers;
    std::istringstream lines(ReadFile(dir_ + "/out"));
    for (std::string number, where; lines >> number >> where;) numbers += number + "\n";
    return numbers;
  }
  // Whether the head soon reports node `name` in `state`.
  bool NodeReaches(const std::string& name, const std::string& state);
  // Node `name`'s local socket, where its own host's clients reach it.
  std::string NodeSocket(const std::string& name) const {
    return "ipc://" + dir_ + "/jobd/node-" + name + ".sock";
  }
  // Stops node `name` (pid `pid`) as any jobd is stopped, and reaps it.
  void StopNode(const std::string& name, pid_t pid) {
    Command stop = Jobctl({"--socket", NodeSocket(name), "shutdown"});
    EXPECT_EQ(stop.status, 0) << stop.err;
    EXPECT_EQ(waitpid(pid, nullptr, 0), pid);
  }
  // The status of node `name`'s jobd, asked on its local socket.
  Result<wire::StatusReport> NodeReport(const std::string& name) {
    Result<Client> client = Client::Connect(NodeSocket(name));
    if (!client.ok()) return client.status();
    return client->Status();
  }
  // The environment of a client on another host: this host is the head's,
  // where the cluster file would lead to the head's local socket.
  std::vector<std::string> RemoteEnv() const {
    std::vector<std::string> env = Env();
    env.push_back("JOBD_CLUSTER_LOCAL=0");
    return env;
  }
  // jobctl ARGS as on another host, through the cluster file.
  Command Remote(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> argv = {Program("jobctl"), "--cluster-file", ClusterPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, input, RemoteEnv());
  }
};

// Pool `name` of `report`, or an empty one.
wire::StatusReport::Pool PoolOf(const wire::StatusReport& report, const std::string& name) {
  for (const auto& pool : report.pools()) {
    if (pool.name() == name) return pool;
  }
  return {};
}

// Node `name` in `report`, or an empty one.
wire::StatusReport::Node NodeOf(const wire::StatusReport& report, const std::string& name) {
  for (const auto& node : report.nodes()) {
    if (node.name() == name) return node;
  }
  return {};
}

// Lines of random letters, each `bytes` long.
std::string RandomLines(int count, size_t bytes) {
  std::string text;
  for (int i = 0; i < count; ++i) {
    std::string line = RandomHex(bytes / 2);
    text += line + "\n";
  }
  return text;
}

TEST_F(ClusterTest, AClientWithTheClusterFileMapsOverTcpItemsAndResultsInline) {
  struct stat st{};
  ASSERT_EQ(stat(ClusterPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the cluster file's keys are its user's alone";
  Result<ClusterFile> cluster = ClusterFile::Read(ClusterPath());
  ASSERT_TRUE(cluster.ok()) << cluster.message();
  EXPECT_EQ(cluster->endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << cluster->endpoint;

  Command ping = Remote({"ping"});
  EXPECT_EQ(ping.status, 0) << ping.err;
  EXPECT_NE(ping.out.find(cluster->endpoint), std::string::npos) << ping.out;

  // Items and results far above the inline limit: no shared memory between
  // hosts, so they travel in the messages; on the head they sit in its
  // shared memory for its workers (the fixture checks that no segment is left).
  const std::string items = RandomLines(6, 1 << 20);
  Command echoed = Remote({"map", "identity"}, items);
  EXPECT_EQ(echoed.status, 0) << echoed.err;
  EXPECT_TRUE(echoed.out == items) << "the results differ from the items";
  Result<wire::StatusReport> report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  const wire::StatusReport::Pool cpu = PoolOf(*report, "cpu");
  EXPECT_GE(cpu.payload_bytes_shared(), 2 * items.size() - 12) << "items and results, 6 MiB each";
  EXPECT_LT(cpu.payload_bytes_inline(), 64u << 10) << "large payloads crossed the workers' socket";
  Command small = Remote({"map", "--unordered", "len", "a", "bb", "ccc"});
  EXPECT_EQ(small.status, 0) << small.err;
  EXPECT_EQ(small.out.size(), 6u) << small.out;

  // The local socket serves as before.
  Command local = Jobctl({"map", "identity", "x"});
  EXPECT_EQ(local.out, "x\n") << local.err;
}

// On the head's own host the cluster file leads to the head's local socket:
// payloads in shared memory, nothing to encrypt.
TEST_F(ClusterTest, AClientOnTheHeadsHostTakesItsLocalSocket) {
  Result<ClusterFile> cluster = ClusterFile::Read(ClusterPath());
  ASSERT_TRUE(cluster.ok()) << cluster.message();
  EXPECT_EQ(cluster->host, HostName());
  EXPECT_EQ(cluster->local, endpoint_);
  EXPECT_EQ(cluster->pid, static_cast<uint32_t>(daemon_pid_));
  auto ping = [&](const std::string& file, const std::vector<std::string>& env) {
    return RunCommand({Program("jobctl"), "--cluster-file", file, "ping"}, "", env);
  };
  Command local = ping(ClusterPath(), Env());
  EXPECT_NE(local.out.find("answers at " + endpoint_), std::string::npos) << local.out << local.err;

  // A map submitted so is a local client's: its pid is known (a client on
  // another host has none), and its items and results are right.
  const std::string items = RandomLines(4, 1 << 20);
  Command echoed = RunCommand({Program("jobctl"), "--cluster-file", ClusterPath(), "map",
                               "identity"}, items, Env());
  EXPECT_EQ(echoed.status, 0) << echoed.err;
  EXPECT_TRUE(echoed.out == items) << "the results differ from the items";
  Result<wire::JobList> jobs = Connect().Jobs();
  ASSERT_TRUE(jobs.ok()) << jobs.message();
  ASSERT_GT(jobs->jobs_size(), 0);
  EXPECT_NE(jobs->jobs(0).pid(), 0u) << "the job came over TCP";

  // Over TCP when asked to, when the file names another host, or when the
  // jobd at its local socket is not the head.
  Command asked = ping(ClusterPath(), RemoteEnv());
  EXPECT_NE(asked.out.find("answers at " + cluster->endpoint), std::string::npos) << asked.out;
  ClusterFile elsewhere = *cluster;
  elsewhere.host = "elsewhere";
  ClusterFile not_the_head = *cluster;
  not_the_head.pid = cluster->pid + 1;
  for (const auto& [name, file] : {std::pair{"elsewhere", elsewhere},
                                   std::pair{"not-the-head", not_the_head}}) {
    const std::string path = dir_ + "/cluster-" + name;
    ASSERT_TRUE(file.Write(path).ok());
    Command tcp = ping(path, Env());
    EXPECT_NE(tcp.out.find("answers at " + cluster->endpoint), std::string::npos)
        << name << ": " << tcp.out << tcp.err;
  }
}

TEST_F(ClusterTest, FilesAreReadByTheWorkerWhereItRunsNotByAClientOnAnotherHost) {
  WriteFile(dir_ + "/big", std::string(3 << 20, 'x'));
  WriteFile(dir_ + "/small", "12345");
  Command lengths = Remote({"map", "--files", "len", dir_ + "/big", dir_ + "/small",
                            dir_ + "/missing", "/proc/self/cmdline"});
  EXPECT_EQ(lengths.status, 1) << lengths.err;
  EXPECT_EQ(lengths.out.rfind(std::to_string(3 << 20) + "\n5\n", 0), 0u) << lengths.out;
  EXPECT_GT(std::stoi(lengths.out.substr(lengths.out.rfind('\n', lengths.out.size() - 2))), 0)
      << "a file without a size is read to its end: " << lengths.out;
  EXPECT_NE(lengths.err.find("cannot read " + dir_ + "/missing: No such file or directory"),
            std::string::npos) << lengths.err;
  // Only the names crossed: 3 MiB of contents would have gone to shared memory.
  Result<wire::StatusReport> report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(PoolOf(*report, "cpu").payload_bytes_shared(), 0u);
  EXPECT_LT(PoolOf(*report, "cpu").payload_bytes_inline(), 4096u);
}

TEST_F(ClusterTest, PeersWithoutTheClustersKeysAreRefusedAndTheHeadServesOn) {
  Result<ClusterFile> cluster = ClusterFile::Read(ClusterPath());
  ASSERT_TRUE(cluster.ok()) << cluster.message();

  // A key pair of its own, with the right endpoint and server key.
  Result<ClusterFile> stranger = ClusterFile::Generate(cluster->endpoint);
  stranger->server_public = cluster->server_public;
  ASSERT_TRUE(stranger->Write(dir_ + "/stranger").ok());
  Command refused = RunCommand({Program("jobctl"), "--cluster-file", dir_ + "/stranger", "ping"},
                               "", Env());
  EXPECT_EQ(refused.status, 3) << refused.err;
  EXPECT_NE(refused.err.find("keys are not its current ones"), std::string::npos) << refused.err;
  EXPECT_TRUE(Eventually([&] { return Log().find("its key is not the one in this cluster's file") !=
                                      std::string::npos; }))
      << Log();

  // Plaintext: never a message through, never an answer.
  zmq::context_t context;
  zmq::socket_t plain(context, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect(cluster->endpoint);
  wire::Request ping;
  ping.set_version(wire::VERSION_CURRENT);
  ping.mutable_ping();
  plain.send(zmq::buffer(ping.SerializeAsString()), zmq::send_flags::dontwait);
  zmq::pollitem_t item{plain.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(1500)), 0) << "a plaintext peer got an answer";
  EXPECT_TRUE(Eventually([&] { return Log().find("failed the CurveZMQ handshake") != std::string::npos; }))
      << Log();

  Command ping_ok = Remote({"map", "identity", "still", "serving"});
  EXPECT_EQ(ping_ok.out, "still\nserving\n") << ping_ok.err;
}

TEST_F(ClusterTest, AHeadThatStopsAnsweringIsNoticedAndItsRestartWithNewKeysResubmittedTo) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  const std::string input = Numbers(in, 60);
  const pid_t job = Spawn({Program("jobctl"), "--cluster-file", ClusterPath(), "map",
                           "--resubmit-wait", "60", "--shell", "--exec", "sleep 0.1; echo {}"},
                          in, out, RemoteEnv());
  pids_.insert(job);
  ASSERT_TRUE(Eventually([&] { return ReadFile(out).size() > 10; })) << ReadFile(out + ".err");
  const std::string old_keys = ReadFile(ClusterPath());
  KillDaemon();  // no pid to watch from another host: only its silence tells
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  EXPECT_NE(ReadFile(ClusterPath()), old_keys) << "a restarted head has new keys";

  int status = 0;
  waitpid(job, &status, 0);
  const std::string err = ReadFile(out + ".err");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_TRUE(ReadFile(out) == input) << "results missing, repeated or out of order:\n"
                                      << ReadFile(out);
  EXPECT_NE(err.find("stopped answering while running job 1"), std::string::npos) << err;
  EXPECT_NE(err.find("items without a result as job 1"), std::string::npos) << err;
}

// A job begun through the head's local socket, its items in this host's
// shared memory, goes on when its head comes back on another host: what has
// no result yet travels inline, each result still printed once, in order.
TEST_F(ClusterTest, AJobBegunOnTheHeadsHostFollowsItsHeadToAnotherHost) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  std::string input;
  for (int i = 1; i <= 40; ++i) input += std::to_string(i) + std::string(20000, 'x') + "\n";
  WriteFile(in, input);
  const pid_t job = Spawn({Program("jobctl"), "--cluster-file", ClusterPath(), "map",
                           "--resubmit-wait", "60", "--chunksize", "1", "--shell", "--exec",
                           "sleep 0.1; echo {}"},
                          in, out, Env());
  pids_.insert(job);
  ASSERT_TRUE(Eventually([&] { return ReadFile(out).size() > 3 * 20000; }))
      << ReadFile(out + ".err");
  KillDaemon();
  // The head comes back "elsewhere": the file the client reads names another host.
  written_cluster_file_ = dir_ + "/cluster.new";
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
  Result<ClusterFile> moved = ClusterFile::Read(written_cluster_file_);
  ASSERT_TRUE(moved.ok()) << moved.message();
  moved->host = "elsewhere";
  ASSERT_TRUE(moved->Write(ClusterPath()).ok());

  int status = 0;
  waitpid(job, &status, 0);
  const std::string err = ReadFile(out + ".err");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_TRUE(ReadFile(out) == input) << "results missing, repeated or out of order; stderr:\n"
                                      << err;
  EXPECT_NE(err.find("items without a result as job 1"), std::string::npos) << err;
  Result<wire::JobList> jobs = Connect().Jobs();
  ASSERT_TRUE(jobs.ok()) << jobs.message();
  ASSERT_GT(jobs->jobs_size(), 0);
  EXPECT_EQ(jobs->jobs(0).pid(), 0u) << "the resubmitted job came through the local socket";
}

bool ClusterTest::NodeReaches(const std::string& name, const std::string& state) {
  return Eventually([&] {
    Result<wire::StatusReport> now = Report();
    return now.ok() && NodeOf(*now, name).state() == state;
  });
}

pid_t ClusterTest::SpawnNodeMap(int count, const std::string& seconds) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  Numbers(in, count);
  const pid_t job = Spawn({Program("jobctl"), "map", "--chunksize", "1", "--shell", "--exec",
                           "sleep " + seconds + "; echo {} $JOBD_NODE"},
                          in, out, Env());
  pids_.insert(job);
  EXPECT_TRUE(Eventually([&] { return ReadFile(out).find(" nodeA\n") != std::string::npos; }))
      << "the node got no task:\n" << ReadFile(out) << Log();
  return job;
}

pid_t ClusterTest::JoinNode(const std::string& name) {
  WriteFile(dir_ + "/node.yaml", "default_pool: cpu\npools:\n  cpu: {workers: 2, retries: 2}\n");
  const pid_t pid = Spawn({Bin("jobd"), "join", "--cluster-file", ClusterPath(), "--name", name,
                           "--config", dir_ + "/node.yaml"},
                          "/dev/null", dir_ + "/" + name + ".out", Env());
  pids_.insert(pid);
  EXPECT_TRUE(Eventually([&] { return Log().find("node " + name + " (") != std::string::npos; }))
      << Log() << ReadFile(dir_ + "/" + name + ".out.err");
  return pid;
}

TEST_F(ClusterTest, NodesTakeTheHeadsTasksAndALostNodesTasksGoElsewhereExactlyOnce) {
  const pid_t node_a = JoinNode("nodeA");
  const std::string out = dir_ + "/out";
  const pid_t job = SpawnNodeMap(120, "0.1");
  kill(node_a, SIGKILL);  // mid-job: its tasks in flight must run elsewhere, once
  waitpid(node_a, nullptr, 0);
  const pid_t node_b = JoinNode("nodeB");  // mid-job

  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(out + ".err");
  std::set<std::string> nodes;
  std::istringstream lines(ReadFile(out));
  for (std::string number, node; lines >> number >> node;) nodes.insert(node);
  EXPECT_TRUE(NumbersOut() == Numbers(dir_ + "/in", 120)) << "results missing, repeated or out of order:\n" << ReadFile(out);
  EXPECT_EQ(nodes.count("nodeA"), 1u);
  EXPECT_EQ(nodes.count("nodeB"), 1u) << "a node that joined mid-job got no work";
  EXPECT_GE(nodes.size(), 3u) << "the head's own workers took none";
  EXPECT_NE(Log().find("node nodeA"), std::string::npos);
  EXPECT_NE(Log().find("lost: nothing from it for 5 s"), std::string::npos) << Log();

  Result<wire::StatusReport> report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  ASSERT_EQ(report->nodes_size(), 2) << "nodeA lost, nodeB there";
  EXPECT_EQ(NodeOf(*report, "nodeA").state(), "lost");
  EXPECT_EQ(NodeOf(*report, "nodeA").times_lost(), 1u);
  EXPECT_EQ(NodeOf(*report, "nodeB").state(), "serving");
  EXPECT_EQ(NodeOf(*report, "nodeB").workers(), 2u);
  EXPECT_GT(NodeOf(*report, "nodeB").tasks_done(), 0u);
  EXPECT_EQ(report->nodes_lost(), 1u);

  // nodeA back under its name: one of the nodes again, its history kept.
  const pid_t node_a_again = JoinNode("nodeA");
  EXPECT_TRUE(NodeReaches("nodeA", "serving")) << Log();
  report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(NodeOf(*report, "nodeA").rejoined(), 1u);
  EXPECT_EQ(NodeOf(*report, "nodeA").times_lost(), 1u);
  Command text = Jobctl({"status"});
  EXPECT_NE(text.out.find("nodes: 2 serving, 1 lost so far"), std::string::npos) << text.out;

  // A node whose head is gone stops (and its segments go with it).
  KillDaemon();
  for (const pid_t node : {node_b, node_a_again}) {
    EXPECT_EQ(waitpid(node, &status, 0), node);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(dir_ + "/nodeB.out.err");
  }
  EXPECT_NE(ReadFile(dir_ + "/nodeB.out.err").find("is gone"), std::string::npos);
  // What nodeA and the head, both killed, left is removed by the next jobd to start.
  ASSERT_EQ(StartDaemon(Config()).status, 0) << Log();
}

TEST_F(ClusterTest, StreamCoprocessesRunOnNodesToo) {
  const pid_t node = JoinNode("nodeA");
  const std::string script = dir_ + "/where.py";
  WriteFile(script, "import os, sys, time\nsys.path.insert(0, '" + std::string(JOBD_SOURCE_DIR) +
                        "/worker/stream')\nimport jobd_stream\n"
                        "def where(item):\n    time.sleep(0.05)\n"
                        "    return item + ' ' + os.environ.get('JOBD_NODE', '?')\n"
                        "jobd_stream.serve(where)\n");
  const std::string input = Numbers(dir_ + "/in", 40);
  Command streamed = Jobctl({"map", "--chunksize", "1", "--stream", "python3 " + script}, input);
  ASSERT_EQ(streamed.status, 0) << streamed.err;
  WriteFile(dir_ + "/out", streamed.out);
  EXPECT_TRUE(NumbersOut() == input) << "results missing, repeated or out of order:\n"
                                     << streamed.out;
  EXPECT_NE(streamed.out.find(" nodeA\n"), std::string::npos) << "the node ran none:\n"
                                                              << streamed.out;
  StopNode("nodeA", node);
}

TEST_F(ClusterTest, AStoppedNodeIsLostItsLateResultsDroppedAndItJoinsAgainWhenItResumes) {
  const pid_t node = JoinNode("nodeA");
  const pid_t job = SpawnNodeMap(60, "0.1");
  kill(node, SIGSTOP);  // cut off, not dead: what it runs finishes, but says nothing
  int status = 0;
  waitpid(job, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(dir_ + "/out.err");
  EXPECT_TRUE(NumbersOut() == Numbers(dir_ + "/in", 60))
      << "results missing, repeated or out of order:\n" << ReadFile(dir_ + "/out");
  EXPECT_NE(Log().find("lost: nothing from it for 5 s"), std::string::npos) << Log();
  EXPECT_EQ(NodeOf(*Report(), "nodeA").state(), "lost") << Log();

  // Resumed, it hears that it was lost and joins again; what it reports of
  // the old tasks is dropped (the job above has its results already).
  kill(node, SIGCONT);
  EXPECT_TRUE(NodeReaches("nodeA", "serving")) << Log();
  Result<wire::StatusReport> report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(NodeOf(*report, "nodeA").times_lost(), 1u);
  EXPECT_EQ(NodeOf(*report, "nodeA").rejoined(), 1u);
  EXPECT_NE(ReadFile(dir_ + "/nodeA.out.err").find("did not run for"), std::string::npos)
      << ReadFile(dir_ + "/nodeA.out.err");
  Command after = Jobctl({"map", "--chunksize", "1", "--shell", "--exec", "echo {}", "a", "b"});
  EXPECT_EQ(after.out, "a\nb\n") << after.err;
  StopNode("nodeA", node);
}

TEST_F(ClusterTest, AJobsTimeoutAndItsCancellationReachItsNodes) {
  const pid_t node = JoinNode("nodeA");
  const std::string node_log = dir_ + "/nodeA.out.err";

  // Items past the job's timeout fail wherever they run, the node's too.
  const auto start = std::chrono::steady_clock::now();
  Command timed_out = Jobctl({"map", "--timeout", "1", "--retries", "0", "--chunksize", "1",
                              "--shell", "--exec", "sleep 30; echo {}", "1", "2", "3", "4", "5",
                              "6", "7", "8"});
  EXPECT_EQ(timed_out.status, 1) << timed_out.err;
  EXPECT_NE(timed_out.err.find("8 of 8 items failed"), std::string::npos) << timed_out.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(ReadFile(node_log).find("ran past 1 s"), std::string::npos) << ReadFile(node_log);

  // A job broken off (its client interrupted) stops on the node too: the
  // node's workers are free for the next job at once, not in 30 s.
  const std::string out = dir_ + "/long.out";
  const pid_t job = Spawn({Program("jobctl"), "map", "--chunksize", "1", "--shell", "--exec",
                           "sleep 30; echo {}", "1", "2", "3", "4", "5", "6", "7", "8"},
                          "/dev/null", out, Env());
  ASSERT_TRUE(Eventually([&] { return RunningJobs() == 1; }));
  usleep(500'000);  // the node holds some of its tasks
  kill(job, SIGINT);
  waitpid(job, nullptr, 0);
  Command next = Jobctl({"map", "--chunksize", "1", "--shell", "--exec", "sleep 0.2; echo $JOBD_NODE",
                         "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"});
  EXPECT_EQ(next.status, 0) << next.err;
  EXPECT_NE(next.out.find("nodeA"), std::string::npos) << "the node's workers were still busy:\n"
                                                        << next.out;
  // The node serves its own host's clients beside the head; it stops as any jobd.
  StopNode("nodeA", node);
}

TEST_F(ClusterTest, ANodeThatStopsMidJobHandsItsTasksBackAtOnce) {
  const pid_t node = JoinNode("nodeA");
  const auto start = std::chrono::steady_clock::now();
  const pid_t job = SpawnNodeMap(30, "0.2");
  Command stop = Jobctl({"--socket", NodeSocket("nodeA"), "shutdown"});
  EXPECT_EQ(stop.status, 0) << stop.err;
  int status = 0;
  waitpid(job, &status, 0);
  // Not after the 5 s it takes to declare a silent node lost.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(4500));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(dir_ + "/out.err");
  EXPECT_TRUE(NumbersOut() == Numbers(dir_ + "/in", 30))
      << "results missing, repeated or out of order:\n" << ReadFile(dir_ + "/out");
  EXPECT_NE(Log().find("node nodeA is stopping"), std::string::npos) << Log();
  Result<wire::StatusReport> report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(NodeOf(*report, "nodeA").state(), "stopping");
  EXPECT_EQ(waitpid(node, &status, 0), node);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Once silent, it has left; it was not lost.
  EXPECT_TRUE(NodeReaches("nodeA", "left")) << Log();
  report = Report();
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(report->nodes_lost(), 0u);
}

TEST_F(ClusterTest, ANodeThatReloadsTellsItsHeadItsNewSize) {
  const pid_t node = JoinNode("nodeA");
  WriteFile(dir_ + "/node.yaml", "default_pool: cpu\npools:\n  cpu: {workers: 3}\n");
  kill(node, SIGHUP);
  EXPECT_TRUE(Eventually([&] {
    Result<wire::StatusReport> report = Report();
    return report.ok() && NodeOf(*report, "nodeA").workers() == 3;
  })) << Log() << ReadFile(dir_ + "/nodeA.out.err");
  Command mapped = Jobctl({"map", "--chunksize", "1", "--shell", "--exec", "echo {}", "a", "b"});
  EXPECT_EQ(mapped.out, "a\nb\n") << mapped.err;
  StopNode("nodeA", node);
}

TEST_F(ClusterTest, LargeItemsAndResultsSitInSharedMemoryOnEveryHost) {
  const pid_t node_pid = JoinNode("nodeA");
  // Items from a client on another host, some run by the head's workers and
  // some by the node's: on both hosts they reach the workers in shared
  // memory, and so do the results.
  const std::string items = RandomLines(24, 256 << 10);
  uint64_t node_tasks = 0;
  for (int round = 0; round < 10 && node_tasks == 0; ++round) {
    Command echoed = Remote({"map", "--chunksize", "1", "identity"}, items);
    ASSERT_EQ(echoed.status, 0) << echoed.err;
    ASSERT_TRUE(echoed.out == items) << "the results differ from the items";
    Result<wire::StatusReport> head = Report();
    ASSERT_TRUE(head.ok()) << head.message();
    node_tasks = NodeOf(*head, "nodeA").tasks_done();
  }
  ASSERT_GT(node_tasks, 0u) << "the node never got a task";
  Result<wire::StatusReport> node = NodeReport("nodeA");
  ASSERT_TRUE(node.ok()) << node.message();
  const wire::StatusReport::Pool on_node = PoolOf(*node, "cpu");
  EXPECT_GE(on_node.payload_bytes_shared(), node_tasks * 2 * (256u << 10))
      << "its items and results, one of each per task";
  EXPECT_LT(on_node.payload_bytes_inline(), 16u << 10) << "large payloads crossed the node's worker socket";
  Result<wire::StatusReport> head = Report();
  ASSERT_TRUE(head.ok()) << head.message();
  EXPECT_LT(PoolOf(*head, "cpu").payload_bytes_inline(), 16u << 10)
      << "large payloads crossed the head's worker socket";
  // The node, stopped, leaves none of its segments (the fixture checks).
  StopNode("nodeA", node_pid);
}

TEST(ClusterUsageTest, ATcpEndpointWithoutAClusterFileIsAUsageError) {
  Command jobd = RunCommand({Bin("jobd"), "--listen", "tcp://127.0.0.1:0"});
  EXPECT_EQ(jobd.status, 2);
  EXPECT_NE(jobd.err.find("needs --cluster-file"), std::string::npos) << jobd.err;
  EXPECT_NE(jobd.err.find("no plaintext TCP"), std::string::npos) << jobd.err;
}

}  // namespace
}  // namespace jobd::testing
