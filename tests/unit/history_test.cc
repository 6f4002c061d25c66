#include "daemon/history.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace jobd {
namespace {

std::string ReadAll(const std::string& path) {
  std::string text;
  if (FILE* file = std::fopen(path.c_str(), "r")) {
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) text.append(buffer, n);
    std::fclose(file);
  }
  return text;
}

wire::JobRecord Record(uint64_t id) {
  wire::JobRecord record;
  record.set_id(id);
  return record;
}

TEST(JobHistoryTest, KeepsTheNewestUpToItsCapacityNewestFirst) {
  JobHistory history(2);
  for (uint64_t id = 1; id <= 3; ++id) history.Add(Record(id));
  ASSERT_EQ(history.records().size(), 2u);
  EXPECT_EQ(history.records()[0].id(), 3u);
  EXPECT_EQ(history.records()[1].id(), 2u);
  EXPECT_EQ(history.Find(1), nullptr);
  ASSERT_NE(history.Find(2), nullptr);
  history.set_capacity(1);  // a reload with a smaller job_history
  EXPECT_EQ(history.records().size(), 1u);
  EXPECT_EQ(history.Find(2), nullptr);
  history.set_capacity(0);
  history.Add(Record(4));
  EXPECT_TRUE(history.records().empty());
}

// The file a history is kept in, opened as jobd opens it.
UniqueFd HistoryFile(const std::string& path) {
  return UniqueFd(open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
}

TEST(JobHistoryTest, AFileKeepsItAcrossRestartsAndStaysBounded) {
  const std::string path = "/tmp/jobd-history-test-" + std::to_string(getpid());
  unlink(path.c_str());
  {
    JobHistory history(3);
    history.Load(HistoryFile(path));
    for (uint64_t id = 1; id <= 10; ++id) history.Add(Record(id));
  }
  JobHistory again(3);
  again.Load(HistoryFile(path));
  ASSERT_EQ(again.records().size(), 3u);
  EXPECT_EQ(again.records()[0].id(), 10u);
  EXPECT_EQ(again.records()[2].id(), 8u);
  EXPECT_EQ(again.last_id(), 10u);
  std::string text = ReadAll(path);
  EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 6) << "rewritten at twice its capacity";
  // A torn last line (jobd killed while writing) is skipped.
  { UniqueFd fd = HistoryFile(path); (void)!write(fd.get(), "{\"id\": \"11", 11); }
  JobHistory torn(3);
  torn.Load(HistoryFile(path));
  EXPECT_EQ(torn.records()[0].id(), 10u);
  unlink(path.c_str());
}

TEST(JobHistoryTest, ARecordSaysHowTheJobEndedAndWhy) {
  Job job;
  job.id = 7;
  job.spec.pool = "cpu";
  job.spec.function = "len";
  job.spec.client_pid = 42;
  job.received = 3;
  job.succeeded = 1;
  job.failed = 2;
  job.error = "its client exited";
  job.first_errors = {{0, "boom"}, {2, "bang"}};
  const wire::JobRecord record = RecordOf(job, JobEnding::kCancelled, true);
  EXPECT_EQ(record.state(), "cancelled");
  EXPECT_EQ(record.error(), "its client exited");
  EXPECT_EQ(record.function(), "len");  // (the job's function)
  ASSERT_EQ(record.errors_size(), 2);
  EXPECT_EQ(record.errors(1).index(), 2u);
  EXPECT_EQ(record.errors(1).error(), "bang");
  EXPECT_EQ(RecordOf(job, JobEnding::kFailed, false).errors_size(), 0);
  EXPECT_EQ(RecordOf(job, JobEnding::kFailed, false).state(), "failed");
}

TEST(JobHistoryTest, CommandLineOfAProcessJoinsItsArguments) {
  const std::string self = CommandLineOf(getpid());
  EXPECT_NE(self.find("unit_tests"), std::string::npos) << self;
  EXPECT_EQ(CommandLineOf(999999999), "");
}

}  // namespace
}  // namespace jobd
