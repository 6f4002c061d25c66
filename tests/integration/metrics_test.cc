// Prometheus metrics: `jobctl metrics` and GET /metrics on metrics_listen,
// checked with promtool (Debian's prometheus) and against what jobd did.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

#include "daemon_fixture.h"

namespace jobd::testing {
namespace {

class MetricsTest : public DaemonTest {
 protected:
  std::string Config() const override {
    return DaemonTest::Config() + "metrics_listen: 127.0.0.1:0\n";
  }
  // The port jobd serves metrics on, from its log.
  int Port() const {
    std::smatch found;
    const std::string log = Log();
    if (!std::regex_search(log, found, std::regex("serving metrics at http://127.0.0.1:(\\d+)/metrics"))) {
      return 0;
    }
    return std::stoi(found[1]);
  }
  // `request` sent to the metrics port; what came back until jobd closed.
  std::string Http(const std::string& request) const {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(Port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string answer;
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
    }
    close(fd);
    return answer;
  }
};

// The value of the sample `line` starts with, or -1.
double Sample(const std::string& text, const std::string& line) {
  const size_t at = text.find("\n" + line + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + line.size() + 2));
}

TEST_F(MetricsTest, JobctlMetricsAndTheHttpEndpointShowWhatJobdDidInPrometheusFormat) {
  ASSERT_GT(Port(), 0) << Log();
  Command failing = Jobctl({"map", "--shell", "--exec", "test {} != 3", "1", "2", "3"});
  EXPECT_EQ(failing.status, 1);
  EXPECT_EQ(Jobctl({"map", "len", "a", "bb"}).out, "1\n2\n");
  const std::string big(100000, 'x');
  EXPECT_EQ(Jobctl({"map", "len", big}).out, "100000\n");

  Command metrics = Jobctl({"metrics"});
  ASSERT_EQ(metrics.status, 0) << metrics.err;
  const std::string& text = metrics.out;
  EXPECT_EQ(Sample(text, R"(jobd_items_succeeded_total{pool="cpu",function="exec"})"), 2) << text;
  EXPECT_EQ(Sample(text, R"(jobd_items_failed_total{pool="cpu",function="exec"})"), 1) << text;
  EXPECT_EQ(Sample(text, R"(jobd_items_succeeded_total{pool="cpu",function="len"})"), 3) << text;
  EXPECT_EQ(Sample(text, R"(jobd_worker_starts_total{pool="four"})"), 4) << text;
  EXPECT_EQ(Sample(text, R"(jobd_workers{pool="cpu",state="idle"})"), 2) << text;
  EXPECT_GE(Sample(text, R"(jobd_payload_bytes_total{pool="cpu",way="shared_memory"})"), 100000)
      << text;
  EXPECT_EQ(Sample(text, R"(jobd_job_duration_seconds_count{pool="cpu"})"), 3) << text;
  EXPECT_EQ(Sample(text, R"(jobd_job_duration_seconds_bucket{pool="cpu",le="+Inf"})"), 3) << text;
  EXPECT_GT(Sample(text, "jobd_resident_memory_bytes"), 1 << 20) << text;
  EXPECT_GT(Sample(text, "jobd_uptime_seconds"), 0) << text;

  // promtool, Prometheus' own checker, finds nothing wrong.
  WriteFile(dir_ + "/metrics.txt", text);
  Command checked = RunCommand({"/bin/sh", "-c", "promtool check metrics < " + dir_ + "/metrics.txt"});
  EXPECT_EQ(checked.status, 0) << checked.out << checked.err;

  const std::string answer = Http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\njobd_items_succeeded_total{pool=\"cpu\",function=\"len\"} 3\n"),
            std::string::npos) << answer;
  EXPECT_EQ(Http("GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Http("POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
}

TEST_F(MetricsTest, SilentOrManyConnectionsNeverHoldUpJobd) {
  ASSERT_GT(Port(), 0) << Log();
  std::vector<int> silent;
  for (int i = 0; i < 40; ++i) {  // more than it keeps open
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(Port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(send(fd, "GET /met", 8, MSG_NOSIGNAL), 8);  // and never the rest
    silent.push_back(fd);
  }
  EXPECT_EQ(Jobctl({"map", "len", "abc"}).out, "3\n");
  EXPECT_EQ(Http("GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK", 0), 0u);
  for (int fd : silent) close(fd);
}

}  // namespace
}  // namespace jobd::testing
