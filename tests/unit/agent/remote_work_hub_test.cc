#include "flowork/agent/remote_work_hub.h"

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
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

// The runtime's side of one effect: a task, and cancellation on demand.
class FakeCall final : public EffectCall {
 public:
  explicit FakeCall(std::string task_id, std::string tenant = "t1") {
    task_.set_id(std::move(task_id));
    task_.set_tenant(std::move(tenant));
    task_.set_attempt(1);
  }
  const v1::Task& task() const override { return task_; }
  absl::Time deadline() const override { return absl::InfiniteFuture(); }
  bool cancelled() const override {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  void OnCancel(absl::AnyInvocable<void() &&> on_cancel) override {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        on_cancel_.push_back(std::move(on_cancel));
        return;
      }
    }
    std::move(on_cancel)();
  }
  void Heartbeat() override { heartbeats_.fetch_add(1); }
  void Cancel() {
    std::vector<absl::AnyInvocable<void() &&>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      callbacks.swap(on_cancel_);
    }
    for (auto& c : callbacks) std::move(c)();
  }
  int heartbeats() const { return heartbeats_.load(); }

 private:
  v1::Task task_;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void() &&>> on_cancel_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> heartbeats_{0};
};

// Every result the hub gave the runtime for one effect.
struct Outcome {
  std::vector<absl::StatusOr<v1::EffectResult>> results;
};

v1::Effect Work(const std::string& agent, const std::string& input) {
  v1::Effect effect;
  effect.mutable_remote()->set_agent(agent);
  *effect.mutable_remote()->mutable_input() = Str(input);
  return effect;
}

class RemoteWorkHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RemoteWorkHubOptions options;
    options.clock = &clock_;
    options.sweep_interval = absl::ZeroDuration();
    options.lease_ttl = absl::Seconds(10);
    auto hub = RemoteWorkHub::Create(options);
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
  }

  // Queues work of agent "echo" for task `task_id`; its results land in the
  // returned outcome.
  std::shared_ptr<Outcome> Queue(const std::shared_ptr<FakeCall>& call,
                                 const std::string& input = "in") {
    auto outcome = std::make_shared<Outcome>();
    hub_->Perform(Work("echo", input), call, [outcome](absl::StatusOr<v1::EffectResult> r) {
      outcome->results.push_back(std::move(r));
    });
    return outcome;
  }

  // Leases at once (no wait).
  std::optional<v1::WorkItem> LeaseNow(const std::string& worker, const std::string& tenant = "t1",
                                       const std::string& agent = "echo") {
    std::optional<v1::WorkItem> got;
    bool answered = false;
    hub_->Lease({.worker_id = worker, .tenant = tenant, .agents = {agent}},
                [&](absl::StatusOr<std::optional<v1::WorkItem>> r) {
                  answered = true;
                  ASSERT_TRUE(r.ok()) << r.status();
                  got = *std::move(r);
                });
    EXPECT_TRUE(answered);
    return got;
  }

  testing::FakeClock clock_;
  std::unique_ptr<RemoteWorkHub> hub_;
};

TEST_F(RemoteWorkHubTest, LeasedWorkCompletesOnceWithTheWorkersOutput) {
  auto outcome = Queue(std::make_shared<FakeCall>("task-1"), "hello");
  EXPECT_EQ(hub_->queued(), 1);
  std::optional<v1::WorkItem> work = LeaseNow("w1");
  ASSERT_TRUE(work.has_value());
  EXPECT_EQ(work->task_id(), "task-1");
  EXPECT_EQ(work->agent(), "echo");
  EXPECT_EQ(work->tenant(), "t1");
  EXPECT_EQ(work->input().string_value(), "hello");
  EXPECT_EQ(work->attempt(), 1u);
  EXPECT_EQ(work->previous_leases(), 0u);
  EXPECT_EQ(hub_->queued(), 0);
  EXPECT_EQ(hub_->leased(), 1);
  EXPECT_FALSE(LeaseNow("w2").has_value()) << "leased work is not handed out twice";

  ASSERT_TRUE(hub_->Complete("t1", work->lease_id(), work->fencing_token(), Str("HELLO")).ok());
  ASSERT_EQ(outcome->results.size(), 1u);
  ASSERT_TRUE(outcome->results[0].ok());
  EXPECT_EQ(outcome->results[0]->remote().output().string_value(), "HELLO");
  EXPECT_EQ(outcome->results[0]->remote().worker_id(), "w1");
  EXPECT_EQ(outcome->results[0]->remote().fencing_token(), work->fencing_token());
  // A repeated Complete (a retry after a lost answer) is OK and changes nothing.
  EXPECT_TRUE(hub_->Complete("t1", work->lease_id(), work->fencing_token(), Str("AGAIN")).ok());
  EXPECT_EQ(outcome->results.size(), 1u);
  EXPECT_EQ(hub_->leased(), 0);
}

TEST_F(RemoteWorkHubTest, AWaitingLeaseGetsWorkThatArrivesLater) {
  std::optional<absl::StatusOr<std::optional<v1::WorkItem>>> answer;
  const uint64_t id =
      hub_->Lease({.worker_id = "w1", .tenant = "t1", .agents = {"echo"}, .wait = absl::Seconds(5)},
                  [&](absl::StatusOr<std::optional<v1::WorkItem>> r) { answer = std::move(r); });
  EXPECT_NE(id, 0u);
  EXPECT_FALSE(answer.has_value());
  Queue(std::make_shared<FakeCall>("task-1"));
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok());
  ASSERT_TRUE(answer->value().has_value());
  EXPECT_EQ(answer->value()->task_id(), "task-1");
  EXPECT_FALSE(hub_->CancelLease(id)) << "the call already ended";
}

TEST_F(RemoteWorkHubTest, AWaitingLeaseEndsEmptyWhenItsWaitIsOver) {
  std::optional<absl::StatusOr<std::optional<v1::WorkItem>>> answer;
  hub_->Lease({.worker_id = "w1", .tenant = "t1", .agents = {"echo"}, .wait = absl::Seconds(5)},
              [&](absl::StatusOr<std::optional<v1::WorkItem>> r) { answer = std::move(r); });
  clock_.Advance(absl::Seconds(4));
  hub_->Sweep();
  EXPECT_FALSE(answer.has_value());
  clock_.Advance(absl::Seconds(1));
  hub_->Sweep();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok());
  EXPECT_FALSE(answer->value().has_value());
}

TEST_F(RemoteWorkHubTest, CancelLeaseEndsAWaitingCall) {
  std::optional<absl::Status> answer;
  const uint64_t id =
      hub_->Lease({.worker_id = "w1", .tenant = "t1", .agents = {"echo"}, .wait = absl::Seconds(5)},
                  [&](absl::StatusOr<std::optional<v1::WorkItem>> r) { answer = r.status(); });
  EXPECT_TRUE(hub_->CancelLease(id));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), absl::StatusCode::kCancelled);
  // The work that comes next is not given to the call that went away.
  Queue(std::make_shared<FakeCall>("task-1"));
  EXPECT_EQ(hub_->queued(), 1);
}

TEST_F(RemoteWorkHubTest, HeartbeatsKeepTheLeaseAndCountAsProgress) {
  auto call = std::make_shared<FakeCall>("task-1");
  auto outcome = Queue(call);
  std::optional<v1::WorkItem> work = LeaseNow("w1");
  ASSERT_TRUE(work.has_value());
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(8));
    auto beat = hub_->Heartbeat("t1", work->lease_id(), work->fencing_token());
    ASSERT_TRUE(beat.ok()) << beat.status();
    EXPECT_FALSE(beat->cancelled);
    EXPECT_EQ(beat->lease_expire_time, clock_.Now() + absl::Seconds(10));
    hub_->Sweep();
    EXPECT_EQ(hub_->leased(), 1);
  }
  EXPECT_EQ(call->heartbeats(), 3);
  EXPECT_TRUE(hub_->Complete("t1", work->lease_id(), work->fencing_token(), Str("ok")).ok());
  EXPECT_EQ(outcome->results.size(), 1u);
}

TEST_F(RemoteWorkHubTest, AnExpiredLeaseIsLeasedAgainWithAHigherTokenAndTheOldHolderIsRefused) {
  auto outcome = Queue(std::make_shared<FakeCall>("task-1"));
  std::optional<v1::WorkItem> first = LeaseNow("stalled");
  ASSERT_TRUE(first.has_value());
  clock_.Advance(absl::Seconds(10));
  hub_->Sweep();
  EXPECT_EQ(hub_->queued(), 1) << "an expired lease's work goes back to the queue";

  auto beat = hub_->Heartbeat("t1", first->lease_id(), first->fencing_token());
  EXPECT_EQ(beat.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(beat.status().message(), HasSubstr("expired"));

  std::optional<v1::WorkItem> second = LeaseNow("healthy");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->lease_id(), first->lease_id());
  EXPECT_GT(second->fencing_token(), first->fencing_token());
  EXPECT_EQ(second->previous_leases(), 1u);

  // The stalled worker wakes up and tries to finish: refused, task untouched.
  absl::Status late = hub_->Complete("t1", first->lease_id(), first->fencing_token(), Str("late"));
  EXPECT_EQ(late.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(late.message(), HasSubstr("stale"));
  EXPECT_EQ(hub_->Fail("t1", first->lease_id(), first->fencing_token(), "x", false).code(),
            absl::StatusCode::kAborted);
  EXPECT_TRUE(outcome->results.empty());

  ASSERT_TRUE(hub_->Complete("t1", second->lease_id(), second->fencing_token(), Str("fresh")).ok());
  ASSERT_EQ(outcome->results.size(), 1u);
  EXPECT_EQ(outcome->results[0]->remote().output().string_value(), "fresh");
  EXPECT_EQ(outcome->results[0]->remote().worker_id(), "healthy");
  // And once the work has ended, the stalled worker is still refused, and
  // told why.
  late = hub_->Complete("t1", first->lease_id(), first->fencing_token(), Str("late"));
  EXPECT_EQ(late.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(late.message(), HasSubstr("stale"));
  EXPECT_THAT(late.message(), HasSubstr("completed"));
  clock_.Advance(absl::Minutes(5));
  hub_->Sweep();
  EXPECT_EQ(hub_->Complete("t1", first->lease_id(), first->fencing_token(), Str("late")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(outcome->results.size(), 1u);
}

TEST_F(RemoteWorkHubTest, WorkersSeeOnlyTheirTenantsWorkOfTheirAgents) {
  Queue(std::make_shared<FakeCall>("task-1", "t1"));
  EXPECT_FALSE(LeaseNow("w", "t2").has_value());
  EXPECT_FALSE(LeaseNow("w", "t1", "other-agent").has_value());
  std::optional<v1::WorkItem> work = LeaseNow("w", "t1");
  ASSERT_TRUE(work.has_value());
  EXPECT_EQ(hub_->Heartbeat("t2", work->lease_id(), work->fencing_token()).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(hub_->Complete("t2", work->lease_id(), work->fencing_token(), Str("x")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(hub_->leased(), 1);
}

TEST_F(RemoteWorkHubTest, CancellingDropsQueuedWorkAndTellsTheHolderToStop) {
  auto held_call = std::make_shared<FakeCall>("task-held");
  auto held = Queue(held_call);
  std::optional<v1::WorkItem> work = LeaseNow("w1");
  ASSERT_TRUE(work.has_value());
  auto queued_call = std::make_shared<FakeCall>("task-queued");
  auto queued = Queue(queued_call);
  Queue(std::make_shared<FakeCall>("task-next"));

  // The leased work's task is cancelled: the holder learns it, its
  // completion is refused, the runtime hears of it once.
  held_call->Cancel();
  ASSERT_EQ(held->results.size(), 1u);
  EXPECT_EQ(held->results[0].status().code(), absl::StatusCode::kCancelled);
  auto beat = hub_->Heartbeat("t1", work->lease_id(), work->fencing_token());
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE(beat->cancelled);
  absl::Status late = hub_->Complete("t1", work->lease_id(), work->fencing_token(), Str("x"));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("cancelled"));
  EXPECT_EQ(held->results.size(), 1u);

  // Queued work of a cancelled task is dropped: the next lease skips it.
  queued_call->Cancel();
  ASSERT_EQ(queued->results.size(), 1u);
  EXPECT_EQ(hub_->queued(), 1);
  std::optional<v1::WorkItem> next = LeaseNow("w1");
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->task_id(), "task-next");
}

TEST_F(RemoteWorkHubTest, FailIsRetriedOrFailsTheTask) {
  auto retried = Queue(std::make_shared<FakeCall>("task-1"));
  auto failed = Queue(std::make_shared<FakeCall>("task-2"));
  std::optional<v1::WorkItem> a = LeaseNow("w1");
  std::optional<v1::WorkItem> b = LeaseNow("w1");
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(hub_->Fail("t1", a->lease_id(), a->fencing_token(), "flaky", true).ok());
  ASSERT_TRUE(hub_->Fail("t1", b->lease_id(), b->fencing_token(), "bad input", false).ok());
  ASSERT_EQ(retried->results.size(), 1u);
  EXPECT_EQ(retried->results[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(retried->results[0].status().message(), HasSubstr("flaky"));
  ASSERT_EQ(failed->results.size(), 1u);
  ASSERT_TRUE(failed->results[0].ok());
  EXPECT_EQ(failed->results[0]->remote().error(), "bad input");
}

TEST(RemoteWorkHubTokenTest, TokensIncreaseAcrossARestart) {
  testing::FakeClock clock;
  auto first_token = [&clock]() -> uint64_t {
    auto hub = RemoteWorkHub::Create({.sweep_interval = absl::ZeroDuration(), .clock = &clock});
    EXPECT_TRUE(hub.ok());
    auto call = std::make_shared<FakeCall>("task-1");
    (*hub)->Perform(Work("echo", "x"), call, [](absl::StatusOr<v1::EffectResult>) {});
    uint64_t token = 0;
    (*hub)->Lease({.worker_id = "w", .tenant = "t1", .agents = {"echo"}},
                  [&](absl::StatusOr<std::optional<v1::WorkItem>> r) {
                    if (r.ok() && r->has_value()) token = (*r)->fencing_token();
                  });
    return token;
  };
  const uint64_t before = first_token();
  clock.Advance(absl::Seconds(1));  // The server restarts a second later.
  const uint64_t after = first_token();
  EXPECT_GT(before, 0u);
  EXPECT_GT(after, before);
}

// The hub under a real runtime: a KIND_REMOTE agent's task is finished by
// the worker's output, journaled as one remote step.
TEST(RemoteAgentTest, TaskFinishesWithTheWorkersOutputOrFailsWithItsError) {
  std::unique_ptr<TaskStore> store = CreateInMemoryTaskStore();
  auto hub = RemoteWorkHub::Create({.sweep_interval = absl::ZeroDuration()});
  ASSERT_TRUE(hub.ok());
  AgentRuntimeOptions options;
  options.threads = 2;
  options.remote = hub->get();
  auto runtime = AgentRuntime::Create(options, *store);
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  v1::AgentSpec spec;
  spec.set_name("echo");
  spec.set_kind(v1::AgentSpec::KIND_REMOTE);
  ASSERT_TRUE((*runtime)->RegisterAgent(spec, CreateRemoteAgent(spec)).ok());
  ASSERT_TRUE((*runtime)->Start().ok());

  auto submit = [&](const std::string& input) {
    v1::Task task;
    task.set_agent("echo");
    task.set_tenant("t1");
    *task.mutable_input() = Str(input);
    auto submitted = (*runtime)->Submit(task);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task.id() : "";
  };
  auto lease = [&]() {
    std::optional<v1::WorkItem> got;
    for (int i = 0; i < 2000 && !got; ++i) {
      (*hub)->Lease({.worker_id = "w", .tenant = "t1", .agents = {"echo"}},
                    [&](absl::StatusOr<std::optional<v1::WorkItem>> r) {
                      if (r.ok()) got = *std::move(r);
                    });
      if (!got) absl::SleepFor(absl::Milliseconds(5));
    }
    return got;
  };
  auto wait_final = [&](const std::string& id) {
    absl::StatusOr<v1::Task> task = store->Get(id);
    for (int i = 0; i < 2000 && task.ok() && task->state() != v1::TASK_STATE_SUCCEEDED &&
                    task->state() != v1::TASK_STATE_FAILED;
         ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      task = store->Get(id);
    }
    return task;
  };

  const std::string ok_id = submit("hi");
  std::optional<v1::WorkItem> work = lease();
  ASSERT_TRUE(work.has_value());
  EXPECT_EQ(work->task_id(), ok_id);
  EXPECT_EQ(work->input().string_value(), "hi");
  ASSERT_TRUE((*hub)->Complete("t1", work->lease_id(), work->fencing_token(), Str("HI")).ok());
  absl::StatusOr<v1::Task> done = wait_final(ok_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::TASK_STATE_SUCCEEDED) << done->error();
  EXPECT_EQ(done->output().string_value(), "HI");
  auto journal = store->Journal(ok_id);
  ASSERT_TRUE(journal.ok());
  int remote_steps = 0;
  for (const v1::StepRecord& step : *journal) remote_steps += step.kind() == "remote";
  EXPECT_EQ(remote_steps, 1);

  const std::string bad_id = submit("boom");
  work = lease();
  ASSERT_TRUE(work.has_value());
  ASSERT_TRUE(
      (*hub)->Fail("t1", work->lease_id(), work->fencing_token(), "cannot do boom", false).ok());
  absl::StatusOr<v1::Task> failed = wait_final(bad_id);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("cannot do boom"));
  (*runtime)->Shutdown();
}

}  // namespace
}  // namespace flowork::agent
