#include "worker/output.h"

#include <gtest/gtest.h>

#include "common/payload.h"

namespace jobd {
namespace {

// The current item's outcome, as a task of that one item returns it.
wire::Outcome Take(TaskOutput& output) {
  wire::TaskResult result;
  output.TakeOutcome(&result);
  wire::Outcome outcome;
  if (result.has_values()) {
    EXPECT_EQ(result.values().lengths_size(), 1);
    outcome.mutable_value()->set_data(result.values().data());
  } else {
    EXPECT_EQ(result.outcomes_size(), 1);
    outcome = result.outcomes(0);
  }
  return outcome;
}

TEST(OutputTest, SmallResultsInlineLargeOnesInPlaceInTheSegment) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  output.Set("tiny");
  const wire::Outcome small = Take(output);
  char* space = output.Reserve(100000);  // reserve more than it commits
  ASSERT_NE(space, nullptr);
  std::memset(space, 'a', 70000);
  output.Commit(70000);
  const wire::Outcome large = Take(output);
  output.Fail("nope");
  const wire::Outcome failed = Take(output);
  const wire::Outcome empty = Take(output);  // the function left nothing
  output.Set(std::string(kInlineLimit + 1, 'b'));
  const wire::Outcome larger = Take(output);
  output.Finish();

  EXPECT_EQ(small.value().data(), "tiny");
  ASSERT_TRUE(large.value().has_ref());
  EXPECT_EQ(large.value().ref().segment(), name);
  EXPECT_EQ(large.value().ref().offset(), 0u);
  EXPECT_EQ(large.value().ref().length(), 70000u);
  EXPECT_EQ(failed.error(), "nope");
  EXPECT_EQ(empty.error(), "the function returned no result");
  EXPECT_EQ(larger.value().ref().offset(), 70000u) << "committed bytes only";

  Result<Segment> segment = Segment::Open(name);
  ASSERT_TRUE(segment.ok()) << segment.message();
  EXPECT_EQ(segment->size(), 70000u + kInlineLimit + 1) << "cut to what was used";
  SegmentReader reader;
  EXPECT_EQ(*reader.Read(large.value()), std::string(70000, 'a'));
  EXPECT_EQ(*reader.Read(larger.value()), std::string(kInlineLimit + 1, 'b'));
  RemoveSegment(name);
}

// A segment as a warm interpreter leaves a result: `bytes` after `offset`.
std::string InterpreterSegment(const std::string& bytes, size_t offset) {
  const std::string name = NewSegmentName();
  Result<Segment> made = Segment::Create(name, offset + bytes.size());
  EXPECT_TRUE(made.ok() && made->Allocate(0, offset + bytes.size()).ok());
  std::memcpy(made->data() + offset, bytes.data(), bytes.size());
  return name;
}

bool SegmentExists(const std::string& name) { return Segment::Open(name).ok(); }

TEST(OutputTest, AnAdoptedSegmentBecomesTheTasksOwnThenLaterResultsAreCopiedAfterIt) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  const std::string first(100000, 'f'), second(90000, 's');
  const std::string first_segment = InterpreterSegment(first, 16);
  ASSERT_TRUE(output.Adopt(first_segment, 16, first.size()).ok());
  const wire::Outcome adopted = Take(output);
  const std::string second_segment = InterpreterSegment(second, 0);
  ASSERT_TRUE(output.Adopt(second_segment, 0, second.size()).ok());
  const wire::Outcome copied = Take(output);
  output.Set(std::string(kInlineLimit + 1, 'c'));
  const wire::Outcome written = Take(output);
  output.Finish();

  EXPECT_FALSE(SegmentExists(first_segment)) << "renamed";
  EXPECT_FALSE(SegmentExists(second_segment)) << "removed once copied";
  EXPECT_EQ(adopted.value().ref().segment(), name);
  EXPECT_EQ(adopted.value().ref().offset(), 16u);
  EXPECT_EQ(copied.value().ref().offset(), 16u + first.size());
  EXPECT_EQ(written.value().ref().offset(), 16u + first.size() + second.size());
  SegmentReader reader;
  EXPECT_EQ(*reader.Read(adopted.value()), first);
  EXPECT_EQ(*reader.Read(copied.value()), second);
  EXPECT_EQ(*reader.Read(written.value()), std::string(kInlineLimit + 1, 'c'));
  RemoveSegment(name);
}

TEST(OutputTest, WithoutASegmentEveryResultIsInlineAdoptedOnesToo) {
  TaskOutput output("");  // a client on another host: no shared memory
  const std::string large(100000, 'l');
  output.Set(large);
  const wire::Outcome set = Take(output);
  const std::string segment = InterpreterSegment(large, 0);
  ASSERT_TRUE(output.Adopt(segment, 0, large.size()).ok());
  const wire::Outcome adopted = Take(output);
  output.Finish();
  EXPECT_EQ(set.value().data(), large);
  EXPECT_EQ(adopted.value().data(), large);
  EXPECT_FALSE(SegmentExists(segment)) << "removed once copied";
}

TEST(OutputTest, AdoptingASegmentTooShortForTheResultFailsAndLeavesNothing) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  const std::string short_segment = InterpreterSegment(std::string(1000, 'x'), 0);
  EXPECT_FALSE(output.Adopt(short_segment, 0, 5000).ok());
  EXPECT_FALSE(output.Adopt("jobd-0-1-0000000000000000", 0, 10).ok()) << "no such segment";
  output.Finish();
  EXPECT_FALSE(SegmentExists(short_segment));
  EXPECT_FALSE(SegmentExists(name));
}

TEST(OutputTest, GrowsPastItsFirstMappingAndLeavesNoSegmentWhenUnused) {
  const std::string name = NewSegmentName();
  {
    TaskOutput output(name);
    for (int i = 0; i < 3; ++i) {
      output.Set(std::string(40 << 20, static_cast<char>('x' + i)));  // 120 MiB in all
      const wire::Outcome outcome = Take(output);
      ASSERT_TRUE(outcome.value().has_ref()) << outcome.error();
    }
  }
  Result<Segment> segment = Segment::Open(name);
  ASSERT_TRUE(segment.ok());
  EXPECT_EQ(segment->size(), 120u << 20);
  EXPECT_EQ(*segment->Slice((80u << 20) + 5, 1), "z");
  RemoveSegment(name);

  const std::string unused = NewSegmentName();
  TaskOutput inline_only(unused);
  inline_only.Set("x");
  inline_only.Finish();
  EXPECT_FALSE(Segment::Open(unused).ok());
}

TEST(OutputTest, ReservingAgainKeepsWhatWasWritten) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  char* space = output.Reserve(8);
  std::memcpy(space, "abcdefgh", 8);
  space = output.Reserve(kInlineLimit + 100);  // inline to shared memory
  std::memset(space + 8, 'x', kInlineLimit + 92);
  space = output.Reserve(200 << 20);  // past the first mapping: it may move
  EXPECT_EQ(std::string(space, 8), "abcdefgh");
  output.Commit(kInlineLimit + 100);
  const wire::Outcome grown = Take(output);
  output.Finish();
  SegmentReader reader;
  Result<std::string_view> bytes = reader.Read(grown.value());
  ASSERT_TRUE(bytes.ok()) << bytes.message();
  EXPECT_EQ(bytes->substr(0, 9), "abcdefghx");
  EXPECT_EQ(bytes->size(), kInlineLimit + 100);
  RemoveSegment(name);
}

TEST(OutputTest, EmptyAndWithdrawnResultsLeaveNoSegment) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  output.Reserve(100000);
  output.Commit(0);  // a large reservation, an empty result
  const wire::Outcome empty = Take(output);
  EXPECT_TRUE(empty.has_value() && !empty.value().has_ref() && empty.value().data().empty());
  std::memset(output.Reserve(100000), 'y', 100000);
  output.Commit(100000);
  output.Fail("changed my mind");  // committed, then failed: the space goes back
  const wire::Outcome withdrawn = Take(output);
  EXPECT_EQ(withdrawn.error(), "changed my mind");
  output.Finish();
  EXPECT_FALSE(Segment::Open(name).ok()) << "a segment nothing refers to was left";
}

TEST(OutputTest, InlineValuesArePackedUntilAnOutcomeIsNot) {
  const std::string name = NewSegmentName();
  TaskOutput output(name);
  wire::TaskResult all_inline;
  for (const char* value : {"a", "", "ccc"}) {
    output.Set(value);
    output.TakeOutcome(&all_inline);
  }
  EXPECT_EQ(all_inline.outcomes_size(), 0);
  EXPECT_EQ(all_inline.values().data(), "accc");
  EXPECT_EQ(std::vector<uint32_t>(all_inline.values().lengths().begin(),
                                  all_inline.values().lengths().end()),
            (std::vector<uint32_t>{1, 0, 3}));

  wire::TaskResult mixed;
  output.Set("a");
  output.TakeOutcome(&mixed);
  output.Fail("no");
  output.TakeOutcome(&mixed);
  output.Set("c");
  output.TakeOutcome(&mixed);
  output.Finish();
  EXPECT_FALSE(mixed.has_values());
  ASSERT_EQ(mixed.outcomes_size(), 3);
  EXPECT_EQ(mixed.outcomes(0).value().data(), "a");
  EXPECT_EQ(mixed.outcomes(1).error(), "no");
  EXPECT_EQ(mixed.outcomes(2).value().data(), "c");
}

TEST(OutputTest, CommitWithoutReserveIsAnError) {
  TaskOutput output(NewSegmentName());
  output.Commit(10);
  const wire::Outcome outcome = Take(output);
  EXPECT_NE(outcome.error().find("without reserving"), std::string::npos);
}

}  // namespace
}  // namespace jobd
