#include "daemon/scheduler.h"

#include "common/packed.h"
#include "common/payload.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace jobd {
namespace {

constexpr uint64_t kWorker = 1;

class SchedulerTest : public ::testing::Test {
 protected:
  Job& NewJob(const std::string& function = "f", uint32_t chunksize = 0, uint32_t retries = 2,
              uint32_t max_workers = 0) {
    JobSpec spec;
    spec.client = "client";
    spec.function = function;
    spec.pool = "cpu";
    spec.chunksize = chunksize;
    spec.retries = retries;
    spec.max_workers = max_workers;
    return scheduler_.AddJob(spec, Clock::now());
  }

  void Add(Job& job, int count, bool last = true) {
    wire::Items items;
    items.set_first_index(job.received);
    for (int i = 0; i < count; ++i) {
      items.add_items()->set_data("item" + std::to_string(job.received + i));
    }
    items.set_last(last);
    Status s = scheduler_.AddItems(job, items);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  // Completes a task successfully, each result being its item, at `ns_per_item`.
  void Succeed(const Task* task, uint64_t ns_per_item = 1000) {
    wire::TaskResult result;
    result.set_id(task->message->id());
    for (const wire::Payload& item : task->message->items()) {
      result.add_outcomes()->mutable_value()->set_data(item.data());
    }
    result.set_busy_ns(ns_per_item * task->indexes.size());
    scheduler_.Complete(task->message->id(), result);
  }

  std::vector<uint64_t> Indexes(const wire::Results& results) {
    std::vector<uint64_t> out;
    for (const wire::ItemResult& r : results.results()) out.push_back(r.index());
    return out;
  }

  Scheduler scheduler_{getpid()};
};

TEST_F(SchedulerTest, UnknownCostStartsWithOneItemThenAdapts) {
  Job& job = NewJob();
  Add(job, 100000);
  const Task* first = scheduler_.NextTask("cpu", 2, kWorker);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->indexes.size(), 1u);
  EXPECT_EQ(first->estimate_ns, 0u);
  Succeed(first, 1000);  // 1 us per item
  EXPECT_EQ(scheduler_.ItemCostNs("cpu", "f"), 1000u);
  const Task* second = scheduler_.NextTask("cpu", 2, kWorker);
  ASSERT_NE(second, nullptr);
  // 5 ms target / 1 us per item = 5000, capped at kMaxChunk.
  EXPECT_EQ(second->indexes.size(), Scheduler::kMaxChunk);
  EXPECT_EQ(second->indexes.front(), 1u);
  EXPECT_EQ(second->estimate_ns, 1000u * Scheduler::kMaxChunk);
}

TEST_F(SchedulerTest, ExpensiveItemsGetSmallChunksAndTheTailIsShared) {
  Job& job = NewJob();
  Add(job, 40);
  Succeed(scheduler_.NextTask("cpu", 2, kWorker), 2'000'000);  // 2 ms per item
  const Task* task = scheduler_.NextTask("cpu", 2, kWorker);
  EXPECT_EQ(task->indexes.size(), 2u);  // 5 ms / 2 ms
  Succeed(task, 2'000'000);
  // With cheap items, 37 queued items on 2 workers: chunks of at most 37/4.
  Succeed(scheduler_.NextTask("cpu", 2, kWorker), 1);
  Succeed(scheduler_.NextTask("cpu", 2, kWorker), 1);
  Succeed(scheduler_.NextTask("cpu", 2, kWorker), 1);
  EXPECT_LE(scheduler_.NextTask("cpu", 2, kWorker)->indexes.size(), 10u);
}

TEST_F(SchedulerTest, TasksStayBelowTheByteLimitWhateverTheChunksize) {
  Job& job = NewJob("f", 100);
  wire::Items items;
  for (int i = 0; i < 10; ++i) items.add_items()->set_data(std::string(1 << 20, 'x'));
  ASSERT_TRUE(scheduler_.AddItems(job, items).ok());
  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(task->indexes.size(), 4u);
  EXPECT_EQ(task->bytes, 4u << 20);
}

TEST_F(SchedulerTest, FixedChunksizeIsKept) {
  Job& job = NewJob("f", 7);
  Add(job, 20);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kWorker)->indexes.size(), 7u);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kWorker)->indexes.size(), 7u);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kWorker)->indexes.size(), 6u);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kWorker), nullptr);
  EXPECT_EQ(scheduler_.NextTask("other-pool", 2, kWorker), nullptr);
}

TEST_F(SchedulerTest, JobsOfAPoolTakeTurns) {
  Job& a = NewJob("f", 1);
  Job& b = NewJob("f", 1);
  Add(a, 3);
  Add(b, 3);
  std::vector<uint64_t> order;
  while (const Task* task = scheduler_.NextTask("cpu", 1, kWorker)) order.push_back(task->job);
  EXPECT_EQ(order, (std::vector<uint64_t>{a.id, b.id, a.id, b.id, a.id, b.id}));
}

TEST_F(SchedulerTest, AJobUsesNoMoreWorkersThanItsLimit) {
  Job& limited = NewJob("f", 1, 2, /*max_workers=*/1);
  Add(limited, 4);
  const Task* first = scheduler_.NextTask("cpu", 2, /*worker=*/1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, /*worker=*/2), nullptr) << "a second worker";
  const Task* second = scheduler_.NextTask("cpu", 2, /*worker=*/1);
  ASSERT_NE(second, nullptr) << "the same worker may queue";
  const uint64_t first_id = first->message->id(), second_id = second->message->id();
  // Another job may use the other worker meanwhile.
  Job& other = NewJob("f", 1);
  Add(other, 1);
  const Task* other_task = scheduler_.NextTask("cpu", 2, /*worker=*/2);
  ASSERT_NE(other_task, nullptr);
  EXPECT_EQ(other_task->job, other.id);
  // Once worker 1 holds nothing of the job, worker 2 may take it.
  Succeed(scheduler_.FindTask(first_id));
  Succeed(scheduler_.FindTask(second_id));
  const Task* moved = scheduler_.NextTask("cpu", 2, /*worker=*/2);
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved->job, limited.id);
}

TEST_F(SchedulerTest, ResultsAreDeliveredAndTheJobFinishes) {
  Job& job = NewJob("f", 2);
  Add(job, 3, /*last=*/false);
  Succeed(scheduler_.NextTask("cpu", 1, kWorker));
  auto results = scheduler_.TakeResults();
  ASSERT_EQ(results.count(job.id), 1u);
  EXPECT_EQ(Indexes(results[job.id]), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(results[job.id].results(1).outcome().value().data(), "item1");
  Succeed(scheduler_.NextTask("cpu", 1, kWorker));
  EXPECT_TRUE(scheduler_.TakeFinished().empty()) << "input not complete yet";
  Add(job, 0, /*last=*/true);
  EXPECT_EQ(scheduler_.TakeFinished(), std::vector<uint64_t>{job.id});
  EXPECT_EQ(job.succeeded, 3u);
}

TEST_F(SchedulerTest, ItemsMustArriveInSequence) {
  Job& job = NewJob();
  wire::Items items;
  items.set_first_index(5);
  items.add_items()->set_data("x");
  Status s = scheduler_.AddItems(job, items);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("expected index 0, got 5"), std::string::npos) << s.message();
  Add(job, 1, true);
  EXPECT_NE(scheduler_.AddItems(job, items).message().find("already received its last item"),
            std::string::npos);
}

TEST_F(SchedulerTest, CrashChargesOnlyTheRunningItemAndRequeuesTheRestInOrder) {
  Job& job = NewJob("f", 4, /*retries=*/2);
  Add(job, 8);
  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  const uint64_t id = task->message->id();
  scheduler_.Requeue(id, 2, "the worker was killed by SIGKILL (signal 9)", Clock::now());
  EXPECT_EQ(scheduler_.FindTask(id), nullptr);
  EXPECT_EQ(job.crashes.at(2), 1u);
  EXPECT_EQ(job.crashes.count(0), 0u);
  EXPECT_EQ(job.retried, 4u);
  EXPECT_TRUE(scheduler_.TakeResults().empty());
  const Task* again = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(again->indexes, (std::vector<uint64_t>{0, 1, 2, 3}));
}

TEST_F(SchedulerTest, AnItemThatKeepsKillingWorkersFailsAloneNamingTheCause) {
  Job& job = NewJob("f", 1, /*retries=*/1);
  Add(job, 3);
  // Item 0 kills its worker twice: one retry allowed, then it fails.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
    ASSERT_EQ(task->indexes, std::vector<uint64_t>{0});
    scheduler_.Requeue(task->message->id(), 0, "the worker was killed by SIGABRT (signal 6)",
                       Clock::now());
  }
  auto results = scheduler_.TakeResults();
  ASSERT_EQ(results[job.id].results_size(), 1);
  const std::string error = results[job.id].results(0).outcome().error();
  EXPECT_NE(error.find("killed by SIGABRT (signal 6) while running this item, 2 times"),
            std::string::npos) << error;
  EXPECT_NE(error.find("retries: 1"), std::string::npos) << error;
  Succeed(scheduler_.NextTask("cpu", 1, kWorker));
  Succeed(scheduler_.NextTask("cpu", 1, kWorker));
  EXPECT_EQ(job.failed, 1u);
  EXPECT_EQ(job.succeeded, 2u);
  EXPECT_EQ(scheduler_.TakeFinished(), std::vector<uint64_t>{job.id});
}

TEST_F(SchedulerTest, AnItemThatCrashedWaitsItsBackoffDoublingEachTime) {
  Job& job = NewJob("f", 4, /*retries=*/5);
  job.spec.retry_backoff_ms = 100;
  Add(job, 3);
  const Clock::time_point t0 = Clock::now();
  // Item 1 kills the worker: items 0 and 2 go back at once, item 1 waits 100 ms.
  scheduler_.Requeue(scheduler_.NextTask("cpu", 1, kWorker)->message->id(), 1, "killed", t0);
  ASSERT_EQ(scheduler_.NextDelayed(), t0 + std::chrono::milliseconds(100));
  const Task* rest = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(rest->indexes, (std::vector<uint64_t>{0, 2}));
  Succeed(rest);
  scheduler_.ReleaseDelayed(t0 + std::chrono::milliseconds(99));
  EXPECT_EQ(scheduler_.NextTask("cpu", 1, kWorker), nullptr);
  EXPECT_FALSE(job.finished());
  scheduler_.ReleaseDelayed(t0 + std::chrono::milliseconds(100));
  EXPECT_FALSE(scheduler_.NextDelayed().has_value());
  const Task* retry = scheduler_.NextTask("cpu", 1, kWorker);
  ASSERT_EQ(retry->indexes, std::vector<uint64_t>{1});
  // Its second crash doubles the wait.
  const Clock::time_point t1 = t0 + std::chrono::seconds(1);
  scheduler_.Requeue(retry->message->id(), 0, "killed", t1);
  EXPECT_EQ(scheduler_.NextDelayed(), t1 + std::chrono::milliseconds(200));
  scheduler_.ReleaseDelayed(t1 + std::chrono::milliseconds(200));
  Succeed(scheduler_.NextTask("cpu", 1, kWorker));
  EXPECT_EQ(job.succeeded, 3u);
  EXPECT_EQ(scheduler_.TakeFinished(), std::vector<uint64_t>{job.id});
}

TEST_F(SchedulerTest, PackedItemsTravelPackedAndNeverShareATaskWithPayloads) {
  Job& job = NewJob("f", 10, /*retries=*/2);
  wire::Items packed;
  for (const char* item : {"a", "bb", "ccc"}) AppendPacked(packed.mutable_packed(), item);
  ASSERT_TRUE(scheduler_.AddItems(job, packed).ok());
  Add(job, 2);  // one Payload each: items 3 and 4
  const Task* first = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(first->indexes, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(first->message->packed().data(), "abbccc");
  EXPECT_EQ(first->message->items_size(), 0);
  // The worker dies on item 1: all three go back, still packed.
  scheduler_.Requeue(first->message->id(), 1, "killed", Clock::now());
  const Task* again = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(again->indexes, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(again->message->packed().data(), "abbccc");
  wire::TaskResult values;
  values.set_id(again->message->id());
  for (const char* value : {"A", "BB", "CCC"}) AppendPacked(values.mutable_values(), value);
  scheduler_.Complete(again->message->id(), values);
  const Task* rest = scheduler_.NextTask("cpu", 1, kWorker);
  EXPECT_EQ(rest->indexes, (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(rest->message->items_size(), 2);
  EXPECT_FALSE(rest->message->has_packed());
  auto results = scheduler_.TakeResults();
  EXPECT_EQ(std::vector<uint64_t>(results[job.id].value_indexes().begin(),
                                  results[job.id].value_indexes().end()),
            (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(results[job.id].values().data(), "ABBCCC");
  EXPECT_EQ(job.succeeded, 3u);
}

TEST_F(SchedulerTest, UnknownRunningItemChargesNothing) {
  Job& job = NewJob("f", 1, /*retries=*/0);
  Add(job, 1);
  scheduler_.Requeue(scheduler_.NextTask("cpu", 1, kWorker)->message->id(), std::nullopt, "gone",
                     Clock::now());
  EXPECT_TRUE(job.crashes.empty());
  EXPECT_NE(scheduler_.NextTask("cpu", 1, kWorker), nullptr);
  const ItemCounts& counts = scheduler_.counts().at({"cpu", "f"});
  EXPECT_EQ(counts.tasks_retried, 1u) << "for the metrics";
  EXPECT_EQ(counts.retried, 1u);
  EXPECT_EQ(counts.tasks, 0u);
}

TEST_F(SchedulerTest, ResultsOfAnErasedJobAreDropped) {
  Job& job = NewJob("f", 1);
  const uint64_t id = job.id;
  Add(job, 2);
  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  const uint64_t task_id = task->message->id();
  wire::TaskResult result;
  result.set_id(task_id);
  result.add_outcomes()->mutable_value()->set_data("late");
  scheduler_.EraseJob(id);
  scheduler_.Complete(task_id, result);
  EXPECT_TRUE(scheduler_.TakeResults().empty());
  EXPECT_EQ(scheduler_.NextTask("cpu", 1, kWorker), nullptr);
  EXPECT_EQ(scheduler_.FindJob(id), nullptr);
}

TEST_F(SchedulerTest, WrongOutcomeCountFailsTheTaskItems) {
  Job& job = NewJob("f", 2);
  Add(job, 2);
  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  wire::TaskResult result;
  result.set_id(task->message->id());
  result.add_outcomes()->mutable_value()->set_data("only one");
  scheduler_.Complete(task->message->id(), result);
  EXPECT_EQ(job.failed, 2u);
}

TEST_F(SchedulerTest, ResultsOutsideTheTaskSegmentAreRefused) {
  Job& job = NewJob("f", 1);
  Add(job, 1);
  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  wire::TaskResult result;
  result.set_id(task->message->id());
  wire::SegmentRef* ref = result.add_outcomes()->mutable_value()->mutable_ref();
  ref->set_segment(NewSegmentName());
  ref->set_length(1);
  scheduler_.Complete(task->message->id(), result);
  auto results = scheduler_.TakeResults();
  EXPECT_NE(results[job.id].results(0).outcome().error().find("outside its segment"),
            std::string::npos);
}

TEST_F(SchedulerTest, AJobUsesOnlySegmentsItsOwnClientMadeAndAnnounced) {
  // Segments are never opened here: their names carry who made them.
  const pid_t alice = 1001, bob = 1002;
  auto job_of = [&](pid_t client) -> Job& {
    Job& job = NewJob();
    job.spec.client_pid = client;
    return job;
  };
  auto window = [](Job& job, const std::vector<std::string>& announced, const std::string& ref) {
    wire::Items items;
    items.set_first_index(job.received);
    for (const std::string& name : announced) items.add_segments(name);
    wire::SegmentRef* item = items.add_items()->mutable_ref();
    item->set_segment(ref);
    item->set_length(1);
    return items;
  };
  Job& first = job_of(alice);
  const std::string alices = NewSegmentName(alice), bobs = NewSegmentName(bob);
  wire::Items own = window(first, {alices}, alices);
  ASSERT_TRUE(scheduler_.AddItems(first, own).ok());
  wire::Items again = window(first, {}, alices);  // announced in an earlier window
  ASSERT_TRUE(scheduler_.AddItems(first, again).ok());

  Job& thief = job_of(bob);
  wire::Items unannounced = window(thief, {}, alices);
  Status s = scheduler_.AddItems(thief, unannounced);
  EXPECT_NE(s.message().find("item 1 of job 2 refers to shared-memory segment " + alices +
                             ", which its client did not create and announce for this job"),
            std::string::npos) << s.message();
  wire::Items claimed = window(thief, {alices}, alices);
  s = scheduler_.AddItems(thief, claimed);
  EXPECT_NE(s.message().find("announced shared-memory segment " + alices +
                             ", which its client (pid 1002) did not create"),
            std::string::npos) << s.message();

  // The same client's second job cannot take over its first job's segment.
  Job& second = job_of(alice);
  wire::Items shared = window(second, {alices}, alices);
  s = scheduler_.AddItems(second, shared);
  EXPECT_NE(s.message().find("which belongs to job 1"), std::string::npos) << s.message();
  EXPECT_EQ(second.received, 0u) << "a refused window adds nothing";

  // Erasing the thief's job leaves the first job's segment to it.
  scheduler_.EraseJob(thief.id);
  wire::Items bobs_own = window(second, {}, bobs);
  EXPECT_FALSE(scheduler_.AddItems(second, bobs_own).ok());
  EXPECT_EQ(first.segments, std::vector<std::string>{alices});
}

// A client on another host sends its items inline; on this host the large
// ones reach the worker in a segment of the scheduler's, and the results come
// back inline for the client. A retry takes the items back inline, and each
// segment goes when its task lands.
TEST_F(SchedulerTest, ARemoteJobsLargeItemsSitInSharedMemoryWhileTheirTaskRuns) {
  JobSpec spec;
  spec.client = "Rclient";
  spec.remote = true;
  spec.function = "identity";
  spec.pool = "cpu";
  spec.chunksize = 2;
  Job& job = scheduler_.AddJob(spec, Clock::now());
  const std::string large(kInlineLimit + 1, 'x');
  wire::Items items;
  AppendPacked(items.mutable_packed(), "small");
  AppendPacked(items.mutable_packed(), large);
  items.set_last(true);
  ASSERT_TRUE(scheduler_.AddItems(job, items).ok());

  const Task* task = scheduler_.NextTask("cpu", 1, kWorker);
  ASSERT_NE(task, nullptr);
  const std::string input = task->input_segment;
  ASSERT_FALSE(input.empty());
  ASSERT_EQ(task->message->items_size(), 2);
  EXPECT_EQ(task->message->items(0).data(), "small");
  EXPECT_EQ(task->message->items(1).ref().segment(), input);
  EXPECT_FALSE(task->message->output_segment().empty()) << "results go to shared memory too";
  SegmentReader reader;
  Result<std::string_view> shared = reader.Read(task->message->items(1));
  ASSERT_TRUE(shared.ok()) << shared.message();
  EXPECT_TRUE(*shared == large);
  reader.Clear();

  // The worker died: the items wait inline again, the segment is gone.
  scheduler_.Requeue(task->message->id(), std::nullopt, "killed", Clock::now());
  const std::vector<std::string> after_retry = ListSegments();
  EXPECT_EQ(std::count(after_retry.begin(), after_retry.end(), input), 0);
  const Task* again = scheduler_.NextTask("cpu", 1, kWorker);
  ASSERT_NE(again, nullptr);
  ASSERT_EQ(again->message->items_size(), 2);
  const std::string output = again->message->output_segment();
  const std::string again_input = again->input_segment;
  EXPECT_NE(again_input, input);

  // The worker writes the large result into the output segment.
  Result<Segment> out = Segment::Create(output, large.size());
  ASSERT_TRUE(out.ok()) << out.message();
  ASSERT_TRUE(out->Allocate(0, large.size()).ok());
  std::memcpy(out->data(), large.data(), large.size());
  wire::TaskResult result;
  result.set_id(again->message->id());
  result.add_outcomes()->mutable_value()->set_data("small");
  wire::SegmentRef* ref = result.add_outcomes()->mutable_value()->mutable_ref();
  ref->set_segment(output);
  ref->set_length(large.size());
  scheduler_.Complete(again->message->id(), result);

  auto results = scheduler_.TakeResults();
  ASSERT_EQ(results[job.id].results_size(), 2);
  EXPECT_EQ(results[job.id].results(0).outcome().value().data(), "small");
  EXPECT_TRUE(results[job.id].results(1).outcome().value().data() == large)
      << "a remote client's result travels inline";
  const std::vector<std::string> left = ListSegments();
  EXPECT_EQ(std::count(left.begin(), left.end(), again_input), 0);
  EXPECT_EQ(std::count(left.begin(), left.end(), output), 0);
}

// A node's tasks are cut to the speed measured on that node, and aim at
// longer tasks than a local worker's (each costs the head a message each way).
TEST_F(SchedulerTest, ANodesChunksFollowTheCostMeasuredOnIt) {
  constexpr uint64_t kFastNode = 100, kSlowNode = 200;
  Job& job = NewJob();
  Add(job, 100000);
  // Learned locally: 1 ms per item.
  Succeed(scheduler_.NextTask("cpu", 2, kWorker), 1'000'000);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kWorker)->indexes.size(), 5u) << "5 ms tasks here";
  const Task* fast = scheduler_.NextTask("cpu", 2, kFastNode, /*for_node=*/true);
  EXPECT_EQ(fast->indexes.size(), 20u) << "20 ms tasks for a node, at this host's cost at first";
  Succeed(fast, 500'000);  // twice as fast there
  const Task* slow = scheduler_.NextTask("cpu", 2, kSlowNode, /*for_node=*/true);
  Succeed(slow, 4'000'000);  // four times slower there
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kFastNode, true)->indexes.size(), 40u);
  EXPECT_EQ(scheduler_.NextTask("cpu", 2, kSlowNode, true)->indexes.size(), 5u);
  EXPECT_EQ(scheduler_.ItemCostNs("cpu", "f"), 1'000'000u) << "nodes do not skew this host's";
  scheduler_.ForgetNode(kSlowNode);
  EXPECT_EQ(scheduler_.NodeItemCostNs(kSlowNode, "cpu", "f"), 1'000'000u);
  EXPECT_EQ(scheduler_.NodeItemCostNs(kFastNode, "cpu", "f"), 500'000u);
}

// max_workers counts each of a node's tasks as a worker, not the node as one.
TEST_F(SchedulerTest, MaxWorkersCountsEachTaskOnANodeAsAWorker) {
  constexpr uint64_t kNode = 100;
  Job& job = NewJob("f", /*chunksize=*/1, /*retries=*/2, /*max_workers=*/2);
  Add(job, 10);
  const Task* first = scheduler_.NextTask("cpu", 4, kNode, /*for_node=*/true);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(scheduler_.NextTask("cpu", 4, kNode, true), nullptr);
  EXPECT_EQ(scheduler_.NextTask("cpu", 4, kNode, true), nullptr) << "a third worker";
  EXPECT_EQ(scheduler_.NextTask("cpu", 4, kWorker), nullptr) << "a third worker";
  Succeed(first);
  EXPECT_NE(scheduler_.NextTask("cpu", 4, kWorker), nullptr) << "one of two again";
}

}  // namespace
}  // namespace jobd
