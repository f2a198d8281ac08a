#include "flowork/agent/agent_supervisor.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using State = v1::AgentState;

// Records the supervisor's calls; answers Start and CheckHealth inline with
// the configured result, or holds the answer back until told.
class FakeHooks final : public AgentHooks {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  void Start(Done done) override {
    calls.push_back("Start");
    if (on_start) on_start();
    if (answer_start_inline) {
      std::move(done)(start_result);
    } else {
      pending_start = std::move(done);
    }
  }

  void Stop() override {
    calls.push_back("Stop");
    if (on_stop) on_stop();
  }

  void CheckHealth(Done done) override {
    calls.push_back("CheckHealth");
    if (on_check) on_check();
    if (answer_health_inline) {
      std::move(done)(health_result);
    } else {
      pending_health = std::move(done);
    }
  }

  int Count(const std::string& call) const {
    return static_cast<int>(std::count(calls.begin(), calls.end(), call));
  }

  void AnswerStart(absl::Status status) { std::move(TakeStart())(std::move(status)); }
  Done TakeStart() { return std::exchange(pending_start, nullptr); }
  void AnswerHealth(absl::Status status) {
    std::move(std::exchange(pending_health, nullptr))(std::move(status));
  }

  bool answer_start_inline = true;
  absl::Status start_result;
  bool answer_health_inline = true;
  absl::Status health_result;
  std::function<void()> on_start;
  std::function<void()> on_stop;
  std::function<void()> on_check;
  Done pending_start;
  Done pending_health;
  std::vector<std::string> calls;
};

void SetDuration(google::protobuf::Duration* out, absl::Duration d) {
  out->set_seconds(absl::ToInt64Seconds(d));
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d % absl::Seconds(1))));
}

// An agent without health checks, so only what a test sets up is timed.
v1::AgentSpec Spec(std::string name) {
  v1::AgentSpec spec;
  spec.set_name(std::move(name));
  SetDuration(spec.mutable_restart()->mutable_health_interval(), absl::ZeroDuration());
  return spec;
}

class AgentSupervisorTest : public ::testing::Test {
 protected:
  v1::AgentStatus StatusOf(const std::string& name) {
    absl::StatusOr<v1::AgentStatus> status = supervisor_.Status(name);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.value_or(v1::AgentStatus());
  }
  State StateOf(const std::string& name) { return StatusOf(name).state(); }
  absl::Time NextRestart(const std::string& name) {
    v1::AgentStatus status = StatusOf(name);
    if (!status.has_next_restart_time()) return absl::InfiniteFuture();
    return absl::FromUnixSeconds(status.next_restart_time().seconds()) +
           absl::Nanoseconds(status.next_restart_time().nanos());
  }
  // Adds and starts an agent whose hooks answer Start with OK inline.
  void AddReady(const v1::AgentSpec& spec, FakeHooks& hooks) {
    ASSERT_TRUE(supervisor_.Add(spec, hooks).ok());
    ASSERT_TRUE(supervisor_.Start(spec.name()).ok());
    ASSERT_EQ(StateOf(spec.name()), v1::AGENT_STATE_READY);
  }

  testing::FakeClock clock_;
  AgentSupervisor supervisor_{clock_};
};

TEST_F(AgentSupervisorTest, StartedAgentIsReadyAndReported) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("writer");
  spec.mutable_limits()->set_max_concurrency(2);
  ASSERT_TRUE(supervisor_.Add(spec, hooks).ok());
  EXPECT_EQ(StateOf("writer"), v1::AGENT_STATE_CREATED);
  EXPECT_FALSE(supervisor_.MayTakeTask("writer"));

  ASSERT_TRUE(supervisor_.Start("writer").ok());
  EXPECT_THAT(hooks.calls, ElementsAre("Start"));
  v1::AgentStatus status = StatusOf("writer");
  EXPECT_EQ(status.name(), "writer");
  EXPECT_EQ(status.state(), v1::AGENT_STATE_READY);
  EXPECT_EQ(status.restarts(), 0u);
  EXPECT_EQ(status.consecutive_failures(), 0u);
  EXPECT_EQ(status.last_error(), "");
  EXPECT_FALSE(status.has_next_restart_time());
  EXPECT_EQ(status.running_tasks(), 0u);
  EXPECT_TRUE(supervisor_.MayTakeTask("writer"));
}

TEST_F(AgentSupervisorTest, StartingUntilStartAnswers) {
  FakeHooks hooks;
  hooks.answer_start_inline = false;
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STARTING);
  EXPECT_FALSE(supervisor_.MayTakeTask("a"));
  hooks.AnswerStart(absl::OkStatus());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
}

TEST_F(AgentSupervisorTest, StartAnsweredFromAnotherThread) {
  FakeHooks hooks;
  hooks.answer_start_inline = false;
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  std::thread answerer([done = hooks.TakeStart()]() mutable { std::move(done)(absl::OkStatus()); });
  answerer.join();
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
}

TEST_F(AgentSupervisorTest, FailedStartCountsAsFailure) {
  FakeHooks hooks;
  hooks.start_result = absl::UnavailableError("no model");
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  v1::AgentStatus status = StatusOf("a");
  EXPECT_EQ(status.state(), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(status.consecutive_failures(), 1u);
  EXPECT_EQ(status.last_error(), "UNAVAILABLE: start: no model");
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(10));
}

// Every operation from every state: the state it leads to, or a rejection
// naming the state it was tried from.
TEST_F(AgentSupervisorTest, EveryTransitionFromEveryState) {
  const std::vector<State> states = {v1::AGENT_STATE_CREATED,  v1::AGENT_STATE_STARTING,
                                     v1::AGENT_STATE_READY,    v1::AGENT_STATE_BUSY,
                                     v1::AGENT_STATE_DRAINING, v1::AGENT_STATE_STOPPED,
                                     v1::AGENT_STATE_FAILED,   v1::AGENT_STATE_CRASH_LOOP};
  // Brings a fresh agent "a" to `state`.
  auto bring_to = [](AgentSupervisor& supervisor, FakeHooks& hooks, State state) {
    ASSERT_TRUE(supervisor.Add(Spec("a"), hooks).ok());
    if (state == v1::AGENT_STATE_CREATED) {
      hooks.answer_start_inline = false;  // So a Start under test stays STARTING.
      return;
    }
    hooks.answer_start_inline = state != v1::AGENT_STATE_STARTING;
    ASSERT_TRUE(supervisor.Start("a").ok());
    switch (state) {
      case v1::AGENT_STATE_BUSY:
        ASSERT_TRUE(supervisor.TaskStarted("a").ok());
        break;
      case v1::AGENT_STATE_DRAINING:
        ASSERT_TRUE(supervisor.TaskStarted("a").ok());
        ASSERT_TRUE(supervisor.Stop("a").ok());
        break;
      case v1::AGENT_STATE_STOPPED:
        ASSERT_TRUE(supervisor.Stop("a").ok());
        break;
      case v1::AGENT_STATE_FAILED:
        ASSERT_TRUE(supervisor.ReportFailure("a", absl::InternalError("x")).ok());
        break;
      case v1::AGENT_STATE_CRASH_LOOP:
        for (int i = 0; i < 3; ++i) {
          if (i > 0) {
            ASSERT_TRUE(supervisor.Start("a").ok());
          }
          ASSERT_TRUE(supervisor.ReportFailure("a", absl::InternalError("x")).ok());
        }
        break;
      default:
        break;
    }
    hooks.answer_start_inline = false;  // So a Start under test stays STARTING.
  };
  using Op = std::function<absl::Status(AgentSupervisor&)>;
  constexpr State kRemoved = v1::AGENT_STATE_UNSPECIFIED;
  struct Row {
    const char* name;
    Op op;
    std::map<State, State> legal;  // From -> to; every other state is rejected.
  };
  const std::vector<Row> rows = {
      {"Start",
       [](AgentSupervisor& s) { return s.Start("a"); },
       {{v1::AGENT_STATE_CREATED, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_STOPPED, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_FAILED, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_CRASH_LOOP, v1::AGENT_STATE_STARTING}}},
      {"Stop",
       [](AgentSupervisor& s) { return s.Stop("a"); },
       {{v1::AGENT_STATE_CREATED, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_STARTING, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_READY, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_BUSY, v1::AGENT_STATE_DRAINING},
        {v1::AGENT_STATE_DRAINING, v1::AGENT_STATE_DRAINING},
        {v1::AGENT_STATE_FAILED, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_CRASH_LOOP, v1::AGENT_STATE_STOPPED}}},
      {"Restart",
       [](AgentSupervisor& s) { return s.Restart("a"); },
       {{v1::AGENT_STATE_READY, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_STOPPED, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_FAILED, v1::AGENT_STATE_STARTING},
        {v1::AGENT_STATE_CRASH_LOOP, v1::AGENT_STATE_STARTING}}},
      {"Drain",
       [](AgentSupervisor& s) { return s.Drain("a", absl::Minutes(1)); },
       {{v1::AGENT_STATE_READY, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_BUSY, v1::AGENT_STATE_DRAINING},
        {v1::AGENT_STATE_DRAINING, v1::AGENT_STATE_DRAINING}}},
      {"TaskStarted",
       [](AgentSupervisor& s) { return s.TaskStarted("a"); },
       {{v1::AGENT_STATE_READY, v1::AGENT_STATE_BUSY},
        {v1::AGENT_STATE_BUSY, v1::AGENT_STATE_BUSY}}},
      {"ReportFailure",
       [](AgentSupervisor& s) { return s.ReportFailure("a", absl::InternalError("x")); },
       {{v1::AGENT_STATE_STARTING, v1::AGENT_STATE_FAILED},
        {v1::AGENT_STATE_READY, v1::AGENT_STATE_FAILED},
        {v1::AGENT_STATE_BUSY, v1::AGENT_STATE_FAILED},
        {v1::AGENT_STATE_DRAINING, v1::AGENT_STATE_FAILED}}},
      {"ReportExited",
       [](AgentSupervisor& s) { return s.ReportExited("a"); },
       {{v1::AGENT_STATE_STARTING, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_READY, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_BUSY, v1::AGENT_STATE_STOPPED},
        {v1::AGENT_STATE_DRAINING, v1::AGENT_STATE_STOPPED}}},
      {"Remove",
       [](AgentSupervisor& s) { return s.Remove("a"); },
       {{v1::AGENT_STATE_CREATED, kRemoved},
        {v1::AGENT_STATE_STOPPED, kRemoved},
        {v1::AGENT_STATE_FAILED, kRemoved},
        {v1::AGENT_STATE_CRASH_LOOP, kRemoved}}},
  };
  for (const Row& row : rows) {
    for (State from : states) {
      SCOPED_TRACE(absl::StrCat(row.name, " from ", v1::AgentState_Name(from)));
      testing::FakeClock clock;
      AgentSupervisor supervisor(clock);
      FakeHooks hooks;
      bring_to(supervisor, hooks, from);
      ASSERT_EQ(supervisor.Status("a")->state(), from);
      absl::Status result = row.op(supervisor);
      auto legal = row.legal.find(from);
      if (legal == row.legal.end()) {
        EXPECT_EQ(result.code(), absl::StatusCode::kFailedPrecondition) << result;
        EXPECT_THAT(std::string(result.message()),
                    HasSubstr(v1::AgentState_Name(from).substr(sizeof("AGENT_STATE_") - 1)));
        EXPECT_EQ(supervisor.Status("a")->state(), from);
      } else if (legal->second == kRemoved) {
        EXPECT_TRUE(result.ok()) << result;
        EXPECT_EQ(supervisor.Status("a").status().code(), absl::StatusCode::kNotFound);
      } else {
        EXPECT_TRUE(result.ok()) << result;
        EXPECT_EQ(supervisor.Status("a")->state(), legal->second);
      }
    }
  }
}

TEST_F(AgentSupervisorTest, IllegalTransitionNamesBothStates) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  absl::Status status = supervisor_.Start("a");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "agent \"a\": Start cannot go from READY to STARTING");
  EXPECT_EQ(supervisor_.Start("ghost").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(supervisor_.Remove("a").message(),
            "agent \"a\": Remove needs CREATED, STOPPED, FAILED or CRASH_LOOP, not READY");
}

TEST_F(AgentSupervisorTest, StopOnlyCancelsAPendingAlwaysRestartWhenStopped) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->set_mode(v1::RestartPolicy::MODE_ALWAYS);
  AddReady(spec, hooks);
  ASSERT_TRUE(supervisor_.ReportExited("a").ok());
  ASSERT_NE(NextRestart("a"), absl::InfiniteFuture());
  ASSERT_TRUE(supervisor_.Stop("a").ok());
  EXPECT_EQ(NextRestart("a"), absl::InfiniteFuture());
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  EXPECT_EQ(supervisor_.Stop("a").message(), "agent \"a\": Stop cannot go from STOPPED to STOPPED");
}

TEST_F(AgentSupervisorTest, ReadyAndBusyFollowTheRunningCount) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_limits()->set_max_concurrency(2);
  AddReady(spec, hooks);

  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_BUSY);
  EXPECT_EQ(StatusOf("a").running_tasks(), 1u);
  EXPECT_TRUE(supervisor_.MayTakeTask("a"));

  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  EXPECT_EQ(StatusOf("a").running_tasks(), 2u);
  EXPECT_FALSE(supervisor_.MayTakeTask("a"));
  absl::Status full = supervisor_.TaskStarted("a");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "agent \"a\" is running its max_concurrency of 2 tasks");

  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_BUSY);
  EXPECT_TRUE(supervisor_.MayTakeTask("a"));
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  EXPECT_EQ(StatusOf("a").running_tasks(), 0u);

  absl::Status none = supervisor_.TaskFinished("a");
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(none.message(), "agent \"a\" has no running task (READY)");
  EXPECT_FALSE(supervisor_.MayTakeTask("ghost"));
  EXPECT_EQ(hooks.Count("Stop"), 0);
}

TEST_F(AgentSupervisorTest, NoMaxConcurrencyMeansNoLimit) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  EXPECT_TRUE(supervisor_.MayTakeTask("a"));
  EXPECT_EQ(StatusOf("a").running_tasks(), 100u);
}

TEST_F(AgentSupervisorTest, RestartBackoffDoublesUpToTheMaximum) {
  FakeHooks hooks;
  hooks.start_result = absl::UnavailableError("down");
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->set_crash_loop_after(100);
  ASSERT_TRUE(supervisor_.Add(spec, hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());

  const int expected_seconds[] = {10, 20, 40, 80, 160, 300, 300, 300};
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE(absl::StrCat("failure ", i + 1));
    const absl::Time due = clock_.Now() + absl::Seconds(expected_seconds[i]);
    EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
    EXPECT_EQ(StatusOf("a").consecutive_failures(), static_cast<uint32_t>(i + 1));
    EXPECT_EQ(NextRestart("a"), due);
    EXPECT_EQ(supervisor_.NextWakeup(), due);

    clock_.Set(due - absl::Nanoseconds(1));
    EXPECT_TRUE(supervisor_.Poll().empty());
    EXPECT_EQ(hooks.Count("Start"), i + 1);

    clock_.Set(due);
    EXPECT_TRUE(supervisor_.Poll().empty());
    EXPECT_EQ(hooks.Count("Start"), i + 2);
    EXPECT_EQ(StatusOf("a").restarts(), static_cast<uint32_t>(i + 1));
  }
}

TEST_F(AgentSupervisorTest, CustomBackoffIsHonoured) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  SetDuration(spec.mutable_restart()->mutable_initial_backoff(), absl::Seconds(1));
  SetDuration(spec.mutable_restart()->mutable_max_backoff(), absl::Seconds(3));
  AddReady(spec, hooks);
  hooks.start_result = absl::UnavailableError("down");
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  supervisor_.Poll();
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(2));
  clock_.Advance(absl::Seconds(2));
  supervisor_.Poll();
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(3));
}

TEST_F(AgentSupervisorTest, FailuresResetAfterTenHealthyMinutes) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  clock_.Advance(absl::Seconds(10));
  supervisor_.Poll();
  ASSERT_EQ(StateOf("a"), v1::AGENT_STATE_READY);

  // Not yet ten minutes: the second failure backs off 20s.
  clock_.Advance(absl::Minutes(10) - absl::Nanoseconds(1));
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 1u);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 2u);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(20));
  clock_.Advance(absl::Seconds(20));
  supervisor_.Poll();
  ASSERT_EQ(StateOf("a"), v1::AGENT_STATE_READY);

  // Ten minutes READY or BUSY: the count starts again.
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 0u);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 1u);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(10));
}

TEST_F(AgentSupervisorTest, CrashLoopAfterThreeFailuresKeepsBackingOff) {
  FakeHooks hooks;
  hooks.start_result = absl::UnavailableError("down");
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  clock_.Advance(absl::Seconds(10));
  supervisor_.Poll();
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 2u);
  clock_.Advance(absl::Seconds(20));
  supervisor_.Poll();

  v1::AgentStatus status = StatusOf("a");
  EXPECT_EQ(status.state(), v1::AGENT_STATE_CRASH_LOOP);
  EXPECT_EQ(status.consecutive_failures(), 3u);
  EXPECT_EQ(status.restarts(), 2u);
  EXPECT_EQ(status.last_error(), "UNAVAILABLE: start: down");
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(40));

  // Restarts go on at the backoff; a restart that fails stays in the loop.
  clock_.Advance(absl::Seconds(40));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("Start"), 4);
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(80));

  // One that works is READY, and the next failure is straight back in.
  hooks.start_result = absl::OkStatus();
  clock_.Advance(absl::Seconds(80));
  supervisor_.Poll();
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 5u);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(160));
}

TEST_F(AgentSupervisorTest, CrashLoopThresholdIsConfigurable) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->set_crash_loop_after(1);
  AddReady(spec, hooks);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);
}

TEST_F(AgentSupervisorTest, NeverPolicyStaysFailed) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->set_mode(v1::RestartPolicy::MODE_NEVER);
  AddReady(spec, hooks);
  for (int i = 0; i < 5; ++i) {
    if (i > 0) {
      ASSERT_TRUE(supervisor_.Start("a").ok());
    }
    ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("step")).ok());
    EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
    EXPECT_EQ(NextRestart("a"), absl::InfiniteFuture());
    EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  }
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 5u);
  EXPECT_EQ(StatusOf("a").last_error(), "INTERNAL: step");
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(supervisor_.Poll().empty());
  EXPECT_EQ(hooks.Count("Start"), 5);
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
}

TEST_F(AgentSupervisorTest, AlwaysRestartsAfterExitOnFailureDoesNot) {
  FakeHooks always_hooks;
  v1::AgentSpec always = Spec("always");
  always.mutable_restart()->set_mode(v1::RestartPolicy::MODE_ALWAYS);
  AddReady(always, always_hooks);
  FakeHooks on_failure_hooks;
  v1::AgentSpec on_failure = Spec("on-failure");
  on_failure.mutable_restart()->set_mode(v1::RestartPolicy::MODE_ON_FAILURE);
  AddReady(on_failure, on_failure_hooks);
  FakeHooks unspecified_hooks;
  AddReady(Spec("unspecified"), unspecified_hooks);

  for (const char* name : {"always", "on-failure", "unspecified"}) {
    ASSERT_TRUE(supervisor_.ReportExited(name).ok());
    EXPECT_EQ(StateOf(name), v1::AGENT_STATE_STOPPED);
  }
  EXPECT_EQ(NextRestart("always"), clock_.Now() + absl::Seconds(10));
  EXPECT_EQ(NextRestart("on-failure"), absl::InfiniteFuture());
  EXPECT_EQ(NextRestart("unspecified"), absl::InfiniteFuture());
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(10));

  clock_.Advance(absl::Seconds(10));
  supervisor_.Poll();
  EXPECT_EQ(StateOf("always"), v1::AGENT_STATE_READY);
  EXPECT_EQ(always_hooks.Count("Start"), 2);
  EXPECT_EQ(StateOf("on-failure"), v1::AGENT_STATE_STOPPED);
  EXPECT_EQ(on_failure_hooks.Count("Start"), 1);
  EXPECT_EQ(unspecified_hooks.Count("Start"), 1);
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  // The runtime saw the exits; nothing was stopped.
  EXPECT_EQ(always_hooks.Count("Stop") + on_failure_hooks.Count("Stop"), 0);
}

TEST_F(AgentSupervisorTest, AlwaysAgentThatKeepsExitingBacksOffIntoCrashLoop) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->set_mode(v1::RestartPolicy::MODE_ALWAYS);
  AddReady(spec, hooks);
  const int expected_seconds[] = {10, 20, 40};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(supervisor_.ReportExited("a").ok());
    EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(expected_seconds[i]));
    clock_.Advance(absl::Seconds(expected_seconds[i]) - absl::Nanoseconds(1));
    if (i < 2) {
      EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);
    }
    clock_.Advance(absl::Nanoseconds(1));
    if (i == 2) {
      EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);
    }
    supervisor_.Poll();
    EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  }
  EXPECT_EQ(StatusOf("a").last_error(), "");
}

TEST_F(AgentSupervisorTest, ManualRestartClearsTheCrashLoop) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      ASSERT_TRUE(supervisor_.Start("a").ok());
    }
    ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  }
  ASSERT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);

  ASSERT_TRUE(supervisor_.Restart("a").ok());
  v1::AgentStatus status = StatusOf("a");
  EXPECT_EQ(status.state(), v1::AGENT_STATE_READY);
  EXPECT_EQ(status.consecutive_failures(), 0u);
  EXPECT_EQ(status.restarts(), 1u);
  EXPECT_FALSE(status.has_next_restart_time());
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());

  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(10));
}

TEST_F(AgentSupervisorTest, StartFromCrashLoopKeepsTheCount) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      ASSERT_TRUE(supervisor_.Start("a").ok());
    }
    ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  }
  ASSERT_TRUE(supervisor_.Start("a").ok());
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 3u);
  EXPECT_FALSE(StatusOf("a").has_next_restart_time());
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_CRASH_LOOP);
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(80));
}

TEST_F(AgentSupervisorTest, RestartOfAReadyAgentStopsThenStarts) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.Restart("a").ok());
  EXPECT_THAT(hooks.calls, ElementsAre("Start", "Stop", "Start"));
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  EXPECT_EQ(StatusOf("a").restarts(), 1u);
}

TEST_F(AgentSupervisorTest, StopWaitsForTheLastTask) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());

  ASSERT_TRUE(supervisor_.Stop("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_DRAINING);
  EXPECT_FALSE(supervisor_.MayTakeTask("a"));
  EXPECT_EQ(supervisor_.TaskStarted("a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hooks.Count("Stop"), 0);
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());

  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_DRAINING);
  EXPECT_EQ(hooks.Count("Stop"), 0);
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);
  EXPECT_EQ(hooks.Count("Stop"), 1);
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(supervisor_.Poll().empty());
  EXPECT_EQ(hooks.Count("Start"), 1);
}

TEST_F(AgentSupervisorTest, DrainOfAnIdleAgentStopsAtOnce) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(30)).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);
  EXPECT_EQ(hooks.Count("Stop"), 1);
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
}

TEST_F(AgentSupervisorTest, DrainFinishesWhenTasksEndBeforeGrace) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(30)).ok());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);
  EXPECT_EQ(hooks.Count("Stop"), 1);
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(supervisor_.Poll().empty());
}

TEST_F(AgentSupervisorTest, DrainHandsBackOnceAfterGrace) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  const absl::Time deadline = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(30)).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_DRAINING);
  EXPECT_EQ(supervisor_.NextWakeup(), deadline);

  clock_.Set(deadline - absl::Nanoseconds(1));
  EXPECT_TRUE(supervisor_.Poll().empty());
  clock_.Set(deadline);
  EXPECT_THAT(supervisor_.Poll(), ElementsAre(SupervisorAction{SupervisorAction::kHandBack, "a"}));
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  EXPECT_TRUE(supervisor_.Poll().empty());
  EXPECT_EQ(hooks.Count("Stop"), 0);

  // The runtime hands the tasks back, each a TaskFinished.
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);
  EXPECT_EQ(hooks.Count("Stop"), 1);
}

TEST_F(AgentSupervisorTest, DrainOnDrainingOnlyBringsTheDeadlineForward) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  ASSERT_TRUE(supervisor_.Stop("a").ok());
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(5)).ok());
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(5));
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(60)).ok());
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(5));
  ASSERT_TRUE(supervisor_.Drain("a", absl::ZeroDuration()).ok());
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now());
  EXPECT_EQ(supervisor_.Poll().size(), 1u);
  EXPECT_EQ(supervisor_.Drain("a", absl::Seconds(-1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AgentSupervisorTest, FailureWhileDrainingDoesNotRestart) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  ASSERT_TRUE(supervisor_.Drain("a", absl::Seconds(30)).ok());
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(NextRestart("a"), absl::InfiniteFuture());
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  // Its task is still counted until the runtime lets it go.
  EXPECT_EQ(StatusOf("a").running_tasks(), 1u);
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(hooks.Count("Stop"), 0);
}

TEST_F(AgentSupervisorTest, HealthChecksRunAtTheIntervalAndAFailedOneIsAFailure) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  spec.mutable_restart()->clear_health_interval();  // The default, 30s.
  const absl::Time started = clock_.Now();
  AddReady(spec, hooks);
  EXPECT_EQ(supervisor_.NextWakeup(), started + absl::Seconds(30));

  clock_.Set(started + absl::Seconds(30) - absl::Nanoseconds(1));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 0);
  clock_.Set(started + absl::Seconds(30));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 1);
  EXPECT_EQ(supervisor_.NextWakeup(), started + absl::Seconds(60));

  // BUSY agents are checked too.
  ASSERT_TRUE(supervisor_.TaskStarted("a").ok());
  clock_.Set(started + absl::Seconds(60));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 2);
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_BUSY);

  hooks.health_result = absl::UnavailableError("model gone");
  clock_.Set(started + absl::Seconds(90));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 3);
  v1::AgentStatus status = StatusOf("a");
  EXPECT_EQ(status.state(), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(status.consecutive_failures(), 1u);
  EXPECT_EQ(status.last_error(), "UNAVAILABLE: health check: model gone");
  EXPECT_EQ(NextRestart("a"), clock_.Now() + absl::Seconds(10));
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(10));
}

TEST_F(AgentSupervisorTest, UnansweredHealthCheckFailsAfterTheInterval) {
  FakeHooks hooks;
  hooks.answer_health_inline = false;
  v1::AgentSpec spec = Spec("a");
  SetDuration(spec.mutable_restart()->mutable_health_interval(), absl::Seconds(5));
  AddReady(spec, hooks);
  clock_.Advance(absl::Seconds(5));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 1);
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(5));

  clock_.Advance(absl::Seconds(5));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 1);  // No second check while one is out.
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(StatusOf("a").last_error(), "DEADLINE_EXCEEDED: health check: no answer within 5s");

  // The late answer changes nothing.
  hooks.AnswerHealth(absl::OkStatus());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_FAILED);
  EXPECT_EQ(StatusOf("a").consecutive_failures(), 1u);
}

TEST_F(AgentSupervisorTest, HealthCheckAnsweredLaterKeepsTheAgentReady) {
  FakeHooks hooks;
  hooks.answer_health_inline = false;
  v1::AgentSpec spec = Spec("a");
  SetDuration(spec.mutable_restart()->mutable_health_interval(), absl::Seconds(5));
  AddReady(spec, hooks);
  clock_.Advance(absl::Seconds(5));
  supervisor_.Poll();
  clock_.Advance(absl::Seconds(2));
  hooks.AnswerHealth(absl::OkStatus());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  EXPECT_EQ(supervisor_.NextWakeup(), clock_.Now() + absl::Seconds(3));
}

TEST_F(AgentSupervisorTest, ZeroHealthIntervalMeansNoChecks) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  clock_.Advance(absl::Hours(1));
  supervisor_.Poll();
  EXPECT_EQ(hooks.Count("CheckHealth"), 0);
}

TEST_F(AgentSupervisorTest, NextWakeupIsTheEarliestDueWork) {
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  const absl::Time t0 = clock_.Now();
  FakeHooks healthy;
  v1::AgentSpec checked = Spec("checked");
  SetDuration(checked.mutable_restart()->mutable_health_interval(), absl::Seconds(25));
  AddReady(checked, healthy);
  EXPECT_EQ(supervisor_.NextWakeup(), t0 + absl::Seconds(25));

  FakeHooks failing;
  AddReady(Spec("failing"), failing);
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(supervisor_.ReportFailure("failing", absl::InternalError("x")).ok());
  EXPECT_EQ(supervisor_.NextWakeup(), t0 + absl::Seconds(13));

  FakeHooks draining;
  AddReady(Spec("draining"), draining);
  ASSERT_TRUE(supervisor_.TaskStarted("draining").ok());
  ASSERT_TRUE(supervisor_.Drain("draining", absl::Seconds(7)).ok());
  EXPECT_EQ(supervisor_.NextWakeup(), t0 + absl::Seconds(10));

  clock_.Set(t0 + absl::Seconds(10));
  EXPECT_EQ(supervisor_.Poll().size(), 1u);
  EXPECT_EQ(supervisor_.NextWakeup(), t0 + absl::Seconds(13));
  clock_.Set(t0 + absl::Seconds(13));
  supervisor_.Poll();
  EXPECT_EQ(supervisor_.NextWakeup(), t0 + absl::Seconds(25));
}

TEST_F(AgentSupervisorTest, HooksMayCallBackInline) {
  FakeHooks hooks;
  v1::AgentSpec spec = Spec("a");
  SetDuration(spec.mutable_restart()->mutable_health_interval(), absl::Seconds(1));
  std::vector<State> seen;
  hooks.on_start = [&] { seen.push_back(supervisor_.Status("a")->state()); };
  hooks.on_check = [&] {
    seen.push_back(supervisor_.List()[0].state());
    EXPECT_TRUE(supervisor_.TaskStarted("a").ok());
  };
  hooks.on_stop = [&] {
    seen.push_back(supervisor_.Status("a")->state());
    EXPECT_FALSE(supervisor_.MayTakeTask("a"));
    // The agent cannot be forgotten while its own hook runs.
    absl::Status removed = supervisor_.Remove("a");
    EXPECT_EQ(removed.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(removed.message(), "agent \"a\": Remove called from inside its own hooks");
    EXPECT_TRUE(supervisor_.Start("a").ok());  // Answered inline: READY again.
  };
  AddReady(spec, hooks);
  clock_.Advance(absl::Seconds(1));
  supervisor_.Poll();
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_BUSY);
  ASSERT_TRUE(supervisor_.TaskFinished("a").ok());
  ASSERT_TRUE(supervisor_.Stop("a").ok());
  EXPECT_THAT(seen, ElementsAre(v1::AGENT_STATE_STARTING, v1::AGENT_STATE_READY,
                                v1::AGENT_STATE_STOPPED, v1::AGENT_STATE_STARTING));
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
  EXPECT_THAT(hooks.calls, ElementsAre("Start", "CheckHealth", "Stop", "Start"));
}

TEST_F(AgentSupervisorTest, StartAnswerAfterStopIsIgnored) {
  FakeHooks hooks;
  hooks.answer_start_inline = false;
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  FakeHooks::Done first = hooks.TakeStart();
  ASSERT_TRUE(supervisor_.Stop("a").ok());
  EXPECT_THAT(hooks.calls, ElementsAre("Start", "Stop"));
  std::move(first)(absl::OkStatus());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STOPPED);

  // Nor does an earlier Start's answer settle a later one.
  ASSERT_TRUE(supervisor_.Start("a").ok());
  FakeHooks::Done second = hooks.TakeStart();
  ASSERT_TRUE(supervisor_.Stop("a").ok());
  ASSERT_TRUE(supervisor_.Start("a").ok());
  std::move(second)(absl::InternalError("old"));
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_STARTING);
  hooks.AnswerStart(absl::OkStatus());
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
}

TEST_F(AgentSupervisorTest, AnswerAfterTheSupervisorIsGoneIsIgnored) {
  FakeHooks hooks;
  hooks.answer_start_inline = false;
  {
    AgentSupervisor supervisor(clock_);
    ASSERT_TRUE(supervisor.Add(Spec("a"), hooks).ok());
    ASSERT_TRUE(supervisor.Start("a").ok());
  }
  hooks.AnswerStart(absl::OkStatus());  // Must not touch the destroyed supervisor.
}

TEST_F(AgentSupervisorTest, RemoveWaitsForAHookCallInProgress) {
  FakeHooks hooks;
  absl::Notification stop_entered;
  absl::Notification release_stop;
  std::atomic<bool> stop_returned = false;
  hooks.on_stop = [&] {
    stop_entered.Notify();
    release_stop.WaitForNotification();
    stop_returned = true;
  };
  AddReady(Spec("a"), hooks);
  std::thread stopper([&] { EXPECT_TRUE(supervisor_.Stop("a").ok()); });
  stop_entered.WaitForNotification();
  // STOPPED already, but its Stop hook still runs: Remove must wait for it.
  std::thread remover([&] {
    EXPECT_TRUE(supervisor_.Remove("a").ok());
    EXPECT_TRUE(stop_returned);
  });
  release_stop.Notify();
  stopper.join();
  remover.join();
  EXPECT_EQ(supervisor_.Status("a").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentSupervisorTest, RemoveDropsAScheduledRestart) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  ASSERT_TRUE(supervisor_.ReportFailure("a", absl::InternalError("x")).ok());
  ASSERT_TRUE(supervisor_.Remove("a").ok());
  EXPECT_EQ(supervisor_.NextWakeup(), absl::InfiniteFuture());
  clock_.Advance(absl::Minutes(1));
  EXPECT_TRUE(supervisor_.Poll().empty());
  EXPECT_EQ(hooks.Count("Start"), 1);
  EXPECT_EQ(supervisor_.Remove("a").code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentSupervisorTest, AddRejectsDuplicatesAndBadPolicies) {
  FakeHooks hooks;
  ASSERT_TRUE(supervisor_.Add(Spec("a"), hooks).ok());
  EXPECT_EQ(supervisor_.Add(Spec("a"), hooks).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(supervisor_.Add(Spec(""), hooks).message(), "agent.name: empty");

  v1::AgentSpec short_max = Spec("b");
  SetDuration(short_max.mutable_restart()->mutable_max_backoff(), absl::Seconds(5));
  EXPECT_EQ(supervisor_.Add(short_max, hooks).message(),
            "agent \"b\": restart.max_backoff: 5s is shorter than initial_backoff 10s");

  v1::AgentSpec negative = Spec("b");
  SetDuration(negative.mutable_restart()->mutable_healthy_reset(), absl::Seconds(-1));
  EXPECT_EQ(supervisor_.Add(negative, hooks).message(),
            "agent \"b\": restart.healthy_reset: -1s is negative");

  v1::AgentSpec malformed = Spec("b");
  malformed.mutable_restart()->mutable_initial_backoff()->set_nanos(2'000'000'000);
  EXPECT_EQ(supervisor_.Add(malformed, hooks).message(),
            "agent \"b\": restart.initial_backoff: malformed duration");

  v1::AgentSpec unknown_mode = Spec("b");
  unknown_mode.mutable_restart()->set_mode(static_cast<v1::RestartPolicy::Mode>(9));
  EXPECT_EQ(supervisor_.Add(unknown_mode, hooks).message(),
            "agent \"b\": restart.mode: unknown mode 9");
  EXPECT_EQ(supervisor_.List().size(), 1u);
}

TEST_F(AgentSupervisorTest, ReportFailureNeedsAnError) {
  FakeHooks hooks;
  AddReady(Spec("a"), hooks);
  EXPECT_EQ(supervisor_.ReportFailure("a", absl::OkStatus()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StateOf("a"), v1::AGENT_STATE_READY);
}

TEST_F(AgentSupervisorTest, ListIsOrderedByName) {
  FakeHooks hooks;
  ASSERT_TRUE(supervisor_.Add(Spec("writer"), hooks).ok());
  ASSERT_TRUE(supervisor_.Add(Spec("analyst"), hooks).ok());
  AddReady(Spec("coder"), hooks);
  std::vector<v1::AgentStatus> all = supervisor_.List();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name(), "analyst");
  EXPECT_EQ(all[1].name(), "coder");
  EXPECT_EQ(all[1].state(), v1::AGENT_STATE_READY);
  EXPECT_EQ(all[2].name(), "writer");
  EXPECT_EQ(supervisor_.Status("ghost").status().message(), "agent \"ghost\" is not supervised");
}

}  // namespace
}  // namespace flowork::agent
