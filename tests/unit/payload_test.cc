#include "common/payload.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

namespace jobd {
namespace {

bool Exists(const std::string& name) {
  auto names = ListSegments();
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(PayloadTest, NamesCarryUidAndCreatorAndAreChecked) {
  const std::string name = NewSegmentName();
  EXPECT_TRUE(IsSegmentName(name)) << name;
  EXPECT_EQ(name.rfind("jobd-" + std::to_string(getuid()) + "-" + std::to_string(getpid()) + "-", 0), 0u);
  EXPECT_NE(NewSegmentName(), name);
  EXPECT_EQ(NewSegmentName(4242).find("-4242-"), name.find('-', 5));
  for (const char* bad : {"", "jobd-", "other-0-1-ab", "jobd-0-1-", "jobd-0--ab", "jobd-0-1-AB",
                          "jobd-0-1-a/b", "jobd-0-x-ab", "../jobd-0-1-ab"}) {
    EXPECT_FALSE(IsSegmentName(bad)) << bad;
  }
  EXPECT_FALSE(IsSegmentName("jobd-" + std::to_string(getuid() + 1) + "-1-ab"));
}

TEST(PayloadTest, CreatedSegmentIsPrivateAndReadableByName) {
  const std::string name = NewSegmentName();
  {
    Result<Segment> segment = Segment::Create(name, 100);
    ASSERT_TRUE(segment.ok()) << segment.message();
    std::memcpy(segment->data(), "hello", 5);
    struct stat st{};
    ASSERT_EQ(stat(("/dev/shm/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  Result<Segment> opened = Segment::Open(name);
  ASSERT_TRUE(opened.ok()) << opened.message();
  EXPECT_EQ(opened->size(), 100u);
  EXPECT_EQ(*opened->Slice(0, 5), "hello");
  RemoveSegment(name);
  EXPECT_FALSE(Exists(name));
  EXPECT_FALSE(Segment::Open(name).ok());
}

TEST(PayloadTest, SliceRefusesEveryRangeOutsideTheSegment) {
  const std::string name = NewSegmentName();
  Result<Segment> segment = Segment::Create(name, 64);
  ASSERT_TRUE(segment.ok());
  EXPECT_TRUE(segment->Slice(0, 64).ok());
  EXPECT_TRUE(segment->Slice(64, 0).ok());
  EXPECT_FALSE(segment->Slice(0, 65).ok());
  EXPECT_FALSE(segment->Slice(65, 0).ok());
  EXPECT_FALSE(segment->Slice(1, UINT64_MAX).ok());
  EXPECT_FALSE(segment->Slice(UINT64_MAX, 2).ok());
  const std::string error = segment->Slice(60, 10).message();
  EXPECT_NE(error.find("outside segment"), std::string::npos) << error;
  RemoveSegment(name);
}

TEST(PayloadTest, OpenRefusesNamesThatAreNotOurs) {
  Result<Segment> opened = Segment::Open("some-other-segment");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.message().find("not a jobd segment name"), std::string::npos);
}

TEST(PayloadTest, WriterInlinesSmallAndSharesLargePayloads) {
  PayloadWriter writer(1 << 20);
  wire::Payload small, large, larger;
  ASSERT_TRUE(writer.Add("tiny", &small).ok());
  EXPECT_EQ(small.data(), "tiny");
  const std::string big(kInlineLimit + 1, 'x');
  ASSERT_TRUE(writer.Add(big, &large).ok());
  ASSERT_TRUE(large.has_ref());
  ASSERT_TRUE(writer.Add(big, &larger).ok());
  EXPECT_EQ(larger.ref().segment(), large.ref().segment()) << "both fit one segment";
  EXPECT_EQ(larger.ref().offset(), big.size());
  std::vector<std::string> made = writer.TakeNewSegments();
  ASSERT_EQ(made.size(), 1u);
  EXPECT_TRUE(writer.TakeNewSegments().empty());

  SegmentReader reader;
  EXPECT_EQ(*reader.Read(small), "tiny");
  EXPECT_EQ(*reader.Read(larger), big);
  wire::Payload outside = larger;
  outside.mutable_ref()->set_offset((1 << 20) - 10);
  EXPECT_FALSE(reader.Read(outside).ok());
  RemoveSegment(made[0]);
}

TEST(PayloadTest, ReapRemovesSegmentsOfDeadCreatorsOnly) {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  const std::string orphan = NewSegmentName(child);
  const std::string ours = NewSegmentName();
  ASSERT_TRUE(Segment::Create(orphan, 10).ok());
  ASSERT_TRUE(Segment::Create(ours, 10).ok());
  EXPECT_GE(ReapOrphanSegments(), 1);
  EXPECT_FALSE(Exists(orphan));
  EXPECT_TRUE(Exists(ours));
  RemoveSegment(ours);
}

}  // namespace
}  // namespace jobd
