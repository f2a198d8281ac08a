#include "flowork/agent/agent_runtime.h"

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::HasSubstr;

google::protobuf::Value Str(const std::string& s) {
  google::protobuf::Value v;
  v.set_string_value(s);
  return v;
}

// An agent whose step is a function of its context.
class FunctionAgent final : public Agent {
 public:
  explicit FunctionAgent(std::function<absl::StatusOr<v1::Effect>(const StepContext&)> step)
      : step_(std::move(step)) {}
  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    steps_.fetch_add(1);
    return step_(context);
  }
  int steps() const { return steps_.load(); }

 private:
  std::function<absl::StatusOr<v1::Effect>(const StepContext&)> step_;
  std::atomic<int> steps_{0};
};

v1::Effect ToolEffect(const std::string& name, const std::string& argument) {
  v1::Effect effect;
  v1::ToolCall* call = effect.mutable_tools()->add_calls();
  call->set_id("c1");
  call->set_name(name);
  *call->mutable_arguments() = Str(argument);
  return effect;
}
v1::Effect FinishEffect(const std::string& output) {
  v1::Effect effect;
  *effect.mutable_finish()->mutable_output() = Str(output);
  return effect;
}
v1::EffectResult Result(const v1::StepRecord& step) {
  v1::EffectResult result;
  result.ParseFromString(step.output());
  return result;
}

// Tool calls, answered by a function; counts every call by argument.
class FakeTools final : public EffectHandler {
 public:
  // What a call does: answer, fail, or hang until cancelled.
  enum class Mode { kAnswer, kFail, kHang };
  std::function<Mode(const std::string& argument, int call)> mode = [](const std::string&, int) {
    return Mode::kAnswer;
  };

  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    const std::string argument = effect.tools().calls(0).arguments().string_value();
    int n;
    {
      absl::MutexLock lock(&mu_);
      n = ++calls_[argument];
    }
    switch (mode(argument, n)) {
      case Mode::kAnswer: {
        v1::EffectResult result;
        v1::ToolResult* r = result.mutable_tools()->add_results();
        r->set_id(effect.tools().calls(0).id());
        *r->mutable_output() = Str(absl::StrCat("did ", argument));
        return std::move(done)(std::move(result));
      }
      case Mode::kFail:
        return std::move(done)(absl::UnavailableError("tool down"));
      case Mode::kHang: {
        auto shared = std::make_shared<decltype(done)>(std::move(done));
        call->OnCancel([this, shared] {
          cancelled_.fetch_add(1);
          std::move (*shared)(absl::CancelledError("aborted"));
        });
        return;
      }
    }
  }
  int calls(const std::string& argument) {
    absl::MutexLock lock(&mu_);
    return calls_[argument];
  }
  int cancelled() const { return cancelled_.load(); }
  int total_calls() {
    absl::MutexLock lock(&mu_);
    int total = 0;
    for (const auto& [argument, n] : calls_) total += n;
    return total;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> cancelled_{0};
};

// Two steps: a tool call with the task's input, then finish with its output.
std::shared_ptr<FunctionAgent> ToolThenFinish() {
  return std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
    if (c.journal.empty()) return ToolEffect("work", c.task.input().string_value());
    const v1::EffectResult last = Result(c.journal.back());
    return FinishEffect(last.tools().results(0).output().string_value());
  });
}

class AgentRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = CreateInMemoryTaskStore(); }

  void Start(AgentRuntimeOptions options = {}) {
    options.tools = &tools_;
    options.threads = 2;
    if (options.watchdog_interval == absl::Seconds(1)) {
      options.watchdog_interval = absl::Milliseconds(20);
    }
    auto runtime = AgentRuntime::Create(options, *store_);
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *std::move(runtime);
  }

  v1::AgentSpec Spec(const std::string& name) {
    v1::AgentSpec spec;
    spec.set_name(name);
    spec.mutable_retry()->mutable_initial_backoff()->set_nanos(10'000'000);
    return spec;
  }

  std::string Submit(const std::string& agent, const std::string& input,
                     const std::string& key = "") {
    v1::Task task;
    task.set_agent(agent);
    task.set_tenant("t1");
    *task.mutable_input() = Str(input);
    task.set_idempotency_key(key);
    auto submitted = runtime_->Submit(task);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task.id() : "";
  }

  // Waits (bounded) until the task is in `state`.
  // Until the tools have been called `n` times in all. A task shows
  // WAITING_TOOL once its step is journaled, a moment before its tool call
  // starts; a cancel in between ends the task without calling the tool.
  void WaitForToolCalls(int n) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (tools_.total_calls() < n && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
    EXPECT_GE(tools_.total_calls(), n) << "the tools were not called in time";
  }

  v1::Task WaitFor(const std::string& id, v1::TaskState state,
                   absl::Duration limit = absl::Seconds(10)) {
    const absl::Time end = absl::Now() + limit;
    absl::StatusOr<v1::Task> task = store_->Get(id);
    while (absl::Now() < end) {
      task = store_->Get(id);
      if (task.ok() && task->state() == state) return *task;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "task " << id << " never reached " << v1::TaskState_Name(state) << "; is "
                  << (task.ok() ? v1::TaskState_Name(task->state()) + " " + task->error()
                                : task.status().ToString());
    return task.ok() ? *task : v1::Task();
  }

  std::unique_ptr<TaskStore> store_;
  FakeTools tools_;
  std::unique_ptr<AgentRuntime> runtime_;
};

TEST_F(AgentRuntimeTest, RunsEachStepAndJournalsItsEffectAndResult) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  v1::Task done = WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(done.output().string_value(), "did x");
  auto journal = store_->Journal(id);
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), 2u);
  EXPECT_EQ((*journal)[0].kind(), "tools");
  EXPECT_EQ((*journal)[0].status(), v1::StepRecord::STATUS_COMPLETED);
  EXPECT_EQ(Result((*journal)[0]).tools().results(0).output().string_value(), "did x");
  EXPECT_EQ((*journal)[1].kind(), "finish");
  EXPECT_EQ(tools_.calls("x"), 1);
}

TEST_F(AgentRuntimeTest, ARepeatedSubmitReturnsTheFirstTask) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string first = Submit("worker", "x", "key-1");
  const std::string again = Submit("worker", "y", "key-1");
  EXPECT_EQ(first, again);
  WaitFor(first, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(tools_.calls("y"), 0);
}

TEST_F(AgentRuntimeTest, UnknownAgentIsRefusedAtSubmit) {
  Start();
  ASSERT_TRUE(runtime_->Start().ok());
  v1::Task task;
  task.set_agent("nobody");
  EXPECT_EQ(runtime_->Submit(task).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentRuntimeTest, AFailingEffectIsRetriedThenSucceeds) {
  tools_.mode = [](const std::string&, int call) {
    return call < 3 ? FakeTools::Mode::kFail : FakeTools::Mode::kAnswer;
  };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(tools_.calls("x"), 3);
  auto journal = store_->Journal(id);
  EXPECT_EQ((*journal)[0].attempt(), 3);
}

TEST_F(AgentRuntimeTest, AnEffectFailingEveryAttemptFailsTheTaskSayingWhy) {
  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kFail; };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  v1::Task failed = WaitFor(id, v1::TASK_STATE_FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("step 1 (tools) failed after 3 attempts: tool down"));
  EXPECT_EQ(tools_.calls("x"), 3);
  EXPECT_EQ((*store_->Journal(id))[0].status(), v1::StepRecord::STATUS_FAILED);
}

TEST_F(AgentRuntimeTest, MaxStepsEndsTheTaskWithItsReason) {
  Start();
  v1::AgentSpec spec = Spec("looper");
  spec.mutable_limits()->set_max_steps(4);
  auto looper =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        return ToolEffect("work", absl::StrCat("step", c.journal.size()));
      });
  ASSERT_TRUE(runtime_->RegisterAgent(spec, looper).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("looper", "x");
  v1::Task failed = WaitFor(id, v1::TASK_STATE_FAILED);
  EXPECT_EQ(failed.error(), "max_steps reached (4)");
  EXPECT_EQ(store_->Journal(id)->size(), 4u);
}

TEST_F(AgentRuntimeTest, ATimerEffectWaitsThenTheTaskGoesOn) {
  Start();
  auto sleeper =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) return FinishEffect("woke");
        v1::Effect effect;
        effect.mutable_timer()->mutable_after()->set_nanos(200'000'000);
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("sleeper"), sleeper).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const absl::Time start = absl::Now();
  const std::string id = Submit("sleeper", "x");
  WaitFor(id, v1::TASK_STATE_WAITING_TIMER);
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
}

TEST_F(AgentRuntimeTest, CancelAbortsTheRunningEffectAndIsIdempotent) {
  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kHang; };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  WaitFor(id, v1::TASK_STATE_WAITING_TOOL);
  WaitForToolCalls(1);
  ASSERT_TRUE(runtime_->Cancel(id).ok());
  v1::Task cancelled = WaitFor(id, v1::TASK_STATE_CANCELLED);
  EXPECT_TRUE(cancelled.cancel_requested());
  EXPECT_EQ(tools_.cancelled(), 1);
  EXPECT_TRUE(runtime_->Cancel(id).ok());  // Again: nothing changes.
  EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(runtime_->Cancel("no-such-task").code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentRuntimeTest, CancellingAParentCancelsItsChildren) {
  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kHang; };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  auto parent =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) return FinishEffect("children done");
        v1::Effect effect;
        for (const char* input : {"a", "b"}) {
          v1::Task* child = effect.mutable_children()->add_tasks();
          child->set_agent("worker");
          *child->mutable_input() = Str(input);
        }
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("parent"), parent).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("parent", "p");
  WaitFor(id, v1::TASK_STATE_WAITING_CHILDREN);
  std::vector<std::string> children;
  for (int i = 0; i < 500 && children.size() < 2; ++i) {
    children = *store_->Children(id);
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(children.size(), 2u);
  for (const auto& child : children) WaitFor(child, v1::TASK_STATE_WAITING_TOOL);
  WaitForToolCalls(2);
  ASSERT_TRUE(runtime_->Cancel(id).ok());
  WaitFor(id, v1::TASK_STATE_CANCELLED);
  for (const auto& child : children) WaitFor(child, v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(tools_.cancelled(), 2);
}

TEST_F(AgentRuntimeTest, AParentWaitsForItsChildrenAndSeesTheirResults) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  auto parent =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) {
          std::string joined;
          const v1::EffectResult result = Result(c.journal.back());
          for (const v1::Task& child : result.children().tasks()) {
            joined += child.output().string_value() + ";";
          }
          return FinishEffect(joined);
        }
        v1::Effect effect;
        for (const char* input : {"a", "b", "c"}) {
          v1::Task* child = effect.mutable_children()->add_tasks();
          child->set_agent("worker");
          *child->mutable_input() = Str(input);
        }
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("parent"), parent).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("parent", "p");
  v1::Task done = WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(done.output().string_value(), "did a;did b;did c;");
}

TEST_F(AgentRuntimeTest, ATaskPastItsDeadlineTimesOut) {
  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kHang; };
  Start();
  v1::AgentSpec spec = Spec("worker");
  spec.mutable_limits()->mutable_task_timeout()->set_nanos(200'000'000);
  ASSERT_TRUE(runtime_->RegisterAgent(spec, ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  v1::Task timed_out = WaitFor(id, v1::TASK_STATE_TIMED_OUT);
  EXPECT_THAT(timed_out.error(), HasSubstr("deadline"));
  EXPECT_EQ(tools_.cancelled(), 1);
}

TEST_F(AgentRuntimeTest, AStepWithoutHeartbeatIsFailedByTheWatchdogAndRetried) {
  tools_.mode = [](const std::string&, int call) {
    return call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  Start();
  v1::AgentSpec spec = Spec("worker");
  spec.mutable_limits()->mutable_heartbeat_timeout()->set_nanos(100'000'000);
  ASSERT_TRUE(runtime_->RegisterAgent(spec, ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(tools_.calls("x"), 2);
  EXPECT_EQ(tools_.cancelled(), 1);
}

TEST_F(AgentRuntimeTest, AStepTimeoutFailsTheTaskAfterItsAttempts) {
  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kHang; };
  Start();
  v1::AgentSpec spec = Spec("worker");
  spec.mutable_limits()->mutable_step_timeout()->set_nanos(50'000'000);
  spec.mutable_retry()->set_max_attempts(2);
  ASSERT_TRUE(runtime_->RegisterAgent(spec, ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  v1::Task failed = WaitFor(id, v1::TASK_STATE_FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("failed after 2 attempts: step timeout"));
}

TEST_F(AgentRuntimeTest, ASignalWakesATaskWaitingForIt) {
  Start();
  auto waiter =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) {
          return FinishEffect(Result(c.journal.back()).signal().payload().string_value());
        }
        v1::Effect effect;
        effect.mutable_signal()->set_name("go");
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("waiter"), waiter).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("waiter", "x");
  WaitFor(id, v1::TASK_STATE_WAITING_TIMER);
  EXPECT_EQ(runtime_->Signal(id, "other", Str("no")).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(runtime_->Signal(id, "go", Str("hello")).ok());
  v1::Task done = WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(done.output().string_value(), "hello");
}

TEST_F(AgentRuntimeTest, RunningTasksKeepTheirAgentVersionNewTasksGetTheNewOne) {
  Start();
  auto versioned = [](const std::string& name) {
    return std::make_shared<FunctionAgent>(
        [name](const StepContext& c) -> absl::StatusOr<v1::Effect> {
          if (c.journal.empty()) {
            v1::Effect effect;
            effect.mutable_signal()->set_name("go");
            return effect;
          }
          return FinishEffect(name);
        });
  };
  ASSERT_EQ(runtime_->RegisterAgent(Spec("agent"), versioned("v1"))->version(), 1u);
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string old_task = Submit("agent", "x");
  WaitFor(old_task, v1::TASK_STATE_WAITING_TIMER);
  ASSERT_EQ(runtime_->RegisterAgent(Spec("agent"), versioned("v2"))->version(), 2u);
  const std::string new_task = Submit("agent", "y");
  WaitFor(new_task, v1::TASK_STATE_WAITING_TIMER);
  ASSERT_TRUE(runtime_->Signal(old_task, "go", Str("")).ok());
  ASSERT_TRUE(runtime_->Signal(new_task, "go", Str("")).ok());
  EXPECT_EQ(WaitFor(old_task, v1::TASK_STATE_SUCCEEDED).output().string_value(), "v1");
  EXPECT_EQ(WaitFor(new_task, v1::TASK_STATE_SUCCEEDED).output().string_value(), "v2");
}

TEST_F(AgentRuntimeTest, AfterARestartFinishedStepsAreReplayedNotPerformedAgain) {
  // Step 1's tool answers; step 2's hangs until the runtime goes away.
  tools_.mode = [](const std::string& argument, int) {
    return argument == "second" ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  auto two_tools =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (c.journal.empty()) return ToolEffect("work", "first");
        if (c.journal.size() == 1) return ToolEffect("work", "second");
        return FinishEffect(Result(c.journal.back()).tools().results(0).output().string_value());
      });
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), two_tools).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  for (int i = 0; i < 1000 && tools_.calls("second") == 0; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(tools_.calls("second"), 1);
  runtime_->Shutdown();  // As if the process died with step 2 in flight.
  runtime_.reset();

  tools_.mode = [](const std::string&, int) { return FakeTools::Mode::kAnswer; };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), two_tools).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  v1::Task done = WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(done.output().string_value(), "did second");
  EXPECT_EQ(tools_.calls("first"), 1);   // Finished before the restart: never again.
  EXPECT_EQ(tools_.calls("second"), 2);  // Unfinished: performed again.
}

TEST_F(AgentRuntimeTest, DelayedTasksWaitForNotBefore) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  v1::Task task;
  task.set_agent("worker");
  *task.mutable_input() = Str("later");
  const absl::Time start = absl::Now();
  task.mutable_not_before()->set_seconds(absl::ToUnixSeconds(start + absl::Milliseconds(1500)));
  auto submitted = runtime_->Submit(task);
  ASSERT_TRUE(submitted.ok());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(store_->Get(submitted->task.id())->state(), v1::TASK_STATE_PENDING);
  WaitFor(submitted->task.id(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
}

// Fails its first Start; fine afterwards.
class FlakyStartAgent final : public Agent {
 public:
  absl::StatusOr<v1::Effect> Step(const StepContext&) override { return FinishEffect("ran"); }
  void Start(absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::move(done)(starts_.fetch_add(1) == 0 ? absl::InternalError("no GPU yet")
                                              : absl::OkStatus());
  }
  int starts() const { return starts_.load(); }

 private:
  std::atomic<int> starts_{0};
};

TEST_F(AgentRuntimeTest, TasksWaitForAnAgentThatFailedToStartAndRunOnceItRestarted) {
  Start();
  v1::AgentSpec spec = Spec("flaky");
  spec.mutable_restart()->mutable_initial_backoff()->set_nanos(300'000'000);
  auto agent = std::make_shared<FlakyStartAgent>();
  ASSERT_TRUE(runtime_->RegisterAgent(spec, agent).ok());
  EXPECT_EQ(runtime_->GetAgentStatus("flaky")->state(), v1::AGENT_STATE_FAILED);
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("flaky", "x");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_PENDING);  // Waits, does not fail.
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(agent->starts(), 2);
  EXPECT_EQ(runtime_->GetAgentStatus("flaky")->restarts(), 1u);
}

TEST_F(AgentRuntimeTest, AStoppedAgentTakesNoTasksUntilStartedAgain) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  ASSERT_TRUE(runtime_->StopAgent("worker").ok());
  EXPECT_EQ(runtime_->GetAgentStatus("worker")->state(), v1::AGENT_STATE_STOPPED);
  const std::string id = Submit("worker", "x");
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(tools_.calls("x"), 0);
  ASSERT_TRUE(runtime_->StartAgent("worker").ok());
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
}

TEST_F(AgentRuntimeTest, ADrainOutOfTimeHandsRunningTasksBackToRunAgainLater) {
  tools_.mode = [](const std::string&, int call) {
    return call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  WaitFor(id, v1::TASK_STATE_WAITING_TOOL);
  WaitForToolCalls(1);
  ASSERT_TRUE(runtime_->DrainAgent("worker", absl::Milliseconds(50)).ok());
  WaitFor(id, v1::TASK_STATE_PENDING);  // Handed back, its tool call abandoned.
  EXPECT_EQ(tools_.cancelled(), 1);
  for (int i = 0; i < 200 && runtime_->GetAgentStatus("worker")->state() != v1::AGENT_STATE_STOPPED;
       ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(runtime_->GetAgentStatus("worker")->state(), v1::AGENT_STATE_STOPPED);
  ASSERT_TRUE(runtime_->StartAgent("worker").ok());
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(tools_.calls("x"), 2);
}

TEST_F(AgentRuntimeTest, CancellingATaskWaitingForItsAgentEndsIt) {
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  ASSERT_TRUE(runtime_->StopAgent("worker").ok());
  const std::string id = Submit("worker", "x");
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(runtime_->Cancel(id).ok());
  WaitFor(id, v1::TASK_STATE_CANCELLED);
}

// Scheduled tasks spawned so far (tasks labelled with the schedule).
int ScheduledRuns(TaskStore& store, const std::string& schedule) {
  TaskFilter filter;
  filter.agent = "worker";
  filter.page_size = 1000;
  int runs = 0;
  const absl::StatusOr<TaskPage> page = store.List(filter);
  for (const v1::Task& task : page->tasks) {
    auto it = task.labels().find("flowork-schedule");
    if (it != task.labels().end() && it->second == schedule) ++runs;
  }
  return runs;
}

TEST_F(AgentRuntimeTest, ASchedulePicksUpAfterDowntimeWithOneRunNotAStorm) {
  // 12:00:59.8 UTC: the first minute boundary is 200 ms away.
  testing::FakeClock clock(absl::FromUnixSeconds(1'800'000'000 - 1'800'000'000 % 60 + 59) +
                           absl::Milliseconds(800));
  AgentRuntimeOptions options;
  options.clock = &clock;
  Start(options);
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  v1::Schedule schedule;
  schedule.set_name("every-minute");
  schedule.set_cron("* * * * *");
  schedule.mutable_task()->set_agent("worker");
  *schedule.mutable_task()->mutable_input() = Str("tick");
  auto added = runtime_->AddSchedule(schedule);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(runtime_->AddSchedule(schedule).status().code(), absl::StatusCode::kAlreadyExists);
  schedule.set_name("bad");
  schedule.set_cron("61 * * * *");
  EXPECT_EQ(runtime_->AddSchedule(schedule).status().code(), absl::StatusCode::kInvalidArgument);
  for (int i = 0; i < 400 && ScheduledRuns(*store_, "every-minute") < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(ScheduledRuns(*store_, "every-minute"), 1);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(ScheduledRuns(*store_, "every-minute"), 1);  // The next is a minute away.

  // Down for three and a half hours: 210 runs were missed.
  runtime_->Shutdown();
  runtime_.reset();
  clock.Advance(absl::Hours(3) + absl::Minutes(30) + absl::Milliseconds(100));
  Start(options);
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  // One run for all that was missed, then the next boundary (100 ms away).
  for (int i = 0; i < 400 && ScheduledRuns(*store_, "every-minute") < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(ScheduledRuns(*store_, "every-minute"), 3);
  auto listed = runtime_->ListSchedules();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name(), "every-minute");
  ASSERT_TRUE(runtime_->RemoveSchedule("every-minute").ok());
  EXPECT_TRUE(runtime_->ListSchedules()->empty());
  EXPECT_EQ(runtime_->RemoveSchedule("every-minute").code(), absl::StatusCode::kNotFound);
}

// Tool "work" needs approval; other tools do not.
class WorkNeedsApproval final : public ApprovalPolicy {
 public:
  absl::Duration timeout = absl::InfiniteDuration();
  std::optional<Rule> Check(const v1::Task&, const v1::ToolCall& call) const override {
    if (call.name() != "work") return std::nullopt;
    return Rule{.reason = "work changes things", .timeout = timeout};
  }
};

// Finishes with the tool's output, or its error.
std::shared_ptr<FunctionAgent> ToolThenReport() {
  return std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
    if (c.journal.empty()) return ToolEffect("work", c.task.input().string_value());
    const v1::EffectResult last = Result(c.journal.back());
    const v1::ToolResult& r = last.tools().results(0);
    return FinishEffect(r.error().empty() ? r.output().string_value() : r.error());
  });
}

class ApprovalTest : public AgentRuntimeTest {
 protected:
  void StartWithApprovals() {
    AgentRuntimeOptions options;
    options.approvals = &policy_;
    Start(options);
    ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenReport()).ok());
    ASSERT_TRUE(runtime_->Start().ok());
  }
  std::vector<v1::PendingApproval> WaitPending() {
    std::vector<v1::PendingApproval> pending;
    for (int i = 0; i < 400 && pending.empty(); ++i) {
      pending = runtime_->PendingApprovals();
      if (pending.empty()) absl::SleepFor(absl::Milliseconds(5));
    }
    return pending;
  }
  WorkNeedsApproval policy_;
};

TEST_F(ApprovalTest, AToolCallWaitsForApprovalThenRunsOnce) {
  StartWithApprovals();
  const std::string id = Submit("worker", "deploy");
  WaitFor(id, v1::TASK_STATE_WAITING_APPROVAL);
  std::vector<v1::PendingApproval> pending = WaitPending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].task_id(), id);
  EXPECT_EQ(pending[0].call().name(), "work");
  EXPECT_EQ(pending[0].reason(), "work changes things");
  EXPECT_EQ(tools_.calls("deploy"), 0);
  ASSERT_TRUE(
      runtime_->Decide(id, pending[0].call_id(), {.verdict = v1::VERDICT_APPROVE, .who = "alice"})
          .ok());
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did deploy");
  EXPECT_EQ(tools_.calls("deploy"), 1);
  // Who decided is in the journal.
  const auto journal = store_->Journal(id);
  ASSERT_EQ((*journal)[0].kind(), "approval");
  EXPECT_EQ(Result((*journal)[0]).approval().decisions(0).who(), "alice");
  EXPECT_EQ(runtime_->Decide(id, pending[0].call_id(), {.verdict = v1::VERDICT_APPROVE}).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ApprovalTest, ADenialReachesTheAgentAsTheToolsResult) {
  StartWithApprovals();
  const std::string id = Submit("worker", "deploy");
  std::vector<v1::PendingApproval> pending = WaitPending();
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_TRUE(runtime_
                  ->Decide(id, pending[0].call_id(),
                           {.verdict = v1::VERDICT_DENY, .who = "bob", .comment = "not today"})
                  .ok());
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(),
            "denied by bob: not today");
  EXPECT_EQ(tools_.calls("deploy"), 0);
}

TEST_F(ApprovalTest, EditAndApproveRunsTheEditedArguments) {
  StartWithApprovals();
  const std::string id = Submit("worker", "deploy to prod");
  std::vector<v1::PendingApproval> pending = WaitPending();
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_TRUE(runtime_
                  ->Decide(id, pending[0].call_id(),
                           {.verdict = v1::VERDICT_APPROVE,
                            .who = "carol",
                            .edited_arguments = Str("deploy to staging")})
                  .ok());
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did deploy to staging");
  EXPECT_EQ(tools_.calls("deploy to prod"), 0);
}

TEST_F(ApprovalTest, AnUndecidedCallGetsTheDefaultVerdictAtItsTimeout) {
  policy_.timeout = absl::Milliseconds(150);
  StartWithApprovals();
  const std::string id = Submit("worker", "deploy");
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "denied by timeout");
  EXPECT_EQ(tools_.calls("deploy"), 0);
}

TEST_F(ApprovalTest, AnApprovalWaitSurvivesARestart) {
  StartWithApprovals();
  const std::string id = Submit("worker", "deploy");
  ASSERT_EQ(WaitPending().size(), 1u);
  runtime_->Shutdown();
  runtime_.reset();
  StartWithApprovals();  // A new runtime on the same store, as after a restart.
  std::vector<v1::PendingApproval> pending = WaitPending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_WAITING_APPROVAL);
  ASSERT_TRUE(
      runtime_->Decide(id, pending[0].call_id(), {.verdict = v1::VERDICT_APPROVE, .who = "alice"})
          .ok());
  WaitFor(id, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(tools_.calls("deploy"), 1);
}

// Answers every model call with a usage of 150 tokens.
class HungryModel final : public EffectHandler {
 public:
  void Perform(const v1::Effect&, std::shared_ptr<EffectCall>,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    v1::EffectResult result;
    auto& usage = (*result.mutable_model()->mutable_struct_value()->mutable_fields())["usage"];
    (*usage.mutable_struct_value()->mutable_fields())["prompt_tokens"].set_number_value(100);
    (*usage.mutable_struct_value()->mutable_fields())["completion_tokens"].set_number_value(50);
    std::move(done)(std::move(result));
  }
};

TEST_F(AgentRuntimeTest, ModelUsageIsSettledWithTheModelsTokenBudget) {
  HungryModel model;
  AgentRuntimeOptions options;
  options.models = &model;
  options.dispatch.model_budgets["small-model"] = {.tokens_per_minute = 100};
  Start(options);
  v1::AgentSpec spec = Spec("asker");
  spec.set_model("small-model");
  auto asker =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) return FinishEffect("answered");
        v1::Effect effect;
        effect.mutable_model()->set_model("small-model");
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(spec, asker).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string first = Submit("asker", "a");
  WaitFor(first, v1::TASK_STATE_SUCCEEDED);
  // The task is stored as done a moment before its run gives back its slot
  // and books its usage; the agent counts it as running until then.
  for (int i = 0; i < 1000 && runtime_->GetAgentStatus("asker")->running_tasks() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // 150 tokens used of 100 a minute: the next task waits for the bucket.
  const std::string second = Submit("asker", "b");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(store_->Get(second)->state(), v1::TASK_STATE_PENDING);
}

// Two tool steps: "first" answers, "second" hangs until told otherwise.
std::shared_ptr<FunctionAgent> TwoTools() {
  return std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
    if (c.journal.empty()) return ToolEffect("work", "first");
    if (c.journal.size() == 1) return ToolEffect("work", "second");
    return FinishEffect(Result(c.journal.back()).tools().results(0).output().string_value());
  });
}

TEST_F(AgentRuntimeTest, ASuspendedTaskResumesWhereItStopped) {
  tools_.mode = [](const std::string& argument, int call) {
    return argument == "second" && call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), TwoTools()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  for (int i = 0; i < 1000 && tools_.calls("second") == 0; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  WaitFor(id, v1::TASK_STATE_SUSPENDED);
  EXPECT_EQ(tools_.cancelled(), 1);
  EXPECT_EQ(runtime_->Resume("no-such-task").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(runtime_->Resume(id).ok());
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did second");
  EXPECT_EQ(tools_.calls("first"), 1);
  EXPECT_EQ(tools_.calls("second"), 2);
  EXPECT_EQ(runtime_->Suspend(id).code(), absl::StatusCode::kFailedPrecondition);
}

// A task store with two gates the test opens:
// - writes that suspend a task report back only once the test says so: the
//   state is stored (readers see SUSPENDED) while the runtime is still ending
//   the run;
// - once armed, the next read from another thread (the runtime beginning a
//   task it took from its queue) waits for the test twice: before it reads
//   and before it returns what it read.
class GatedTaskStore final : public ForwardingTaskStore {
 public:
  explicit GatedTaskStore(std::unique_ptr<TaskStore> inner)
      : ForwardingTaskStore(std::move(inner)) {}

  void ApplyAsync(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> done) override {
    if (update.state != v1::TASK_STATE_SUSPENDED) {
      return ForwardingTaskStore::ApplyAsync(std::move(update), std::move(done));
    }
    absl::Status stored = inner().Apply(std::move(update));
    absl::MutexLock lock(&mu_);
    late_.emplace_back([this, stored = std::move(stored), done = std::move(done)]() mutable {
      release_.WaitForNotificationWithTimeout(absl::Seconds(10));
      std::move(done)(std::move(stored));
    });
  }
  // Lets the suspending writes report back.
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  absl::StatusOr<v1::Task> Get(std::string_view id) const override {
    bool hold = false;
    {
      absl::MutexLock lock(&mu_);
      if (hold_reader_ && std::this_thread::get_id() != armed_by_) {
        hold_reader_ = false;
        hold = true;
      }
    }
    if (!hold) return ForwardingTaskStore::Get(id);
    read_held_.Notify();
    read_.WaitForNotificationWithTimeout(absl::Seconds(10));
    absl::StatusOr<v1::Task> task = ForwardingTaskStore::Get(id);
    read_done_.Notify();
    return_.WaitForNotificationWithTimeout(absl::Seconds(10));
    return task;
  }
  // Holds the next Get from a thread other than the caller's.
  void HoldNextRead() {
    absl::MutexLock lock(&mu_);
    hold_reader_ = true;
    armed_by_ = std::this_thread::get_id();
  }
  // Waits until that Get is held before it reads.
  bool WaitReadHeld() { return read_held_.WaitForNotificationWithTimeout(absl::Seconds(10)); }
  // Lets it read, and waits until it has (it is then held before returning).
  bool LetReadAndWait() {
    if (!read_.HasBeenNotified()) read_.Notify();
    return read_done_.WaitForNotificationWithTimeout(absl::Seconds(10));
  }
  // Lets it read (if it has not) and return.
  void LetReadReturn() {
    if (!read_.HasBeenNotified()) read_.Notify();
    if (!return_.HasBeenNotified()) return_.Notify();
  }

  ~GatedTaskStore() override {
    Release();
    LetReadReturn();
    absl::MutexLock lock(&mu_);
    for (std::thread& t : late_) t.join();
  }

 private:
  mutable absl::Mutex mu_;
  absl::Notification release_;
  std::vector<std::thread> late_ ABSL_GUARDED_BY(mu_);
  mutable bool hold_reader_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id armed_by_ ABSL_GUARDED_BY(mu_);
  mutable absl::Notification read_held_;
  mutable absl::Notification read_;
  mutable absl::Notification read_done_;
  mutable absl::Notification return_;
};

// A task suspended while its "second" tool call hangs, on a store that
// reports the suspension only once `late_` is released.
class SuspendRaceTest : public AgentRuntimeTest {
 protected:
  void SetUp() override {
    AgentRuntimeTest::SetUp();
    auto gated = std::make_unique<GatedTaskStore>(std::move(store_));
    late_ = gated.get();
    store_ = std::move(gated);
  }

  // Submits a task whose run is held at its read of the task (see
  // GatedTaskStore); returns its id.
  std::string SubmitHeldAtItsRead() {
    Start();
    EXPECT_TRUE(runtime_->RegisterAgent(Spec("worker"), TwoTools()).ok());
    EXPECT_TRUE(runtime_->Start().ok());
    late_->HoldNextRead();
    const std::string id = Submit("worker", "x");
    EXPECT_TRUE(late_->WaitReadHeld());
    return id;
  }

  // The task stays suspended, nothing runs it, and once resumed it runs.
  void ExpectSuspendedUntilResumed(const std::string& id) {
    absl::SleepFor(absl::Milliseconds(300));  // Nothing may run it meanwhile.
    EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_SUSPENDED);
    EXPECT_EQ(tools_.calls("first"), 0);
    ASSERT_TRUE(runtime_->Resume(id).ok());
    EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did second");
    EXPECT_EQ(tools_.calls("first"), 1);
  }

  // The suspended task's id; the suspension is stored, its run not ended.
  std::string SuspendMidCall() {
    tools_.mode = [](const std::string& argument, int call) {
      return argument == "second" && call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
    };
    Start();
    EXPECT_TRUE(runtime_->RegisterAgent(Spec("worker"), TwoTools()).ok());
    EXPECT_TRUE(runtime_->Start().ok());
    const std::string id = Submit("worker", "x");
    WaitForToolCalls(2);
    EXPECT_TRUE(runtime_->Suspend(id).ok());
    WaitFor(id, v1::TASK_STATE_SUSPENDED);
    return id;
  }

  GatedTaskStore* late_ = nullptr;
};

// CI caught a resumed task left PENDING for good: Resume came while the
// suspended run still held its dispatch slot, and the queue refused the task
// as running.
TEST_F(SuspendRaceTest, AResumeWhileTheSuspendedRunIsStillEndingIsNotLost) {
  const std::string id = SuspendMidCall();
  ASSERT_TRUE(runtime_->Resume(id).ok());  // The suspended run has not ended yet.
  late_->Release();
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did second");
  EXPECT_EQ(tools_.calls("second"), 2);
}

// A suspend that comes between such a resume and the end of the old run
// wins: the task stays suspended.
TEST_F(SuspendRaceTest, ASuspendAfterSuchAResumeKeepsTheTaskSuspended) {
  const std::string id = SuspendMidCall();
  ASSERT_TRUE(runtime_->Resume(id).ok());
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  late_->Release();
  WaitFor(id, v1::TASK_STATE_SUSPENDED);
  absl::SleepFor(absl::Milliseconds(300));  // Nothing may pick it up meanwhile.
  EXPECT_EQ(store_->Get(id)->state(), v1::TASK_STATE_SUSPENDED);
  EXPECT_EQ(tools_.calls("second"), 1);
  ASSERT_TRUE(runtime_->Resume(id).ok());
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did second");
}

// A suspend that comes between the queue and the task's run: the run must
// not begin. (Before, it began on a task stored as SUSPENDED and only the
// store's state checks stopped its first write.) `late_` holds the runtime's
// read of the task as it begins it.
TEST_F(SuspendRaceTest, ASuspendBeforeTheRunReadsTheTaskKeepsItFromRunning) {
  const std::string id = SubmitHeldAtItsRead();
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  late_->LetReadReturn();
  ExpectSuspendedUntilResumed(id);
}

TEST_F(SuspendRaceTest, ASuspendAfterTheRunReadTheTaskKeepsItFromRunning) {
  const std::string id = SubmitHeldAtItsRead();
  ASSERT_TRUE(late_->LetReadAndWait());  // It read the task PENDING.
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  late_->LetReadReturn();
  ExpectSuspendedUntilResumed(id);
}

// Suspended before the run read the task, resumed after: the run saw it
// SUSPENDED, and the resume's queueing was refused (the task still held its
// slot). It must still run, once. (Before, it stayed PENDING for good.)
TEST_F(SuspendRaceTest, AResumeAfterTheRunReadTheSuspendedTaskRunsItOnce) {
  const std::string id = SubmitHeldAtItsRead();
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  ASSERT_TRUE(late_->LetReadAndWait());  // It read the task SUSPENDED.
  ASSERT_TRUE(runtime_->Resume(id).ok());
  late_->LetReadReturn();
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "did second");
  EXPECT_EQ(tools_.calls("first"), 1);
  EXPECT_EQ(tools_.calls("second"), 1);
}

TEST_F(AgentRuntimeTest, ASnapshotRestoredOnAnotherNodeContinuesTheSameTask) {
  tools_.mode = [](const std::string& argument, int call) {
    return argument == "second" && call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), TwoTools()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("worker", "x");
  for (int i = 0; i < 1000 && tools_.calls("second") == 0; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(runtime_->Suspend(id).ok());
  WaitFor(id, v1::TASK_STATE_SUSPENDED);
  auto snapshot = runtime_->Snapshot(id);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->steps_size(), 2);
  // Through bytes, as it would travel.
  v1::TaskSnapshot shipped;
  ASSERT_TRUE(shipped.ParseFromString(snapshot->SerializeAsString()));

  // Another node: its own store and runtime.
  std::unique_ptr<TaskStore> other_store = CreateInMemoryTaskStore();
  AgentRuntimeOptions options;
  options.tools = &tools_;
  options.watchdog_interval = absl::Milliseconds(20);
  auto other = AgentRuntime::Create(options, *other_store);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->RegisterAgent(Spec("worker"), TwoTools()).ok());
  ASSERT_TRUE((*other)->Start().ok());
  auto restored = (*other)->Restore(shipped);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*other)->Restore(shipped)->id(), restored->id());  // Once per store.
  v1::Task done;
  for (int i = 0; i < 1000; ++i) {
    done = *other_store->Get(restored->id());
    if (done.state() == v1::TASK_STATE_SUCCEEDED) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.output().string_value(), "did second");
  EXPECT_EQ(done.labels().at("flowork-restored-from"), id);
  EXPECT_EQ(tools_.calls("first"), 1);  // Completed before the snapshot: never again.
  EXPECT_EQ(other_store->Journal(restored->id())->size(), 3u);
  (*other)->Shutdown();
}

TEST_F(AgentRuntimeTest, FinishedTasksBeyondTheRetentionArePruned) {
  AgentRuntimeOptions options;
  options.retention.max_count = 1;
  options.retention_interval = absl::Milliseconds(50);
  Start(options);
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  std::vector<std::string> ids;
  for (const char* input : {"a", "b", "c"}) {
    ids.push_back(Submit("worker", input));
    WaitFor(ids.back(), v1::TASK_STATE_SUCCEEDED);
  }
  int left = 3;
  for (int i = 0; i < 200 && left > 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    left = 0;
    for (const std::string& id : ids) left += store_->Get(id).ok() ? 1 : 0;
  }
  EXPECT_EQ(left, 1);
  EXPECT_TRUE(store_->Get(ids.back()).ok());  // The newest finished task is kept.
}

TEST_F(AgentRuntimeTest, AParentStillWakesWhenItsChildWasSuspendedAndResumed) {
  tools_.mode = [](const std::string&, int call) {
    return call == 1 ? FakeTools::Mode::kHang : FakeTools::Mode::kAnswer;
  };
  Start();
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("worker"), ToolThenFinish()).ok());
  auto parent =
      std::make_shared<FunctionAgent>([](const StepContext& c) -> absl::StatusOr<v1::Effect> {
        if (!c.journal.empty()) return FinishEffect("children done");
        v1::Effect effect;
        v1::Task* child = effect.mutable_children()->add_tasks();
        child->set_agent("worker");
        *child->mutable_input() = Str("a");
        return effect;
      });
  ASSERT_TRUE(runtime_->RegisterAgent(Spec("parent"), parent).ok());
  ASSERT_TRUE(runtime_->Start().ok());
  const std::string id = Submit("parent", "p");
  WaitFor(id, v1::TASK_STATE_WAITING_CHILDREN);
  std::vector<std::string> children;
  for (int i = 0; i < 500 && children.empty(); ++i) {
    children = *store_->Children(id);
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(children.size(), 1u);
  WaitFor(children[0], v1::TASK_STATE_WAITING_TOOL);
  WaitForToolCalls(1);  // Suspended mid-call, so that the resumed call answers.
  ASSERT_TRUE(runtime_->Suspend(children[0]).ok());
  WaitFor(children[0], v1::TASK_STATE_SUSPENDED);
  ASSERT_TRUE(runtime_->Resume(children[0]).ok());
  WaitFor(children[0], v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(WaitFor(id, v1::TASK_STATE_SUCCEEDED).output().string_value(), "children done");
}

TEST(StepBackoffTest, DoublesFromTheInitialWaitUpToTheMaximumWithJitter) {
  v1::StepRetryPolicy policy;
  policy.mutable_initial_backoff()->set_seconds(1);
  policy.mutable_max_backoff()->set_seconds(5);
  policy.set_jitter(-1);  // None.
  EXPECT_EQ(StepBackoff(policy, 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(StepBackoff(policy, 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(StepBackoff(policy, 3, 0.5), absl::Seconds(4));
  EXPECT_EQ(StepBackoff(policy, 4, 0.5), absl::Seconds(5));
  EXPECT_EQ(StepBackoff(policy, 40, 0.5), absl::Seconds(5));
  policy.set_jitter(0.5);
  EXPECT_EQ(StepBackoff(policy, 2, 0.0), absl::Seconds(1));  // 2 s * (1 - 0.5)
  EXPECT_EQ(StepBackoff(policy, 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(StepBackoff(policy, 2, 1.0), absl::Seconds(3));  // 2 s * (1 + 0.5)
  v1::StepRetryPolicy defaults;                              // 1 s, 60 s, jitter 0.2
  EXPECT_EQ(StepBackoff(defaults, 1, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(StepBackoff(defaults, 7, 0.5), absl::Seconds(60));
}

}  // namespace
}  // namespace flowork::agent
