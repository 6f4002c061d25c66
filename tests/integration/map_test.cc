// jobctl map and the client library against a real jobd: results, order,
// input forms, output forms, exit statuses, shared-memory payloads.
#include <openssl/evp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "daemon_fixture.h"
#include "jobd.pb.h"

namespace jobd::testing {
namespace {

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  char hex[65];
  for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return std::string(hex, 64);
}

uint64_t SerialPrimes(uint64_t n) {
  uint64_t count = 0;
  for (uint64_t k = 2; k <= n; ++k) {
    bool prime = true;
    for (uint64_t d = 2; d * d <= k && prime; ++d) prime = k % d != 0;
    count += prime;
  }
  return count;
}

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::string RandomBytes(size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : bytes) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    c = static_cast<char>(state);
  }
  return bytes;
}

using MapTest = DaemonTest;

TEST_F(MapTest, PrimesEqualSerialComputation) {
  std::vector<std::string> items, expected;
  for (int n = 0; n < 300; n += 7) {
    items.push_back(std::to_string(n));
    expected.push_back(std::to_string(SerialPrimes(n)));
  }
  Command run = Jobctl({"map", "primes"}, Lines(items));  // one item per stdin line
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, Lines(expected));
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, ClientLibraryMapsInOrder) {
  Client client = Connect();
  std::vector<std::string> items;
  for (int i = 0; i < 5000; ++i) items.push_back("item-" + std::to_string(i));
  Result<std::vector<std::string>> digests = client.Map("sha256", items);
  ASSERT_TRUE(digests.ok()) << digests.message();
  ASSERT_EQ(digests->size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ((*digests)[i], Sha256Hex(items[i])) << i;

  Result<std::vector<std::string>> failed = client.Map("fail", {"a"});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("item 1: fail: this function always fails"), std::string::npos);
}

// Endless-looking input: counts what was read, so tests can check the window.
class CountingSource : public ItemSource {
 public:
  CountingSource(uint64_t count, size_t item_size) : count_(count), item_(item_size, 'x') {}
  Result<bool> Read(ItemSink& sink, size_t max) override {
    for (size_t n = 0; n < max && !sink.Full() && read_ < count_; ++n, ++read_) {
      if (Status s = sink.Add(item_); !s.ok()) return s;
    }
    return read_ < count_;
  }
  uint64_t read() const { return read_; }

 private:
  uint64_t count_;
  std::string item_;
  uint64_t read_ = 0;
};

TEST_F(MapTest, InputIsReadInWindowsNotAllAtOnce) {
  Client client = Connect();
  MapOptions options;
  options.window = 100;
  CountingSource small(20000, 10);
  uint64_t delivered = 0, most_ahead = 0;
  Result<JobSummary> summary = client.Map("len", small, options, [&](const ItemResult& r) {
    most_ahead = std::max(most_ahead, small.read() - delivered++);
    return Status();
  });
  ASSERT_TRUE(summary.ok()) << summary.message();
  EXPECT_EQ(summary->succeeded, 20000u);
  EXPECT_LE(most_ahead, 100u) << "more items read than the window holds";

  // Large items (shared memory) are bounded by bytes in flight: 256 MiB.
  CountingSource large(100, 4 << 20);
  delivered = most_ahead = 0;
  summary = client.Map("len", large, {}, [&](const ItemResult& r) {
    most_ahead = std::max(most_ahead, large.read() - delivered++);
    EXPECT_EQ(r.value, std::to_string(4 << 20));
    return Status();
  });
  ASSERT_TRUE(summary.ok()) << summary.message();
  EXPECT_LE(most_ahead, 65u) << "more shared memory in flight than the client allows";
}

TEST_F(MapTest, ArgumentsAreItemsAndShaMatchesSha256sum) {
  Command run = Jobctl({"map", "sha256", "hello", "", "a b"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, Lines({Sha256Hex("hello"), Sha256Hex(""), Sha256Hex("a b")}));
}

TEST_F(MapTest, TasksRunInEveryWorkerOfThePool) {
  std::vector<std::string> items(40, "30");  // 40 x 30 ms on 4 workers
  Command run = Jobctl({"map", "--pool", "four", "--chunksize", "1", "sleep"}, Lines(items));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, Lines(items));
  std::set<pid_t> pids;
  uint64_t tasks = 0;
  for (auto [pid, done] : Workers("four")) {
    EXPECT_GT(done, 0u) << "worker " << pid << " ran nothing";
    EXPECT_NE(pid, getpid());
    pids.insert(pid);
    tasks += done;
  }
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_EQ(tasks, 40u);
  for (auto [pid, done] : Workers("cpu")) EXPECT_EQ(done, 0u) << "the cpu pool was not asked";
}

TEST_F(MapTest, WorkersOptionLimitsHowManyWorkersAJobUses) {
  std::vector<std::string> items(12, "10");
  Command run = Jobctl({"map", "--pool", "four", "--workers", "1", "--chunksize", "1", "sleep"},
                       Lines(items));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, Lines(items));
  int used = 0;
  for (auto [pid, done] : Workers("four")) used += done > 0;
  EXPECT_EQ(used, 1);
}

TEST_F(MapTest, UnorderedPrintsAsResultsComeAndOrderedWaits) {
  // Item 0 is slow: ordered output still starts with it; unordered ends with it.
  const std::vector<std::string> items{"300", "1", "2", "3"};
  Command ordered = Jobctl({"map", "--chunksize", "1", "sleep"}, Lines(items));
  ASSERT_EQ(ordered.status, 0) << ordered.err;
  EXPECT_EQ(ordered.out, Lines(items));
  Command unordered = Jobctl({"map", "--unordered", "--chunksize", "1", "sleep"}, Lines(items));
  ASSERT_EQ(unordered.status, 0) << unordered.err;
  EXPECT_EQ(unordered.out.substr(unordered.out.size() - 4), "300\n") << unordered.out;
}

TEST_F(MapTest, NulSeparatedItemsKeepNewlines) {
  const std::string input("one\ntwo\0three\0", 14);
  Command run = Jobctl({"map", "-0", "len"}, input);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "7\n5\n");
}

TEST_F(MapTest, JsonRecordsCarryIndexResultOrError) {
  Command run = Jobctl({"map", "--json", "primes", "10", "x\"y"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out,
            "{\"index\":0,\"ok\":true,\"result\":\"4\"}\n"
            "{\"index\":1,\"ok\":false,\"error\":\"primes: expected a whole number, got "
            "'x\\\"y'\"}\n");
}

TEST_F(MapTest, FailedItemsGoToStderrWithTheirIndexAndExitOne) {
  Command run = Jobctl({"map", "primes", "5", "five", "7"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "3\n4\n");
  EXPECT_NE(run.err.find("item 2 failed: primes: expected a whole number, got 'five'"),
            std::string::npos) << run.err;
  EXPECT_NE(run.err.find("1 of 3 items failed"), std::string::npos) << run.err;
}

// The job log's lines, each split at its tabs (the header first).
std::vector<std::vector<std::string>> JobLogLines(const std::string& path) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream text(ReadFile(path));
  for (std::string line; std::getline(text, line);) {
    std::vector<std::string> fields;
    std::istringstream columns(line);
    for (std::string field; std::getline(columns, field, '\t');) fields.push_back(field);
    lines.push_back(fields);
  }
  return lines;
}

TEST_F(MapTest, JoblogIsGnuParallelsAndResumeRunsEachItemOnceAcrossRuns) {
  const std::string log = dir_ + "/joblog";
  const std::vector<std::string> command = {"map", "--joblog", log, "--shell", "--exec",
                                            "test {} != 3 && echo {}"};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  Command first = Jobctl(with(command, {"1", "2", "3", "4", "5"}));
  EXPECT_EQ(first.status, 1);
  EXPECT_EQ(first.out, "1\n2\n4\n5\n");
  auto lines = JobLogLines(log);
  ASSERT_EQ(lines.size(), 6u) << ReadFile(log);
  EXPECT_EQ(lines[0], (std::vector<std::string>{"Seq", "Host", "Starttime", "JobRuntime", "Send",
                                                "Receive", "Exitval", "Signal", "Command"}));
  std::map<std::string, std::vector<std::string>> by_seq;
  for (size_t i = 1; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].size(), 9u) << ReadFile(log);
    by_seq[lines[i][0]] = lines[i];
  }
  EXPECT_EQ(by_seq.size(), 5u);
  EXPECT_EQ(by_seq["3"][6], "1") << "the command's exit status";
  EXPECT_EQ(by_seq["2"][6], "0");
  EXPECT_EQ(by_seq["2"][5], "1") << "bytes received";
  EXPECT_GT(std::stod(by_seq["2"][2]), 1.7e9) << "Unix time";

  // --resume: only what the log does not show; --resume-failed: the failed one too.
  Command resumed = Jobctl(with(with(command, {"--resume"}), {"1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(resumed.out, "6\n");
  Command failed_again = Jobctl(with(with(command, {"--resume-failed"}), {"1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(failed_again.status, 1);
  EXPECT_EQ(failed_again.out, "");
  EXPECT_NE(failed_again.err.find("item 3 failed"), std::string::npos) << "counted as the input";
  // GNU parallel itself reads the log: all that is left to it is item 3.
  Command parallel = RunCommand({"/usr/bin/parallel", "--will-cite", "--joblog", log, "--resume-failed", "echo", ":::",
                                 "1", "2", "3", "4", "5", "6"});
  EXPECT_EQ(parallel.out, "3\n") << parallel.status << " " << parallel.err;
  EXPECT_EQ(Jobctl({"map", "--resume", "len", "x"}).status, 2) << "--resume needs --joblog";

  // Killed mid-run, then resumed: every item's result once across the two runs.
  const std::string in = dir_ + "/in", out = dir_ + "/out", log2 = dir_ + "/joblog2";
  std::string numbers;
  for (int i = 1; i <= 60; ++i) numbers += std::to_string(i) + "\n";
  WriteFile(in, numbers);
  const std::vector<std::string> slow = {Bin("jobctl"), "map", "--joblog", log2, "--chunksize",
                                         "1", "--shell", "--exec", "sleep 0.02; echo {}"};
  const pid_t killed = Spawn(slow, in, out, Env());
  pids_.insert(killed);
  ASSERT_TRUE(Eventually([&] { return ReadFile(out).size() > 20; }));
  kill(killed, SIGKILL);
  waitpid(killed, nullptr, 0);
  const std::string before = ReadFile(out);
  std::vector<std::string> rest_args(slow.begin() + 1, slow.end());
  rest_args.push_back("--resume");
  Command rest = RunCommand(with({slow[0]}, rest_args), numbers, Env());
  EXPECT_EQ(rest.status, 0) << rest.err;
  std::multiset<int> seen;
  std::istringstream all(before + rest.out);
  for (int n; all >> n;) seen.insert(n);
  std::multiset<int> expected;
  for (int i = 1; i <= 60; ++i) expected.insert(i);
  EXPECT_EQ(seen, expected) << "first run:\n" << before << "resumed:\n" << rest.out;
}

// With --failed-as, stdout keeps one line per input line.
TEST_F(MapTest, FailedAsKeepsTheOutputAlignedWithTheInput) {
  Command run = Jobctl({"map", "--failed-as", "NA", "primes"}, "5\nfive\n7\n");
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "3\nNA\n4\n");
  EXPECT_NE(run.err.find("item 2 failed: primes: expected a whole number, got 'five'"),
            std::string::npos) << run.err;
  EXPECT_EQ(Jobctl({"map", "--failed-as", "", "primes", "five", "5"}).out, "\n3\n");
}

TEST_F(MapTest, LargeStdinStreamsThroughWindows) {
  std::string input;
  const int count = 200000;
  for (int i = 0; i < count; ++i) input += std::to_string(i) + "\n";
  Command run = Jobctl({"map", "identity"}, input);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, input);
}

TEST_F(MapTest, LargeItemsAndResultsTravelInSharedMemory) {
  // Files above the inline limit go through segments both ways; identity
  // returns them byte for byte, sha256 agrees with an independent digest.
  std::vector<std::string> paths, contents;
  for (unsigned i = 0; i < 6; ++i) {
    const size_t size = i == 0 ? 10 : (i == 1 ? 16 * 1024 + 1 : (3u << 20) + i);
    contents.push_back(RandomBytes(size, i));
    paths.push_back(dir_ + "/file" + std::to_string(i));
    WriteFile(paths.back(), contents.back());
  }
  std::vector<std::string> args{"map", "sha256", "--files"};
  args.insert(args.end(), paths.begin(), paths.end());
  Command digests = Jobctl(args);
  ASSERT_EQ(digests.status, 0) << digests.err;
  std::vector<std::string> expected;
  for (const std::string& c : contents) expected.push_back(Sha256Hex(c));
  EXPECT_EQ(digests.out, Lines(expected));

  args[1] = "identity";
  Command copies = Jobctl(args);
  ASSERT_EQ(copies.status, 0) << copies.err;
  std::string all;
  for (const std::string& c : contents) all += c + "\n";
  EXPECT_TRUE(copies.out == all) << "identity changed the bytes of large items";

  // File names may come on stdin too.
  Command from_stdin = Jobctl({"map", "len", "--files"}, Lines(paths));
  ASSERT_EQ(from_stdin.status, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out.substr(0, 19), "10\n16385\n3145730\n31");
}

TEST_F(MapTest, FilesThatCannotBeReadFailAloneLikeSha256sum) {
  WriteFile(dir_ + "/a", "a");
  WriteFile(dir_ + "/b", "b");
  Command run = Jobctl({"map", "sha256", "--files", dir_ + "/a", "/nonexistent", dir_, dir_ + "/b"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, Lines({Sha256Hex("a"), Sha256Hex("b")}));
  EXPECT_NE(run.err.find("item 2 failed: cannot read /nonexistent: No such file or directory"),
            std::string::npos) << run.err;
  EXPECT_NE(run.err.find("item 3 failed: cannot read " + dir_ + ": it is a directory"),
            std::string::npos) << run.err;
  EXPECT_NE(run.err.find("2 of 4 items failed"), std::string::npos) << run.err;

  // Such items never reach a worker, so a function that kills workers cannot.
  mkfifo((dir_ + "/fifo").c_str(), 0600);
  Command skipped = Jobctl({"map", "crash", "--files", "/nonexistent", dir_ + "/fifo"});
  EXPECT_EQ(skipped.status, 1);
  EXPECT_NE(skipped.err.find("cannot read " + dir_ + "/fifo: not a regular file"),
            std::string::npos) << skipped.err;
  Client client = Connect();
  Result<wire::StatusReport> report = client.Status();
  for (const auto& worker : report->pools(0).workers()) EXPECT_EQ(worker.restarts(), 0u);
}

TEST_F(MapTest, FilesWithoutASizeAreReadToTheEnd) {
  const std::string version = ReadFile("/proc/version");
  ASSERT_FALSE(version.empty());
  Command run = Jobctl({"map", "sha256", "--files", "/proc/version"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, Sha256Hex(version) + "\n");
}

TEST_F(MapTest, AClientClosedRightAfterMapLeavesNoJobBehind) {
  // Each Map releases its job, and the Release leaves before the connection
  // closes: this process lives on, so jobd would otherwise keep each job (and
  // its segments) until the process exits.
  for (int i = 0; i < 20; ++i) {
    Client client = Connect();
    Result<std::vector<std::string>> results = client.Map("len", {"a", "bb"});
    ASSERT_TRUE(results.ok()) << results.message();
  }
  EXPECT_TRUE(Eventually([&] { return RunningJobs() == 0; }, 2000))
      << RunningJobs() << " jobs left of 20 clients that are gone";
}

TEST_F(MapTest, ItemsAlreadyReadAreSentWithoutWaitingForMoreInput) {
  // A writer that stops writing but keeps stdin open (tail -f): every line it
  // wrote must still be mapped, not held back until the next write.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const int count = 20000;
  std::atomic<int> delivered{0};
  std::atomic<bool> all_before_close{false};
  std::thread writer([&] {
    std::string lines;
    for (int i = 0; i < count; ++i) lines += std::to_string(i) + "\n";
    for (size_t done = 0; done < lines.size();) {
      const ssize_t n = write(fds[1], lines.data() + done, lines.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    for (int i = 0; i < 500 && delivered < count; ++i) usleep(10000);
    all_before_close = delivered == count;
    close(fds[1]);
  });
  Client client = Connect();
  DelimitedSource source(fds[0], '\n');
  Result<JobSummary> summary = client.Map("identity", source, {}, [&](const ItemResult&) {
    ++delivered;
    return Status();
  });
  writer.join();
  close(fds[0]);
  ASSERT_TRUE(summary.ok()) << summary.message();
  EXPECT_TRUE(all_before_close) << delivered << " of " << count << " results before stdin closed";
}

TEST_F(MapTest, UnorderedLargeResultsOfOneTaskAllArrive) {
  // Many large results share a task's output segment; delivering them one by
  // one must not remove it early.
  std::vector<std::string> args{"map", "identity", "--unordered", "--chunksize", "50", "--files"};
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string content = std::to_string(i) + std::string(20000, 'x');
    WriteFile(dir_ + "/f" + std::to_string(i), content);
    args.push_back(dir_ + "/f" + std::to_string(i));
    expected += content + "\n";
  }
  Command run = Jobctl(args);
  ASSERT_EQ(run.status, 0) << run.err.substr(0, 2000);
  EXPECT_EQ(run.out.size(), expected.size());
}

TEST_F(MapTest, AClientMapsAgainAfterAMapItBrokeOff) {
  Client client = Connect();
  std::vector<std::string> items(5000, "1");
  MapOptions options;
  options.chunksize = 1;
  int seen = 0;
  VectorSource source(items);
  Result<JobSummary> broken = client.Map("len", source, options, [&](const ItemResult&) {
    return ++seen == 10 ? Status::Error("enough") : Status();
  });
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.message(), "enough");
  // Results of the broken-off job may still be queued: the next calls skip them.
  Result<std::vector<std::string>> again = client.Map("len", {"abc", "de"});
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(*again, (std::vector<std::string>{"3", "2"}));
  EXPECT_TRUE(client.Status().ok());

  int calls = 0;
  VectorSource more(items);
  Result<JobSummary> interrupted = client.Map("len", more, options, [&](const ItemResult&) {
    if (++calls == 3) Client::Interrupt();
    return Status();
  });
  ASSERT_FALSE(interrupted.ok());
  EXPECT_NE(interrupted.message().find("interrupted"), std::string::npos);
  EXPECT_TRUE(client.Map("len", {"x"}).ok()) << "an interrupt stops one Map, not all later ones";
  for (int i = 0; i < 100 && RunningJobs() > 0; ++i) usleep(20000);
  EXPECT_EQ(RunningJobs(), 0) << "broken-off jobs are released";
}

TEST_F(MapTest, SupervisorNeverHoldsPayloads) {
  // 3 x 64 MiB through sha256 and identity: the supervisor's peak memory stays
  // far below one payload, because payload bytes never pass through it.
  std::vector<std::string> paths;
  for (unsigned i = 0; i < 3; ++i) {
    paths.push_back(dir_ + "/big" + std::to_string(i));
    WriteFile(paths.back(), RandomBytes(64u << 20, i));
  }
  std::vector<std::string> args{"map", "identity", "--files"};
  args.insert(args.end(), paths.begin(), paths.end());
  Command run = Jobctl(args);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out.size(), 3 * ((64u << 20) + 1));
  const std::string status = ReadFile("/proc/" + std::to_string(daemon_pid_) + "/status");
  const size_t at = status.find("VmHWM:");
  ASSERT_NE(at, std::string::npos);
  const long peak_kib = std::atol(status.c_str() + at + 6);
  EXPECT_LT(peak_kib, 32 * 1024) << "the supervisor's peak RSS suggests it held a payload";
  for (const std::string& path : paths) std::filesystem::remove(path);
}

TEST_F(MapTest, FunctionsStatusAndPing) {
  Command functions = Jobctl({"functions"});
  ASSERT_EQ(functions.status, 0) << functions.err;
  for (const char* name : {"sha256", "identity", "len", "primes", "sleep", "fail", "crash"}) {
    EXPECT_NE(functions.out.find(std::string("  ") + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(functions.out.find("pool four:"), std::string::npos);
  Command json = Jobctl({"functions", "--json"});
  EXPECT_NE(json.out.find("\"name\": \"primes\""), std::string::npos) << json.out;

  Command status = Jobctl({"status"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_NE(status.out.find("pool cpu (default): 2 workers, retries 2"), std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("pool four: 4 workers"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("0 running jobs"), std::string::npos) << status.out;
  Command status_json = Jobctl({"status", "--json"});
  EXPECT_NE(status_json.out.find("\"default_pool\": \"cpu\""), std::string::npos);

  Command ping = Jobctl({"ping"});
  EXPECT_EQ(ping.status, 0);
  EXPECT_NE(ping.out.find("jobd (pid " + std::to_string(daemon_pid_) + ") answers"),
            std::string::npos) << ping.out;
}

TEST_F(MapTest, StatusShowsARunningJob) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, Lines(std::vector<std::string>(20, "100")));
  const pid_t pid = Spawn({Bin("jobctl"), "map", "--chunksize", "1", "sleep"}, in, out, Env());
  pids_.insert(pid);
  // Until a worker has taken a task of the job (the job may show up first).
  Command status;
  for (int i = 0; i < 100; ++i) {
    status = Jobctl({"status"});
    if (status.out.find("busy") != std::string::npos) break;
    usleep(20000);
  }
  EXPECT_NE(status.out.find("1 running jobs"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("sleep"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("busy"), std::string::npos) << status.out;
  int wait_status = 0;
  waitpid(pid, &wait_status, 0);
  EXPECT_EQ(WEXITSTATUS(wait_status), 0);
}

// An item that comes alone goes to an idle worker, not to the back of a busy
// one's queue: once `sleep 1` items have taught jobd that sleep costs ~1 ms,
// a worker busy with a 500 ms item still has credit for another, but the item
// that comes 0.2 s later runs at once on the idle one.
TEST_F(MapTest, AnItemThatComesAloneGoesToAnIdleWorker) {
  ASSERT_EQ(Jobctl({"map", "sleep", "1", "1", "1", "1"}).status, 0);
  Command run = RunCommand(
      {"/bin/sh", "-c", "(echo 500; sleep 0.2; echo 1) | " + Bin("jobctl") + " map sleep --unordered"},
      "", Env());
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "1\n500\n") << "the second item waited behind the first";
}

// A job is shown as what it runs: a stream is not an "exec".
TEST_F(MapTest, StatusNamesWhatAJobRuns) {
  const std::string in = dir_ + "/in", out = dir_ + "/out";
  WriteFile(in, Lines(std::vector<std::string>(4, "x")));
  const pid_t pid = Spawn({Bin("jobctl"), "map", "--stream", "sh -c 'sleep 3; cat'"}, in, out, Env());
  pids_.insert(pid);
  Command status;
  for (int i = 0; i < 100; ++i) {
    status = Jobctl({"status", "--json"});
    if (status.out.find("\"function\": \"stream sh\"") != std::string::npos) break;
    usleep(20000);
  }
  EXPECT_NE(status.out.find("\"function\": \"stream sh\""), std::string::npos) << status.out;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace jobd::testing
