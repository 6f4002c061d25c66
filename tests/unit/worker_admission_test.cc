#include "daemon/worker_admission.h"

#include <gtest/gtest.h>

namespace jobd {
namespace {

ucred Credentials(pid_t pid, uid_t uid) {
  ucred credentials{};
  credentials.pid = pid;
  credentials.uid = uid;
  return credentials;
}

wire::FromWorker Hello(const std::string& secret) {
  wire::FromWorker hello;
  hello.mutable_hello()->set_secret(secret);
  return hello;
}

TEST(WorkerAdmissionTest, OnlyTheWorkersOwnProcessWithItsSecretIsTaken) {
  const ExpectedWorker fresh{100, 1000, "s3cret", false};
  const wire::FromWorker hello = Hello("s3cret");
  EXPECT_TRUE(AdmitWorkerMessage(fresh, Credentials(100, 1000), &hello).take);

  // Someone else under its routing id: dropped, and the worker is not blamed.
  for (const ucred& other : {Credentials(101, 1000), Credentials(100, 1001)}) {
    const Admission a = AdmitWorkerMessage(fresh, other, &hello);
    EXPECT_FALSE(a.take);
    EXPECT_FALSE(a.replace);
    EXPECT_EQ(a.why, "a message under the routing id of worker pid 100");
  }
  EXPECT_FALSE(AdmitWorkerMessage(fresh, std::nullopt, &hello).take);

  // The worker's own process, out of line: refused, and the worker replaced.
  const wire::FromWorker guess = Hello("s3creT");
  const wire::FromWorker empty = Hello("");
  wire::FromWorker results;
  results.mutable_results();
  const ExpectedWorker ready{100, 1000, "s3cret", true};
  const std::pair<Admission, std::string> refused[] = {
      {AdmitWorkerMessage(fresh, Credentials(100, 1000), &guess), "a Hello without the secret"},
      {AdmitWorkerMessage(fresh, Credentials(100, 1000), &empty), "a Hello without the secret"},
      {AdmitWorkerMessage(fresh, Credentials(100, 1000), &results), "results before its Hello"},
      {AdmitWorkerMessage(ready, Credentials(100, 1000), &hello), "a second Hello"},
      {AdmitWorkerMessage(fresh, Credentials(100, 1000), nullptr), "does not decode"},
  };
  for (const auto& [admission, why] : refused) {
    EXPECT_FALSE(admission.take) << why;
    EXPECT_TRUE(admission.replace) << why;
    EXPECT_NE(admission.why.find(why), std::string::npos) << admission.why;
  }
  EXPECT_TRUE(AdmitWorkerMessage(ready, Credentials(100, 1000), &results).take);
}

TEST(WorkerAdmissionTest, SecretsCompareWhole) {
  EXPECT_TRUE(SameSecret("abc", "abc"));
  EXPECT_FALSE(SameSecret("abc", "abd"));
  EXPECT_FALSE(SameSecret("abc", "ab"));
  EXPECT_FALSE(SameSecret("", "")) << "no secret is never a match";
}

}  // namespace
}  // namespace jobd
