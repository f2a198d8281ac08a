#include "flowork/agent/dispatch_queue.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

ReadyTask Task(std::string id, std::string tenant = "acme",
               v1::Priority priority = v1::PRIORITY_STANDARD) {
  ReadyTask task;
  task.id = std::move(id);
  task.agent = "writer";
  task.tenant = std::move(tenant);
  task.model = "llama";
  task.priority = priority;
  task.ready_since = kT0;
  return task;
}

ReadyTask WithAgent(ReadyTask task, std::string agent) {
  task.agent = std::move(agent);
  return task;
}

ReadyTask WithModel(ReadyTask task, std::string model, int64_t estimated_tokens = 0) {
  task.model = std::move(model);
  task.estimated_tokens = estimated_tokens;
  return task;
}

DispatchQueueOptions Unlimited() {
  DispatchQueueOptions options;
  options.max_running = 0;
  return options;
}

std::unique_ptr<DispatchQueue> MakeQueue(DispatchQueueOptions options) {
  auto queue = DispatchQueue::Create(std::move(options));
  EXPECT_TRUE(queue.ok()) << queue.status();
  return queue.ok() ? *std::move(queue) : nullptr;
}

// The id of the task popped at `now`, or "none".
std::string PopId(DispatchQueue& queue, absl::Time now = kT0) {
  std::optional<ReadyTask> task = queue.Pop(now);
  return task ? task->id : "none";
}

// Pops at `now` and finishes at once with the estimate used; "none" if nothing pops.
std::string PopAndFinish(DispatchQueue& queue, absl::Time now = kT0) {
  std::optional<ReadyTask> task = queue.Pop(now);
  if (!task) return "none";
  queue.Finish(*task, task->estimated_tokens);
  return task->id;
}

TEST(DispatchQueueTest, StrictPriorityClassesAndUnspecifiedCountsAsStandard) {
  auto queue = MakeQueue(Unlimited());
  queue->Push(Task("batch", "a", v1::PRIORITY_BATCH));
  queue->Push(Task("standard", "b", v1::PRIORITY_STANDARD));
  queue->Push(Task("unspecified", "c", v1::PRIORITY_UNSPECIFIED));
  queue->Push(Task("interactive", "d", v1::PRIORITY_INTERACTIVE));
  EXPECT_EQ(PopId(*queue), "interactive");
  EXPECT_EQ(PopId(*queue), "standard");
  EXPECT_EQ(PopId(*queue), "unspecified");
  EXPECT_EQ(PopId(*queue), "batch");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->running(), 4u);
}

TEST(DispatchQueueTest, TenantsWeightedThreeToOneGetThreeQuartersOfDispatches) {
  DispatchQueueOptions options = Unlimited();
  options.tenant_weights = {{"heavy", 3}, {"light", 1}};
  auto queue = MakeQueue(options);
  int next_id = 0;
  for (int i = 0; i < 20; ++i) {
    queue->Push(Task(absl::StrCat(next_id++), "heavy"));
    queue->Push(Task(absl::StrCat(next_id++), "light"));
  }
  std::map<std::string, int> dispatches;
  for (int i = 0; i < 10'000; ++i) {
    std::optional<ReadyTask> task = queue->Pop(kT0);
    ASSERT_TRUE(task.has_value());
    ++dispatches[task->tenant];
    queue->Finish(*task, 0);
    queue->Push(Task(absl::StrCat(next_id++), task->tenant));  // Both stay backlogged.
  }
  EXPECT_NEAR(dispatches["heavy"], 7'500, 200);
  EXPECT_NEAR(dispatches["light"], 2'500, 200);
}

TEST(DispatchQueueTest, EarliestDeadlineFirstWithinATenant) {
  auto queue = MakeQueue(Unlimited());
  ReadyTask late = Task("late");
  late.deadline = kT0 + absl::Minutes(30);
  ReadyTask none = Task("none-set");
  ReadyTask soon = Task("soon");
  soon.deadline = kT0 + absl::Minutes(10);
  ReadyTask middle = Task("middle");
  middle.deadline = kT0 + absl::Minutes(20);
  for (ReadyTask* task : {&late, &none, &soon, &middle}) queue->Push(*task);
  EXPECT_EQ(PopId(*queue), "soon");
  EXPECT_EQ(PopId(*queue), "middle");
  EXPECT_EQ(PopId(*queue), "late");
  EXPECT_EQ(PopId(*queue), "none-set");
}

TEST(DispatchQueueTest, EqualDeadlinesGoByReadySinceThenPushOrder) {
  auto queue = MakeQueue(Unlimited());
  ReadyTask second = Task("second");
  second.ready_since = kT0 + absl::Seconds(2);
  ReadyTask first = Task("first");
  first.ready_since = kT0 + absl::Seconds(1);
  ReadyTask tie_a = Task("tie-a");
  tie_a.ready_since = kT0 + absl::Seconds(3);
  ReadyTask tie_b = Task("tie-b");
  tie_b.ready_since = kT0 + absl::Seconds(3);
  for (ReadyTask* task : {&second, &first, &tie_a, &tie_b}) queue->Push(*task);
  const absl::Time now = kT0 + absl::Seconds(5);
  EXPECT_EQ(PopId(*queue, now), "first");
  EXPECT_EQ(PopId(*queue, now), "second");
  EXPECT_EQ(PopId(*queue, now), "tie-a");
  EXPECT_EQ(PopId(*queue, now), "tie-b");
}

TEST(DispatchQueueTest, BatchTaskAgesPastConstantInteractiveLoad) {
  auto queue = MakeQueue(Unlimited());  // Default aging: one class per 30 s waited.
  queue->Push(Task("batch", "acme", v1::PRIORITY_BATCH));
  // One new interactive task a second, each dispatched at once: the
  // interactive class is never empty.
  for (int second = 0; second < 60; ++second) {
    const absl::Time now = kT0 + absl::Seconds(second);
    ReadyTask interactive =
        Task(absl::StrCat("interactive-", second), "acme", v1::PRIORITY_INTERACTIVE);
    interactive.ready_since = now;
    queue->Push(interactive);
    ASSERT_EQ(PopAndFinish(*queue, now), interactive.id) << "at second " << second;
  }
  // 60 s waited: two classes up, interactive, and the oldest there.
  const absl::Time now = kT0 + absl::Seconds(60);
  ReadyTask interactive = Task("interactive-60", "acme", v1::PRIORITY_INTERACTIVE);
  interactive.ready_since = now;
  queue->Push(interactive);
  EXPECT_EQ(PopAndFinish(*queue, now), "batch");
  EXPECT_EQ(PopAndFinish(*queue, now), "interactive-60");
}

TEST(DispatchQueueTest, BatchTaskRanksAsStandardAfterOneAgingInterval) {
  DispatchQueueOptions options = Unlimited();
  options.aging_interval = absl::Seconds(10);
  auto queue = MakeQueue(options);
  queue->Push(Task("batch", "acme", v1::PRIORITY_BATCH));
  ReadyTask standard = Task("standard");
  standard.ready_since = kT0 + absl::Seconds(1);
  queue->Push(standard);
  ReadyTask standard_2 = Task("standard-2");
  standard_2.ready_since = kT0 + absl::Seconds(1);
  queue->Push(standard_2);
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(9)), "standard");
  // At 10 s the batch task is standard and older than standard-2.
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(10)), "batch");
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(10)), "standard-2");
}

TEST(DispatchQueueTest, ZeroAgingIntervalDisablesAging) {
  DispatchQueueOptions options = Unlimited();
  options.aging_interval = absl::ZeroDuration();
  auto queue = MakeQueue(options);
  queue->Push(Task("batch", "acme", v1::PRIORITY_BATCH));
  ReadyTask standard = Task("standard");
  standard.ready_since = kT0 + absl::Hours(10);
  queue->Push(standard);
  EXPECT_EQ(PopId(*queue, kT0 + absl::Hours(24)), "standard");
}

TEST(DispatchQueueTest, AgentLimitMakesItsTasksWaitWithoutHoldingOtherAgents) {
  DispatchQueueOptions options = Unlimited();
  options.max_running_per_agent = {{"slow", 1}};
  auto queue = MakeQueue(options);
  queue->Push(WithAgent(Task("slow-1"), "slow"));
  queue->Push(WithAgent(Task("slow-2"), "slow"));
  queue->Push(WithAgent(Task("fast-1"), "fast"));
  std::optional<ReadyTask> slow_1 = queue->Pop(kT0);
  ASSERT_TRUE(slow_1.has_value());
  EXPECT_EQ(slow_1->id, "slow-1");
  EXPECT_EQ(PopId(*queue), "fast-1");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->size(), 1u);  // Waiting, not failed.
  EXPECT_EQ(queue->NextWakeup(kT0), absl::InfiniteFuture());
  queue->Finish(*slow_1, 0);
  EXPECT_EQ(queue->NextWakeup(kT0), kT0);
  EXPECT_EQ(PopId(*queue), "slow-2");
}

TEST(DispatchQueueTest, DefaultAgentLimitAppliesToAgentsWithoutAnEntry) {
  DispatchQueueOptions options = Unlimited();
  options.default_max_running_per_agent = 1;
  options.max_running_per_agent = {{"wide", 2}};
  auto queue = MakeQueue(options);
  for (const char* id : {"wide-1", "wide-2", "wide-3"}) queue->Push(WithAgent(Task(id), "wide"));
  for (const char* id : {"other-1", "other-2"}) queue->Push(WithAgent(Task(id), "other"));
  EXPECT_EQ(PopId(*queue), "wide-1");
  EXPECT_EQ(PopId(*queue), "wide-2");
  EXPECT_EQ(PopId(*queue), "other-1");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->running(), 3u);
}

TEST(DispatchQueueTest, BlockedTenantDoesNotBlockAnotherEvenOfLowerClass) {
  DispatchQueueOptions options = Unlimited();
  options.max_running_per_tenant = {{"busy", 1}};
  auto queue = MakeQueue(options);
  queue->Push(Task("busy-1", "busy", v1::PRIORITY_INTERACTIVE));
  queue->Push(Task("busy-2", "busy", v1::PRIORITY_INTERACTIVE));
  queue->Push(Task("calm-1", "calm", v1::PRIORITY_BATCH));
  std::optional<ReadyTask> busy_1 = queue->Pop(kT0);
  ASSERT_TRUE(busy_1.has_value());
  EXPECT_EQ(busy_1->id, "busy-1");
  EXPECT_EQ(PopId(*queue), "calm-1");
  EXPECT_EQ(PopId(*queue), "none");
  queue->Finish(*busy_1, 0);
  EXPECT_EQ(PopId(*queue), "busy-2");
}

TEST(DispatchQueueTest, GlobalLimitMakesWorkWaitUntilAFinish) {
  DispatchQueueOptions options;
  options.max_running = 2;
  auto queue = MakeQueue(options);
  for (const char* id : {"a", "b", "c"}) queue->Push(Task(id));
  std::optional<ReadyTask> a = queue->Pop(kT0);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(PopId(*queue), "b");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), absl::InfiniteFuture());
  EXPECT_EQ(queue->running(), 2u);
  queue->Finish(*a, 0);
  EXPECT_EQ(queue->running(), 1u);
  EXPECT_EQ(PopId(*queue), "c");
}

TEST(DispatchQueueTest, BlockedTenantKeepsItsPlaceButBanksNoBurst) {
  DispatchQueueOptions options = Unlimited();
  options.max_running_per_tenant = {{"blocked", 1}};
  auto queue = MakeQueue(options);
  for (int i = 0; i < 20; ++i) {
    queue->Push(Task(absl::StrCat("blocked-", i), "blocked"));
    queue->Push(Task(absl::StrCat("other-", i), "other"));
  }
  std::optional<ReadyTask> first = queue->Pop(kT0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->tenant, "blocked");
  // While "blocked" runs its one task, only "other" dispatches.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(PopAndFinish(*queue), absl::StrCat("other-", i));
  queue->Finish(*first, 0);
  // Freed, it is next in line; then the two alternate again.
  EXPECT_EQ(PopAndFinish(*queue), "blocked-1");
  std::map<std::string, int> dispatches;
  for (int i = 0; i < 10; ++i) {
    std::optional<ReadyTask> task = queue->Pop(kT0);
    ASSERT_TRUE(task.has_value());
    ++dispatches[task->tenant];
    queue->Finish(*task, 0);
  }
  EXPECT_EQ(dispatches["blocked"], 5);
  EXPECT_EQ(dispatches["other"], 5);
}

TEST(DispatchQueueTest, RequestsPerMinuteBudgetRefillsContinuously) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.requests_per_minute = 2}}};
  auto queue = MakeQueue(options);
  for (const char* id : {"m-1", "m-2", "m-3"}) queue->Push(Task(id));
  queue->Push(WithModel(Task("other-model"), "mistral"));
  EXPECT_EQ(PopAndFinish(*queue), "m-1");
  EXPECT_EQ(PopAndFinish(*queue), "m-2");
  // The bucket (2 requests) is empty; another model is not held up.
  EXPECT_EQ(PopAndFinish(*queue), "other-model");
  EXPECT_EQ(PopAndFinish(*queue), "none");
  // One request refills every 30 s.
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(30));
  EXPECT_EQ(PopAndFinish(*queue, kT0 + absl::Seconds(30) - absl::Nanoseconds(1)), "none");
  EXPECT_EQ(PopAndFinish(*queue, kT0 + absl::Seconds(30)), "m-3");
  EXPECT_EQ(queue->NextWakeup(kT0 + absl::Seconds(30)), absl::InfiniteFuture());
}

TEST(DispatchQueueTest, TokensPerMinuteBudgetRefillsAndNextWakeupIsExact) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.tokens_per_minute = 6'000}}};  // 100 tokens/s.
  auto queue = MakeQueue(options);
  queue->Push(WithModel(Task("big"), "llama", 6'000));
  queue->Push(WithModel(Task("small"), "llama", 500));
  EXPECT_EQ(PopId(*queue), "big");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(5));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(5) - absl::Nanoseconds(1)), "none");
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(5)), "small");
}

TEST(DispatchQueueTest, TaskOverAWholeBucketWaitsForAFullOneThenDrivesItNegative) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.tokens_per_minute = 6'000}}};
  auto queue = MakeQueue(options);
  queue->Push(WithModel(Task("half"), "llama", 3'000));
  queue->Push(WithModel(Task("huge"), "llama", 9'000));
  queue->Push(WithModel(Task("zero"), "llama", 0));
  EXPECT_EQ(PopId(*queue), "half");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(30));  // Full again.
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(30)), "huge");
  // 6,000 - 9,000 = -3,000: even a zero-token task waits 30 s.
  EXPECT_EQ(queue->NextWakeup(kT0 + absl::Seconds(30)), kT0 + absl::Seconds(60));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(60)), "zero");
}

TEST(DispatchQueueTest, SmallerTasksDoNotOvertakeALargerOneOnTheSameModel) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.tokens_per_minute = 6'000}}};
  auto queue = MakeQueue(options);
  queue->Push(WithModel(Task("first", "a"), "llama", 5'000));
  EXPECT_EQ(PopId(*queue), "first");  // 1,000 left.
  // Tenant b's turn comes first (a was just served): "large" ranks before
  // "small", which would fit the 1,000 left but waits behind it.
  queue->Push(WithModel(Task("large", "b"), "llama", 3'000));
  queue->Push(WithModel(Task("small", "a"), "llama", 500));
  queue->Push(WithModel(Task("elsewhere", "a"), "mistral", 500));
  EXPECT_EQ(PopId(*queue), "elsewhere");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(20));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(20)), "large");
  EXPECT_EQ(queue->NextWakeup(kT0 + absl::Seconds(20)), kT0 + absl::Seconds(25));
}

TEST(DispatchQueueTest, FinishRefundsUnusedTokensAndChargesAnOverrun) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.tokens_per_minute = 6'000}}};  // 100 tokens/s.
  auto queue = MakeQueue(options);
  queue->Push(WithModel(Task("big"), "llama", 6'000));
  queue->Push(WithModel(Task("medium"), "llama", 3'000));
  std::optional<ReadyTask> big = queue->Pop(kT0);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(30));
  queue->Finish(*big, 1'200);  // 4,800 back: the bucket holds 4,800.
  EXPECT_EQ(queue->NextWakeup(kT0), kT0);
  std::optional<ReadyTask> medium = queue->Pop(kT0);  // 1,800 left.
  ASSERT_TRUE(medium.has_value());
  EXPECT_EQ(medium->id, "medium");
  queue->Finish(*medium, 4'800);  // 1,800 more than estimated: empty.
  queue->Push(WithModel(Task("next"), "llama", 600));
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(6));
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(6));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(6)), "next");
}

TEST(DispatchQueueTest, OverrunIsChargedAgainstTheBucketAsOfTheNextPop) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.tokens_per_minute = 6'000}}};
  auto queue = MakeQueue(options);
  queue->Push(WithModel(Task("first"), "llama", 1'000));
  std::optional<ReadyTask> first = queue->Pop(kT0);
  ASSERT_TRUE(first.has_value());
  queue->Finish(*first, 7'000);  // 6,000 over.
  queue->Push(WithModel(Task("second"), "llama", 3'000));
  // Two minutes later the bucket had refilled; the overrun empties it.
  const absl::Time later = kT0 + absl::Minutes(2);
  EXPECT_EQ(PopId(*queue, later), "none");
  EXPECT_EQ(queue->NextWakeup(later), later + absl::Seconds(30));
}

TEST(DispatchQueueTest, BackOffModelHoldsOnlyThatModelUntilTheTime) {
  auto queue = MakeQueue(Unlimited());
  queue->BackOffModel("llama", kT0 + absl::Seconds(20));
  queue->BackOffModel("llama", kT0 + absl::Seconds(10));  // Earlier: changes nothing.
  queue->Push(Task("llama-task"));
  queue->Push(WithModel(Task("mistral-task"), "mistral"));
  EXPECT_EQ(PopId(*queue), "mistral-task");
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(20));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(19)), "none");
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(20)), "llama-task");
  // Over: the next one starts at once, and a new backoff applies afresh.
  queue->Push(Task("llama-2"));
  queue->Push(Task("llama-3"));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(20)), "llama-2");
  queue->BackOffModel("llama", kT0 + absl::Seconds(30));
  EXPECT_EQ(queue->NextWakeup(kT0 + absl::Seconds(20)), kT0 + absl::Seconds(30));
}

TEST(DispatchQueueTest, NextWakeupIsTheEarliestOverBlockedModels) {
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.requests_per_minute = 1}}};
  auto queue = MakeQueue(options);
  EXPECT_EQ(queue->NextWakeup(kT0), absl::InfiniteFuture());  // Nothing waits.
  queue->Push(Task("llama-1"));
  queue->Push(Task("llama-2"));
  queue->Push(WithModel(Task("mistral-1"), "mistral"));
  EXPECT_EQ(queue->NextWakeup(kT0), kT0);  // Something may start now.
  EXPECT_EQ(PopId(*queue), "llama-1");
  queue->BackOffModel("mistral", kT0 + absl::Seconds(45));
  EXPECT_EQ(PopId(*queue), "none");
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(45));
  EXPECT_EQ(PopId(*queue, kT0 + absl::Seconds(45)), "mistral-1");
  EXPECT_EQ(queue->NextWakeup(kT0 + absl::Seconds(45)), kT0 + absl::Seconds(60));
}

TEST(DispatchQueueTest, NextWakeupIgnoresBudgetsOfTasksHeldByConcurrency) {
  DispatchQueueOptions options = Unlimited();
  options.max_running_per_agent = {{"writer", 1}};
  options.model_budgets = {{"llama", {.requests_per_minute = 1}}};
  auto queue = MakeQueue(options);
  queue->Push(Task("a"));
  queue->Push(Task("b"));
  std::optional<ReadyTask> a = queue->Pop(kT0);
  ASSERT_TRUE(a.has_value());
  // "b" waits for its agent first; a budget refill alone would not start it.
  EXPECT_EQ(queue->NextWakeup(kT0), absl::InfiniteFuture());
  queue->Finish(*a, 0);
  EXPECT_EQ(queue->NextWakeup(kT0), kT0 + absl::Seconds(60));
}

TEST(DispatchQueueTest, RemoveTakesOutOnlyQueuedTasks) {
  auto queue = MakeQueue(Unlimited());
  for (const char* id : {"a", "b", "c"}) queue->Push(Task(id));
  EXPECT_TRUE(queue->Remove("b"));
  EXPECT_FALSE(queue->Remove("b"));
  EXPECT_FALSE(queue->Remove("unknown"));
  EXPECT_EQ(queue->size(), 2u);
  EXPECT_EQ(PopId(*queue), "a");
  EXPECT_FALSE(queue->Remove("a"));  // Running, not queued.
  EXPECT_EQ(queue->running(), 1u);
  EXPECT_TRUE(queue->Remove("c"));
  EXPECT_EQ(queue->size(), 0u);
  EXPECT_EQ(PopId(*queue), "none");
  queue->Push(Task("d", "fresh-tenant"));
  EXPECT_EQ(PopId(*queue), "d");
}

TEST(DispatchQueueTest, PushRefusesAnIdAlreadyQueuedOrRunning) {
  auto queue = MakeQueue(Unlimited());
  EXPECT_TRUE(queue->Push(Task("a")));
  EXPECT_FALSE(queue->Push(Task("a", "other-tenant")));
  EXPECT_EQ(queue->size(), 1u);
  std::optional<ReadyTask> a = queue->Pop(kT0);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->tenant, "acme");
  EXPECT_FALSE(queue->Push(Task("a")));
  queue->Finish(*a, 0);
  EXPECT_TRUE(queue->Push(Task("a")));
}

TEST(DispatchQueueTest, FinishOfATaskNotRunningChangesNothing) {
  DispatchQueueOptions options;
  options.max_running = 1;
  auto queue = MakeQueue(options);
  queue->Push(Task("a"));
  queue->Push(Task("b"));
  std::optional<ReadyTask> a = queue->Pop(kT0);
  ASSERT_TRUE(a.has_value());
  queue->Finish(Task("b"), 0);  // Queued, never popped.
  queue->Finish(Task("ghost"), 0);
  EXPECT_EQ(queue->running(), 1u);
  EXPECT_EQ(PopId(*queue), "none");
  queue->Finish(*a, 0);
  queue->Finish(*a, 0);  // Twice: once counts.
  EXPECT_EQ(queue->running(), 0u);
  EXPECT_EQ(PopId(*queue), "b");
  EXPECT_EQ(queue->running(), 1u);
}

TEST(DispatchQueueTest, UpdateOptionsChangesLimitsAndWeightsAtRunTime) {
  DispatchQueueOptions options;
  options.max_running = 1;
  auto queue = MakeQueue(options);
  for (int i = 0; i < 8; ++i) {
    queue->Push(Task(absl::StrCat("a-", i), "a"));
    queue->Push(Task(absl::StrCat("b-", i), "b"));
  }
  EXPECT_EQ(PopId(*queue), "a-0");
  EXPECT_EQ(PopId(*queue), "none");
  options.max_running = 0;
  options.tenant_weights = {{"b", 4}};
  ASSERT_TRUE(queue->UpdateOptions(options).ok());
  std::map<std::string, int> dispatches;
  for (int i = 0; i < 8; ++i) {
    std::optional<ReadyTask> task = queue->Pop(kT0);
    ASSERT_TRUE(task.has_value());
    ++dispatches[task->tenant];
  }
  // "a" was just served; then b gets 4 for a's 1.
  EXPECT_EQ(dispatches["a"], 1);
  EXPECT_EQ(dispatches["b"], 7);
  EXPECT_EQ(queue->running(), 9u);
}

TEST(DispatchQueueTest, UpdateOptionsAddsAndRemovesModelBudgets) {
  auto queue = MakeQueue(Unlimited());
  for (const char* id : {"a", "b", "c"}) queue->Push(Task(id));
  DispatchQueueOptions options = Unlimited();
  options.model_budgets = {{"llama", {.requests_per_minute = 1}}};
  ASSERT_TRUE(queue->UpdateOptions(options).ok());
  EXPECT_EQ(PopId(*queue), "a");
  EXPECT_EQ(PopId(*queue), "none");
  ASSERT_TRUE(queue->UpdateOptions(Unlimited()).ok());
  EXPECT_EQ(PopId(*queue), "b");
}

TEST(DispatchQueueTest, InvalidOptionsAreRejectedNamingTheField) {
  DispatchQueueOptions options;
  options.max_running = -1;
  EXPECT_EQ(DispatchQueue::Create(options).status().message(), "max_running: -1 is negative");
  options = {};
  options.max_running_per_tenant = {{"acme", -2}};
  EXPECT_EQ(DispatchQueue::Create(options).status().message(),
            "max_running_per_tenant[\"acme\"]: -2 is negative");
  options = {};
  options.tenant_weights = {{"acme", 0}};
  EXPECT_EQ(DispatchQueue::Create(options).status().message(),
            "tenant_weights[\"acme\"]: 0 is below 1");
  options = {};
  options.model_budgets = {{"llama", {.tokens_per_minute = -5}}};
  EXPECT_EQ(DispatchQueue::Create(options).status().message(),
            "model_budgets[\"llama\"].tokens_per_minute: -5 is negative");
  options = {};
  options.aging_interval = absl::Seconds(-1);
  EXPECT_EQ(DispatchQueue::Create(options).status().code(), absl::StatusCode::kInvalidArgument);

  // A rejected update leaves the old limits in force.
  options = {};
  options.max_running = 1;
  auto queue = MakeQueue(options);
  queue->Push(Task("a"));
  queue->Push(Task("b"));
  EXPECT_EQ(PopId(*queue), "a");
  DispatchQueueOptions bad;
  bad.max_running = 0;
  bad.default_tenant_weight = 0;
  EXPECT_EQ(queue->UpdateOptions(bad).message(), "default_tenant_weight: 0 is below 1");
  EXPECT_EQ(PopId(*queue), "none");
}

TEST(DispatchQueueTest, ConcurrentPushPopAndFinishLoseNothing) {
  DispatchQueueOptions options;
  options.max_running = 4;
  auto queue = MakeQueue(options);
  constexpr int kPerProducer = 1'000;
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        queue->Push(Task(absl::StrCat(p, "-", i), absl::StrCat("tenant-", i % 7)));
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      while (finished.load() < 2 * kPerProducer) {
        std::optional<ReadyTask> task = queue->Pop(kT0);
        if (!task) {
          std::this_thread::yield();
          continue;
        }
        queue->Finish(*task, 0);
        finished.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(finished.load(), 2 * kPerProducer);
  EXPECT_EQ(queue->size(), 0u);
  EXPECT_EQ(queue->running(), 0u);
}

}  // namespace
}  // namespace flowork::agent
