#include "flowork/agent/task_store.h"

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (false)

MATCHER_P(EqualsProto, expected, "") {
  if (google::protobuf::util::MessageDifferencer::Equals(arg, expected)) return true;
  *result_listener << "\n" << arg.DebugString() << "differs from\n" << expected.DebugString();
  return false;
}

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "flowork_task_store_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

v1::Task NewTask(std::string agent = "writer", std::string tenant = "acme") {
  v1::Task task;
  task.set_agent(std::move(agent));
  task.set_tenant(std::move(tenant));
  task.set_priority(v1::PRIORITY_STANDARD);
  return task;
}

TaskUpdate Move(const std::string& id, v1::TaskState from, v1::TaskState to) {
  TaskUpdate update;
  update.task_id = id;
  update.expect_state = from;
  update.state = to;
  return update;
}

v1::StepRecord Step(uint64_t seq, v1::StepRecord::Status status) {
  v1::StepRecord step;
  step.set_seq(seq);
  step.set_status(status);
  return step;
}

v1::StepRecord Started(uint64_t seq, std::string input) {
  v1::StepRecord step = Step(seq, v1::StepRecord::STATUS_STARTED);
  step.set_kind("llm");
  step.set_input(std::move(input));
  return step;
}

v1::StepRecord Completed(uint64_t seq, std::string output) {
  v1::StepRecord step = Step(seq, v1::StepRecord::STATUS_COMPLETED);
  step.set_output(std::move(output));
  return step;
}

std::vector<uint64_t> Seqs(const std::vector<v1::StepRecord>& steps) {
  std::vector<uint64_t> seqs;
  for (const v1::StepRecord& step : steps) seqs.push_back(step.seq());
  return seqs;
}

std::vector<std::string> Ids(const std::vector<v1::Task>& tasks) {
  std::vector<std::string> ids;
  for (const v1::Task& task : tasks) ids.push_back(task.id());
  return ids;
}

enum class StoreKind { kInMemory, kSqliteFile, kSqliteMemory };

std::string KindName(StoreKind kind) {
  switch (kind) {
    case StoreKind::kInMemory:
      return "InMemory";
    case StoreKind::kSqliteFile:
      return "SqliteFile";
    case StoreKind::kSqliteMemory:
      return "SqliteMemory";
  }
  return "Unknown";
}

void PrintTo(StoreKind kind, std::ostream* os) { *os << KindName(kind); }

// The behaviour every TaskStore implementation shares.
class TaskStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam() == StoreKind::kInMemory) {
      store_ = CreateInMemoryTaskStore(clock_);
      return;
    }
    ASSERT_FALSE(dir_.path().empty());
    SqliteTaskStoreOptions options;
    options.path = GetParam() == StoreKind::kSqliteFile ? dir_.path() + "/tasks.db" : ":memory:";
    absl::StatusOr<std::unique_ptr<TaskStore>> store = CreateSqliteTaskStore(options, clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string Submit(v1::Task task = NewTask()) {
    absl::StatusOr<SubmitResult> result = store_->Submit(std::move(task));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->task.id() : "";
  }

  // A task moved through `path` (starting from PENDING).
  std::string SubmitAndMove(const std::vector<v1::TaskState>& path, v1::Task task = NewTask()) {
    const std::string id = Submit(std::move(task));
    v1::TaskState at = v1::TASK_STATE_PENDING;
    for (v1::TaskState next : path) {
      absl::Status moved = store_->Apply(Move(id, at, next));
      EXPECT_TRUE(moved.ok()) << moved;
      at = next;
    }
    return id;
  }

  v1::Task Get(const std::string& id) {
    absl::StatusOr<v1::Task> task = store_->Get(id);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : v1::Task();
  }

  std::vector<v1::StepRecord> Journal(const std::string& id, uint64_t after_seq = 0) {
    absl::StatusOr<std::vector<v1::StepRecord>> steps = store_->Journal(id, after_seq);
    EXPECT_TRUE(steps.ok()) << steps.status();
    return steps.ok() ? *steps : std::vector<v1::StepRecord>();
  }

  TaskPage List(TaskFilter filter) {
    absl::StatusOr<TaskPage> page = store_->List(filter);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : TaskPage();
  }

  testing::FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<TaskStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, TaskStoreTest,
                         ::testing::Values(StoreKind::kInMemory, StoreKind::kSqliteFile,
                                           StoreKind::kSqliteMemory),
                         [](const ::testing::TestParamInfo<StoreKind>& info) {
                           return KindName(info.param);
                         });

const std::vector<v1::TaskState> kToRunning = {v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING};

TEST_P(TaskStoreTest, SubmitStoresAPendingTaskWithIdAndTimes) {
  v1::Task task = NewTask();
  (*task.mutable_input()->mutable_struct_value()->mutable_fields())["topic"].set_string_value(
      "otters");
  (*task.mutable_labels())["team"] = "research";
  task.mutable_deadline()->set_seconds(1'900'000'000);
  // The store owns these; whatever the caller says is replaced.
  task.set_id("my-own-id");
  task.set_state(v1::TASK_STATE_SUCCEEDED);
  task.set_error("stale");
  task.set_step_count(7);

  absl::StatusOr<SubmitResult> submitted = store_->Submit(task);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_TRUE(submitted->created);
  const v1::Task& stored = submitted->task;
  EXPECT_THAT(stored.id(), MatchesRegex("[A-Za-z0-9_-]{22}"));
  EXPECT_EQ(stored.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(stored.create_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_THAT(stored.update_time(), EqualsProto(stored.create_time()));
  EXPECT_EQ(stored.error(), "");
  EXPECT_EQ(stored.step_count(), 0u);
  EXPECT_EQ(stored.input().struct_value().fields().at("topic").string_value(), "otters");
  EXPECT_EQ(stored.labels().at("team"), "research");
  EXPECT_THAT(Get(stored.id()), EqualsProto(stored));

  EXPECT_NE(Submit(task), stored.id());
}

TEST_P(TaskStoreTest, SubmitRejectsBadTasksAndStoresNothing) {
  absl::StatusOr<SubmitResult> no_agent = store_->Submit(NewTask(""));
  EXPECT_EQ(no_agent.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(no_agent.status().message(), "task.agent: required");

  v1::Task both = NewTask();
  both.mutable_input()->set_string_value("json");
  both.set_input_bytes("bytes");
  EXPECT_EQ(store_->Submit(both).status().message(), "task: set input or input_bytes, not both");

  v1::Task priority = NewTask();
  priority.set_priority(static_cast<v1::Priority>(42));
  EXPECT_EQ(store_->Submit(priority).status().message(), "task.priority: unknown value 42");

  v1::Task orphan = NewTask();
  orphan.set_parent_id("ghost");
  absl::StatusOr<SubmitResult> no_parent = store_->Submit(orphan);
  EXPECT_EQ(no_parent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(no_parent.status().message(), "task.parent_id: task \"ghost\" not found");

  v1::Task far = NewTask();
  far.mutable_not_before()->set_seconds(int64_t{1} << 40);
  EXPECT_EQ(store_->Submit(far).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(List({}).tasks, IsEmpty());
}

TEST_P(TaskStoreTest, SubmitWithTheSameIdempotencyKeyReturnsTheFirstTask) {
  v1::Task first = NewTask();
  first.set_idempotency_key("order-17");
  first.set_input_bytes("first");
  const std::string id = Submit(first);
  ASSERT_OK(store_->Apply(Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED)));

  v1::Task again = first;
  again.set_input_bytes("second");
  absl::StatusOr<SubmitResult> repeated = store_->Submit(again);
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_FALSE(repeated->created);
  EXPECT_EQ(repeated->task.id(), id);
  EXPECT_EQ(repeated->task.input_bytes(), "first");
  EXPECT_EQ(repeated->task.state(), v1::TASK_STATE_ADMITTED);

  v1::Task other_tenant = first;
  other_tenant.set_tenant("globex");
  absl::StatusOr<SubmitResult> other = store_->Submit(other_tenant);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->created);
  EXPECT_NE(other->task.id(), id);
  EXPECT_EQ(List({}).tasks.size(), 2u);
}

TEST_P(TaskStoreTest, GetOfAnUnknownTaskIsNotFound) {
  absl::StatusOr<v1::Task> missing = store_->Get("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "task \"nope\" not found");
  EXPECT_EQ(store_->Journal("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Apply(Move("nope", v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED)).code(),
            absl::StatusCode::kNotFound);
}

TEST_P(TaskStoreTest, ListPagesInSubmissionOrderAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(Submit(NewTask(i % 2 == 0 ? "writer" : "coder", i < 4 ? "acme" : "globex")));
  }
  ASSERT_OK(store_->Apply(Move(ids[1], v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED)));
  ASSERT_OK(store_->Apply(Move(ids[4], v1::TASK_STATE_PENDING, v1::TASK_STATE_SUSPENDED)));

  TaskFilter filter;
  filter.page_size = 3;
  TaskPage first = List(filter);
  EXPECT_THAT(Ids(first.tasks), ElementsAre(ids[0], ids[1], ids[2]));
  ASSERT_FALSE(first.next_page_token.empty());
  // A task submitted while paging lands after the pages already read.
  const std::string late = Submit(NewTask("writer", "acme"));
  filter.page_token = first.next_page_token;
  TaskPage second = List(filter);
  EXPECT_THAT(Ids(second.tasks), ElementsAre(ids[3], ids[4], ids[5]));
  filter.page_token = second.next_page_token;
  TaskPage third = List(filter);
  EXPECT_THAT(Ids(third.tasks), ElementsAre(ids[6], late));
  EXPECT_EQ(third.next_page_token, "");

  EXPECT_THAT(Ids(List({.agent = "coder"}).tasks), ElementsAre(ids[1], ids[3], ids[5]));
  EXPECT_THAT(Ids(List({.tenant = "globex"}).tasks), ElementsAre(ids[4], ids[5], ids[6]));
  EXPECT_THAT(Ids(List({.agent = "writer", .tenant = "globex"}).tasks),
              ElementsAre(ids[4], ids[6]));
  EXPECT_THAT(Ids(List({.states = {v1::TASK_STATE_SUSPENDED, v1::TASK_STATE_ADMITTED}}).tasks),
              ElementsAre(ids[1], ids[4]));
  EXPECT_THAT(Ids(List({.agent = "writer", .states = {v1::TASK_STATE_ADMITTED}}).tasks), IsEmpty());
  EXPECT_EQ(List({}).tasks.size(), 8u);
  EXPECT_THAT(List({}).tasks[1], EqualsProto(Get(ids[1])));

  EXPECT_EQ(store_->List({.page_token = "bogus"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List({.page_size = 1001}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List({.page_size = -1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(TaskStoreTest, StaleExpectedStateIsAbortedAndChangesNothing) {
  const std::string id = Submit();
  const v1::Task before = Get(id);
  clock_.Advance(absl::Seconds(5));
  TaskUpdate update = Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING);
  update.error = "should not be written";
  update.steps.push_back(Started(1, "prompt"));
  absl::Status status = store_->Apply(update);
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(status.message(), absl::StrCat("task \"", id,
                                           "\" is TASK_STATE_PENDING, not the expected "
                                           "TASK_STATE_ADMITTED"));
  EXPECT_THAT(Get(id), EqualsProto(before));
  EXPECT_THAT(Journal(id), IsEmpty());
}

TEST_P(TaskStoreTest, IllegalTransitionIsRejectedAndWritesNothing) {
  const std::string id = Submit();
  const v1::Task before = Get(id);
  TaskUpdate update;
  update.task_id = id;
  update.state = v1::TASK_STATE_RUNNING;
  update.attempt = 3;
  update.steps.push_back(Started(1, "prompt"));
  absl::Status status = store_->Apply(update);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("TASK_STATE_PENDING cannot move to TASK_STATE_RUNNING"));
  EXPECT_THAT(Get(id), EqualsProto(before));
  EXPECT_THAT(Journal(id), IsEmpty());
}

TEST_P(TaskStoreTest, StepIsWrittenStartedThenCompletedWithoutRepeatingItsInput) {
  const std::string id = SubmitAndMove(kToRunning);
  TaskUpdate start = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_WAITING_LLM);
  start.steps.push_back(Started(1, "prompt"));
  start.steps.back().mutable_start_time()->set_seconds(100);
  ASSERT_OK(store_->Apply(start));
  std::vector<v1::StepRecord> journal = Journal(id);
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].task_id(), id);
  EXPECT_EQ(journal[0].status(), v1::StepRecord::STATUS_STARTED);
  EXPECT_EQ(journal[0].input(), "prompt");
  EXPECT_EQ(Get(id).step_count(), 1u);

  TaskUpdate complete = Move(id, v1::TASK_STATE_WAITING_LLM, v1::TASK_STATE_RUNNING);
  complete.steps.push_back(Completed(1, "answer"));
  complete.steps.back().mutable_end_time()->set_seconds(101);
  ASSERT_OK(store_->Apply(complete));
  journal = Journal(id);
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].status(), v1::StepRecord::STATUS_COMPLETED);
  EXPECT_EQ(journal[0].kind(), "llm");
  EXPECT_EQ(journal[0].input(), "prompt");
  EXPECT_EQ(journal[0].output(), "answer");
  EXPECT_EQ(journal[0].start_time().seconds(), 100);
  EXPECT_EQ(journal[0].end_time().seconds(), 101);
  EXPECT_EQ(Get(id).step_count(), 1u);

  // A completed step is history.
  TaskUpdate rewrite;
  rewrite.task_id = id;
  rewrite.steps.push_back(Step(1, v1::StepRecord::STATUS_FAILED));
  absl::Status status = store_->Apply(rewrite);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("COMPLETED and cannot change"));
  EXPECT_EQ(Journal(id)[0].status(), v1::StepRecord::STATUS_COMPLETED);
}

TEST_P(TaskStoreTest, FailedStepMayBeRetriedUnderItsSeq) {
  const std::string id = SubmitAndMove(kToRunning);
  TaskUpdate start;
  start.task_id = id;
  start.steps.push_back(Started(1, "call"));
  ASSERT_OK(store_->Apply(start));
  TaskUpdate fail;
  fail.task_id = id;
  fail.steps.push_back(Step(1, v1::StepRecord::STATUS_FAILED));
  fail.steps.back().set_error("upstream 503");
  ASSERT_OK(store_->Apply(fail));
  TaskUpdate retry;
  retry.task_id = id;
  retry.attempt = 1;
  retry.steps.push_back(Step(1, v1::StepRecord::STATUS_STARTED));
  retry.steps.back().set_attempt(1);
  ASSERT_OK(store_->Apply(retry));
  std::vector<v1::StepRecord> journal = Journal(id);
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].status(), v1::StepRecord::STATUS_STARTED);
  EXPECT_EQ(journal[0].attempt(), 1);
  EXPECT_EQ(journal[0].input(), "call");
  EXPECT_EQ(Get(id).attempt(), 1);
}

TEST_P(TaskStoreTest, MalformedStepsAreRejectedAndWriteNothing) {
  const std::string id = SubmitAndMove(kToRunning);
  auto apply_steps = [&](std::vector<v1::StepRecord> steps) {
    TaskUpdate update;
    update.task_id = id;
    update.error = "must not stick";
    update.steps = std::move(steps);
    return store_->Apply(update);
  };
  absl::Status skip = apply_steps({Started(1, "a"), Started(3, "c")});
  EXPECT_EQ(skip.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(skip.message(), HasSubstr("update.steps[1].seq: 3 skips ahead"));
  EXPECT_EQ(apply_steps({Started(0, "a")}).message(), "update.steps[0].seq: must be 1 or more");
  v1::StepRecord foreign = Started(1, "a");
  foreign.set_task_id("other");
  EXPECT_EQ(apply_steps({foreign}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(apply_steps({Step(1, v1::StepRecord::STATUS_UNSPECIFIED)}).message(),
            "update.steps[0].status: required for a new step");
  EXPECT_EQ(apply_steps({Started(1, "a"), Started(1, "b")}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Journal(id), IsEmpty());
  EXPECT_EQ(Get(id).error(), "");
  EXPECT_EQ(Get(id).step_count(), 0u);
}

TEST_P(TaskStoreTest, JournalIsInSeqOrderAndHonoursAfterSeq) {
  const std::string id = SubmitAndMove(kToRunning);
  TaskUpdate one;
  one.task_id = id;
  one.steps = {Started(1, "s1")};
  TaskUpdate two_three;
  two_three.task_id = id;
  two_three.steps = {Completed(1, "o1"), Started(2, "s2"), Started(3, "s3")};
  TaskUpdate four_five;
  four_five.task_id = id;
  four_five.steps = {Started(4, "s4"), Completed(3, "o3"), Started(5, "s5")};
  ASSERT_OK(store_->Apply(one));
  ASSERT_OK(store_->Apply(two_three));
  ASSERT_OK(store_->Apply(four_five));
  EXPECT_THAT(Seqs(Journal(id)), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(Seqs(Journal(id, 3)), ElementsAre(4, 5));
  EXPECT_THAT(Journal(id, 5), IsEmpty());
  EXPECT_THAT(Journal(id, std::numeric_limits<uint64_t>::max()), IsEmpty());
  EXPECT_EQ(Journal(id)[2].output(), "o3");
  EXPECT_EQ(Journal(id)[2].input(), "s3");
  EXPECT_EQ(Get(id).step_count(), 5u);
}

TEST_P(TaskStoreTest, ApplySetsTheMutableFields) {
  const std::string id = SubmitAndMove(kToRunning);
  clock_.Advance(absl::Minutes(1));
  TaskUpdate update = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_PENDING);
  update.error = "rate limited";
  update.attempt = 2;
  update.not_before = clock_.Now() + absl::Seconds(30);
  update.cancel_requested = true;
  ASSERT_OK(store_->Apply(update));
  v1::Task task = Get(id);
  EXPECT_EQ(task.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(task.error(), "rate limited");
  EXPECT_EQ(task.attempt(), 2);
  EXPECT_TRUE(task.cancel_requested());
  EXPECT_EQ(task.not_before().seconds(), absl::ToUnixSeconds(clock_.Now()) + 30);
  EXPECT_EQ(task.update_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_LT(task.create_time().seconds(), task.update_time().seconds());

  TaskUpdate finish = Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED);
  finish.not_before = absl::InfinitePast();
  finish.cancel_requested = false;
  ASSERT_OK(store_->Apply(finish));
  TaskUpdate succeed = Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING);
  ASSERT_OK(store_->Apply(succeed));
  succeed = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED);
  succeed.output.emplace().set_string_value("done");
  succeed.error = "";
  ASSERT_OK(store_->Apply(succeed));
  task = Get(id);
  EXPECT_FALSE(task.has_not_before());
  EXPECT_FALSE(task.cancel_requested());
  EXPECT_EQ(task.output().string_value(), "done");
  EXPECT_EQ(task.error(), "");
  EXPECT_EQ(task.attempt(), 2);

  TaskUpdate negative;
  negative.task_id = id;
  negative.attempt = -1;
  EXPECT_EQ(store_->Apply(negative).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(TaskStoreTest, FinalTaskNeverChanges) {
  const std::string id = SubmitAndMove({v1::TASK_STATE_CANCELLED});
  const v1::Task before = Get(id);
  TaskUpdate cancel;
  cancel.task_id = id;
  cancel.cancel_requested = true;
  absl::Status status = store_->Apply(cancel);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            absl::StrCat("task \"", id, "\" is TASK_STATE_CANCELLED (final) and cannot change"));
  EXPECT_EQ(store_->Apply(Move(id, v1::TASK_STATE_CANCELLED, v1::TASK_STATE_PENDING)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Get(id), EqualsProto(before));
}

TEST_P(TaskStoreTest, ListUnfinishedReturnsEveryNonFinalTask) {
  using S = v1::TaskState;
  const std::vector<std::vector<S>> paths = {
      {},
      {v1::TASK_STATE_ADMITTED},
      kToRunning,
      {v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING, v1::TASK_STATE_WAITING_APPROVAL},
      {v1::TASK_STATE_SUSPENDED},
      {v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED},
      {v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING, v1::TASK_STATE_FAILED},
      {v1::TASK_STATE_CANCELLED},
      {v1::TASK_STATE_TIMED_OUT},
  };
  std::vector<std::string> ids;
  for (const auto& path : paths) ids.push_back(SubmitAndMove(path));
  absl::StatusOr<std::vector<v1::Task>> unfinished = store_->ListUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  EXPECT_THAT(Ids(*unfinished), ElementsAre(ids[0], ids[1], ids[2], ids[3], ids[4]));
  EXPECT_EQ((*unfinished)[3].state(), v1::TASK_STATE_WAITING_APPROVAL);
  EXPECT_THAT((*unfinished)[3], EqualsProto(Get(ids[3])));
}

TEST_P(TaskStoreTest, ChildrenAreTheDirectChildrenInSubmissionOrder) {
  const std::string parent = Submit();
  v1::Task child = NewTask();
  child.set_parent_id(parent);
  const std::string first = Submit(child);
  const std::string second = Submit(child);
  v1::Task grandchild = NewTask();
  grandchild.set_parent_id(first);
  const std::string third = Submit(grandchild);

  EXPECT_THAT(*store_->Children(parent), ElementsAre(first, second));
  EXPECT_THAT(*store_->Children(first), ElementsAre(third));
  EXPECT_THAT(*store_->Children(third), IsEmpty());
  EXPECT_THAT(*store_->Children("ghost"), IsEmpty());
  EXPECT_EQ(Get(third).parent_id(), first);
}

TEST_P(TaskStoreTest, PruneByAgeDeletesOldFinishedTasksWithTheirJournals) {
  v1::Task keyed = NewTask();
  keyed.set_idempotency_key("nightly");
  const std::string old_done = SubmitAndMove(kToRunning, keyed);
  TaskUpdate finish = Move(old_done, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED);
  finish.steps.push_back(Started(1, "work"));
  ASSERT_OK(store_->Apply(finish));
  const std::string old_pending = Submit();
  clock_.Advance(absl::Hours(2));
  const std::string new_done = SubmitAndMove({v1::TASK_STATE_CANCELLED});

  absl::StatusOr<int64_t> pruned = store_->PruneFinished({.max_age = absl::Hours(1)});
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1);
  EXPECT_EQ(store_->Get(old_done).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Journal(old_done).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Ids(List({}).tasks), ElementsAre(old_pending, new_done));

  // The key is free again once its task is gone.
  absl::StatusOr<SubmitResult> resubmitted = store_->Submit(keyed);
  ASSERT_TRUE(resubmitted.ok());
  EXPECT_TRUE(resubmitted->created);
  EXPECT_EQ(*store_->PruneFinished({.max_age = absl::Hours(1)}), 0);
}

TEST_P(TaskStoreTest, PruneByCountKeepsTheMostRecentlyFinished) {
  std::vector<std::string> done;
  for (int i = 0; i < 5; ++i) {
    done.push_back(SubmitAndMove({v1::TASK_STATE_ADMITTED}));
    clock_.Advance(absl::Seconds(1));
  }
  const std::string unfinished = Submit();
  // Finish them in reverse order: done[0] finishes last.
  for (int i = 4; i >= 0; --i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(
        store_->Apply(Move(done[i], v1::TASK_STATE_ADMITTED, v1::TASK_STATE_TIMED_OUT)).ok());
  }
  absl::StatusOr<int64_t> pruned = store_->PruneFinished({.max_count = 2});
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 3);
  EXPECT_THAT(Ids(List({}).tasks), ElementsAre(done[0], done[1], unfinished));
  EXPECT_EQ(*store_->PruneFinished({.max_count = 2}), 0);
  EXPECT_EQ(*store_->PruneFinished({}), 0);
  EXPECT_EQ(*store_->PruneFinished({.max_count = 0}), 2);
  EXPECT_THAT(Ids(List({}).tasks), ElementsAre(unfinished));
  EXPECT_EQ(store_->PruneFinished({.max_count = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(TaskStoreTest, PruneDeletesMoreThanOneChunk) {
  absl::BlockingCounter submitted(1200);
  for (int i = 0; i < 1200; ++i) {
    store_->SubmitAsync(NewTask(), [&](absl::StatusOr<SubmitResult> result) {
      EXPECT_TRUE(result.ok()) << result.status();
      submitted.DecrementCount();
    });
  }
  submitted.Wait();
  absl::StatusOr<std::vector<v1::Task>> all = store_->ListUnfinished();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1200u);
  absl::BlockingCounter cancelled(1200);
  for (const v1::Task& task : *all) {
    store_->ApplyAsync(Move(task.id(), v1::TASK_STATE_PENDING, v1::TASK_STATE_CANCELLED),
                       [&](absl::Status status) {
                         EXPECT_TRUE(status.ok()) << status;
                         cancelled.DecrementCount();
                       });
  }
  cancelled.Wait();
  EXPECT_EQ(*store_->PruneFinished({.max_count = 100}), 1100);
  EXPECT_EQ(List({.page_size = 1000}).tasks.size(), 100u);
}

TEST_P(TaskStoreTest, ConcurrentApplyAsyncFromSeveralThreadsIsAllApplied) {
  constexpr int kThreads = 4;
  constexpr int kTasksPerThread = 25;
  std::vector<std::vector<std::string>> ids(kThreads);
  for (auto& thread_ids : ids) {
    for (int i = 0; i < kTasksPerThread; ++i) thread_ids.push_back(Submit());
  }
  // Four updates per task, queued back to back: one thread's updates apply
  // in the order it queued them.
  absl::BlockingCounter applied(kThreads * kTasksPerThread * 4);
  std::atomic<int> failures{0};
  auto done = [&](absl::Status status) {
    if (!status.ok()) {
      ADD_FAILURE() << status;
      failures.fetch_add(1);
    }
    applied.DecrementCount();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const std::string& id : ids[t]) {
        store_->ApplyAsync(Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED), done);
        TaskUpdate run = Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING);
        run.steps.push_back(Started(1, absl::StrCat("input of ", id)));
        store_->ApplyAsync(std::move(run), done);
        TaskUpdate step;
        step.task_id = id;
        step.steps = {Completed(1, "o1"), Started(2, "i2")};
        store_->ApplyAsync(std::move(step), done);
        TaskUpdate finish = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED);
        finish.steps.push_back(Completed(2, "o2"));
        store_->ApplyAsync(std::move(finish), done);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  applied.Wait();
  EXPECT_EQ(failures.load(), 0);
  for (const auto& thread_ids : ids) {
    for (const std::string& id : thread_ids) {
      EXPECT_EQ(Get(id).state(), v1::TASK_STATE_SUCCEEDED);
      std::vector<v1::StepRecord> journal = Journal(id);
      ASSERT_EQ(journal.size(), 2u);
      EXPECT_EQ(journal[0].input(), absl::StrCat("input of ", id));
      EXPECT_EQ(journal[1].status(), v1::StepRecord::STATUS_COMPLETED);
    }
  }
  EXPECT_THAT(*store_->ListUnfinished(), IsEmpty());
}

TEST_P(TaskStoreTest, FailingUpdateDoesNotUndoTheOthersQueuedWithIt) {
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(Submit());
  std::vector<absl::Status> results(ids.size());
  absl::BlockingCounter applied(static_cast<int>(ids.size()));
  // Queued together, so a batching store commits them in few transactions.
  for (size_t i = 0; i < ids.size(); ++i) {
    TaskUpdate update = Move(ids[i], i % 3 == 0 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_PENDING,
                             v1::TASK_STATE_ADMITTED);
    update.error = "touched";
    store_->ApplyAsync(std::move(update), [&, i](absl::Status status) {
      results[i] = std::move(status);
      applied.DecrementCount();
    });
  }
  applied.Wait();
  for (size_t i = 0; i < ids.size(); ++i) {
    const v1::Task task = Get(ids[i]);
    if (i % 3 == 0) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kAborted) << i;
      EXPECT_EQ(task.state(), v1::TASK_STATE_PENDING) << i;
      EXPECT_EQ(task.error(), "") << i;
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
      EXPECT_EQ(task.state(), v1::TASK_STATE_ADMITTED) << i;
      EXPECT_EQ(task.error(), "touched") << i;
    }
  }
}

TEST_P(TaskStoreTest, CallbacksMayQueueWritesAndReadButNotBlockOnWrites) {
  const std::string id = Submit();
  absl::Notification finished;
  absl::Status blocking;
  absl::StatusOr<v1::Task> read;
  absl::Status chained;
  store_->ApplyAsync(
      Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED), [&](absl::Status status) {
        ASSERT_TRUE(status.ok()) << status;
        blocking = store_->Apply(Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING));
        read = store_->Get(id);
        store_->ApplyAsync(Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING),
                           [&](absl::Status status) {
                             chained = status;
                             finished.Notify();
                           });
      });
  finished.WaitForNotification();
  EXPECT_EQ(blocking.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(blocking.message(), HasSubstr("would deadlock"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->state(), v1::TASK_STATE_ADMITTED);
  EXPECT_TRUE(chained.ok()) << chained;
  EXPECT_EQ(Get(id).state(), v1::TASK_STATE_RUNNING);
}

// SQLite only: files, reopening, crashes, schema versions.
class SqliteTaskStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  std::unique_ptr<TaskStore> Open(const std::string& path) {
    SqliteTaskStoreOptions options;
    options.path = path;
    absl::StatusOr<std::unique_ptr<TaskStore>> store = CreateSqliteTaskStore(options, clock_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  testing::FakeClock clock_;
  TempDir dir_;
};

std::string SqliteScalar(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string result;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return result;
}

TEST_F(SqliteTaskStoreTest, DataSurvivesClosingAndReopening) {
  const std::string path = dir_.path() + "/tasks.db";
  v1::Task submitted;
  std::vector<v1::StepRecord> journal;
  {
    std::unique_ptr<TaskStore> store = Open(path);
    ASSERT_NE(store, nullptr);
    v1::Task task = NewTask();
    task.set_idempotency_key("k1");
    task.mutable_input()->set_string_value("summarise");
    absl::StatusOr<SubmitResult> result = store->Submit(task);
    ASSERT_TRUE(result.ok());
    const std::string id = result->task.id();
    ASSERT_OK(store->Apply(Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED)));
    ASSERT_OK(store->Apply(Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING)));
    TaskUpdate run = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_WAITING_TOOL);
    run.steps = {Started(1, "tool call")};
    run.not_before = clock_.Now() + absl::Nanoseconds(1'500);
    ASSERT_OK(store->Apply(run));
    submitted = *store->Get(id);
    journal = *store->Journal(id);
  }
  std::unique_ptr<TaskStore> store = Open(path);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->Get(submitted.id()), EqualsProto(submitted));
  EXPECT_EQ(store->Get(submitted.id())->not_before().nanos(), 1'500);
  std::vector<v1::StepRecord> reread = *store->Journal(submitted.id());
  ASSERT_EQ(reread.size(), 1u);
  EXPECT_THAT(reread[0], EqualsProto(journal[0]));
  v1::Task again = NewTask();
  again.set_idempotency_key("k1");
  absl::StatusOr<SubmitResult> repeated = store->Submit(again);
  ASSERT_TRUE(repeated.ok());
  EXPECT_FALSE(repeated->created);
  EXPECT_THAT(Ids(*store->ListUnfinished()), ElementsAre(submitted.id()));
  EXPECT_EQ(SqliteScalar(path, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteTaskStoreTest, NewerSchemaVersionIsRefusedAndLeftUntouched) {
  const std::string path = dir_.path() + "/tasks.db";
  ASSERT_NE(Open(path), nullptr);
  EXPECT_EQ(SqliteScalar(path, "SELECT version FROM schema_version"), "1");
  SqliteScalar(path, "UPDATE schema_version SET version = 2");
  SqliteTaskStoreOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<TaskStore>> store = CreateSqliteTaskStore(options, clock_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              HasSubstr("task store schema version 2 is newer than this build's 1"));
  EXPECT_EQ(SqliteScalar(path, "SELECT version FROM schema_version"), "2");
}

TEST_F(SqliteTaskStoreTest, BadOptionsAndFilesAreRefused) {
  SqliteTaskStoreOptions options;
  EXPECT_EQ(CreateSqliteTaskStore(options).status().message(),
            "options.path: required (a file, or \":memory:\")");
  options.path = dir_.path() + "/missing/dir/tasks.db";
  EXPECT_EQ(CreateSqliteTaskStore(options).status().code(), absl::StatusCode::kUnavailable);
  options.path = dir_.path() + "/tasks.db";
  options.max_batch = 0;
  EXPECT_EQ(CreateSqliteTaskStore(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_batch = 16;
  std::ofstream(dir_.path() + "/garbage.db") << std::string(8192, 'x');
  options.path = dir_.path() + "/garbage.db";
  EXPECT_EQ(CreateSqliteTaskStore(options).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteTaskStoreTest, FullSyncStoresTheSame) {
  SqliteTaskStoreOptions options;
  options.path = dir_.path() + "/full.db";
  options.sync = SqliteTaskStoreOptions::Sync::kFull;
  absl::StatusOr<std::unique_ptr<TaskStore>> store = CreateSqliteTaskStore(options, clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<SubmitResult> submitted = (*store)->Submit(NewTask());
  ASSERT_TRUE(submitted.ok());
  EXPECT_TRUE(
      (*store)
          ->Apply(Move(submitted->task.id(), v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED))
          .ok());
  EXPECT_EQ((*store)->Get(submitted->task.id())->state(), v1::TASK_STATE_ADMITTED);
}

// The crash test's child: writes steps on kCrashTasks tasks forever, each
// acknowledged on `ack_fd` once its write's result arrived: "T <n> <id>" when
// task n exists, "S <n> <seq> <status>" when a step write is stored.
constexpr int kCrashTasks = 8;

std::string CrashPayload(int task, uint64_t seq, const char* what) {
  return absl::StrCat(what, "-", task, "-", seq, "-", std::string(200, 'p'));
}

[[noreturn]] void RunCrashWriter(const std::string& path, int ack_fd) {
  auto ack = [ack_fd](const std::string& line) {
    const std::string text = line + "\n";
    if (write(ack_fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(3);
  };
  SqliteTaskStoreOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<TaskStore>> opened = CreateSqliteTaskStore(options);
  if (!opened.ok()) _exit(2);
  TaskStore* store = opened->release();  // Never destroyed: the process is killed.
  struct Chain {
    TaskStore* store;
    int task;
    std::string id;
    std::function<void(uint64_t, bool)> next;
  };
  static std::vector<std::unique_ptr<Chain>> chains;
  for (int n = 0; n < kCrashTasks; ++n) {
    absl::StatusOr<SubmitResult> submitted = store->Submit(NewTask());
    if (!submitted.ok()) _exit(2);
    const std::string id = submitted->task.id();
    if (!store->Apply(Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED)).ok()) _exit(2);
    if (!store->Apply(Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING)).ok()) _exit(2);
    ack(absl::StrCat("T ", n, " ", id));
    auto chain = std::make_unique<Chain>(Chain{store, n, id, nullptr});
    Chain* c = chain.get();
    // Step seq is started, then completed, then seq + 1 is started...
    c->next = [c, ack](uint64_t seq, bool complete) {
      TaskUpdate update;
      update.task_id = c->id;
      if (complete) {
        update.steps.push_back(Completed(seq, CrashPayload(c->task, seq, "out")));
      } else {
        update.steps.push_back(Started(seq, CrashPayload(c->task, seq, "in")));
      }
      c->store->ApplyAsync(std::move(update), [c, ack, seq, complete](absl::Status status) {
        if (!status.ok()) _exit(4);
        ack(absl::StrCat("S ", c->task, " ", seq, " ", complete ? "C" : "S"));
        if (complete) {
          c->next(seq + 1, false);
        } else {
          c->next(seq, true);
        }
      });
    };
    chains.push_back(std::move(chain));
  }
  for (auto& chain : chains) chain->next(1, false);
  while (true) pause();
}

TEST_F(SqliteTaskStoreTest, StepsAcknowledgedBeforeASigkillSurviveIt) {
  const std::string path = dir_.path() + "/crash.db";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    RunCrashWriter(path, fds[1]);
  }
  close(fds[1]);
  // Never leave the child behind, whatever fails below.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{child};

  std::map<int, std::string> ids;
  // Per task, the last acknowledged (seq, completed).
  std::map<int, std::pair<uint64_t, bool>> acked;
  int step_acks = 0;
  bool killed = false;
  std::string buffer;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (true) {
    // Kill it mid-stream, once plenty of steps have been stored.
    if (!killed && (step_acks >= 2000 || absl::Now() > give_up)) {
      ASSERT_EQ(kill(child, SIGKILL), 0);
      killed = true;
    }
    pollfd poll_fd{fds[0], POLLIN, 0};
    if (poll(&poll_fd, 1, 1000) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) break;  // EOF: the child is gone and everything it said is read.
    buffer.append(chunk, static_cast<size_t>(n));
    size_t end;
    while ((end = buffer.find('\n')) != std::string::npos) {
      std::vector<std::string> parts = absl::StrSplit(buffer.substr(0, end), ' ');
      buffer.erase(0, end + 1);
      int task = 0;
      ASSERT_TRUE(parts.size() >= 3 && absl::SimpleAtoi(parts[1], &task));
      if (parts[0] == "T") {
        ids[task] = parts[2];
      } else {
        uint64_t seq = 0;
        ASSERT_TRUE(parts.size() == 4 && absl::SimpleAtoi(parts[2], &seq));
        acked[task] = {seq, parts[3] == "C"};
        ++step_acks;
      }
    }
  }
  close(fds[0]);
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  reaper.pid = 0;
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "the writer exited on its own: " << wait_status;
  ASSERT_EQ(WTERMSIG(wait_status), SIGKILL);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kCrashTasks));
  EXPECT_GE(step_acks, 100);

  EXPECT_EQ(SqliteScalar(path, "PRAGMA integrity_check"), "ok");
  std::unique_ptr<TaskStore> store = Open(path);
  ASSERT_NE(store, nullptr);
  for (const auto& [task, id] : ids) {
    SCOPED_TRACE(absl::StrCat("task ", task));
    absl::StatusOr<std::vector<v1::StepRecord>> journal = store->Journal(id);
    ASSERT_TRUE(journal.ok()) << journal.status();
    const auto [acked_seq, acked_complete] = acked[task];
    // Everything acknowledged is there; at most the one write in flight more.
    ASSERT_GE(journal->size(), acked_seq);
    ASSERT_LE(journal->size(), acked_seq + 1);
    EXPECT_EQ(store->Get(id)->step_count(), journal->size());
    for (size_t i = 0; i < journal->size(); ++i) {
      const v1::StepRecord& step = (*journal)[i];
      const uint64_t seq = i + 1;
      ASSERT_EQ(step.seq(), seq);
      EXPECT_EQ(step.input(), CrashPayload(task, seq, "in"));
      const bool must_be_complete = seq < acked_seq || (seq == acked_seq && acked_complete);
      if (must_be_complete) {
        EXPECT_EQ(step.status(), v1::StepRecord::STATUS_COMPLETED);
      }
      if (step.status() == v1::StepRecord::STATUS_COMPLETED) {
        EXPECT_EQ(step.output(), CrashPayload(task, seq, "out"));
      } else {
        EXPECT_EQ(step.status(), v1::StepRecord::STATUS_STARTED);
        EXPECT_EQ(step.output(), "");
      }
    }
  }
  // And the reopened store keeps working on the same tasks.
  const std::string& first = ids.begin()->second;
  const uint64_t next = store->Get(first)->step_count() + 1;
  TaskUpdate more;
  more.task_id = first;
  more.steps.push_back(Started(next, "after the crash"));
  EXPECT_TRUE(store->Apply(more).ok());
}

}  // namespace
}  // namespace flowork::agent
