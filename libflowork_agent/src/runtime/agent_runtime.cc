// The agent runtime: dispatch, the step machine, effects, retries, timeouts,
// cancellation and recovery. See agent_runtime.h for the contract.
//
// Every task the runtime is working on has a TaskRun. Its `phase` says who
// acts next, and every path that changes it holds `mu_`: store writes and
// agent steps run outside the lock, and their continuations re-check the
// phase (the task may have been cancelled or timed out meanwhile).

#include "flowork/agent/agent_runtime.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_supervisor.h"
#include "flowork/agent/cron_schedule.h"
#include "flowork/agent/llm_client.h"
#include "flowork/agent/task_state.h"
#include "flowork/core/executor.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/timer_queue.h"
#include "flowork/core/logging.h"
#include "runtime/schedule_agent.h"

namespace flowork::agent {
namespace {

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}
absl::Duration DurationOr(const google::protobuf::Duration& d, absl::Duration fallback) {
  return d.seconds() == 0 && d.nanos() == 0 ? fallback : ToDuration(d);
}
absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}
google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return out;
}

// The journal's name for an effect, and the state a task waits in for it.
const char* KindName(const v1::Effect& effect) {
  switch (effect.kind_case()) {
    case v1::Effect::kModel:
      return "llm";
    case v1::Effect::kTools:
      return "tools";
    case v1::Effect::kTimer:
      return "timer";
    case v1::Effect::kChildren:
      return "children";
    case v1::Effect::kSignal:
      return "signal";
    case v1::Effect::kFinish:
      return "finish";
    case v1::Effect::kFail:
      return "fail";
    case v1::Effect::kApproval:
      return "approval";
    case v1::Effect::kRemote:
      return "remote";
    default:
      return "unknown";
  }
}
v1::TaskState WaitingState(const v1::Effect& effect) {
  switch (effect.kind_case()) {
    case v1::Effect::kModel:
      return v1::TASK_STATE_WAITING_LLM;
    case v1::Effect::kTools:
    case v1::Effect::kRemote:  // A remote worker is the agent's one tool.
      return v1::TASK_STATE_WAITING_TOOL;
    case v1::Effect::kTimer:
    case v1::Effect::kSignal:
      return v1::TASK_STATE_WAITING_TIMER;
    case v1::Effect::kChildren:
      return v1::TASK_STATE_WAITING_CHILDREN;
    case v1::Effect::kApproval:
      return v1::TASK_STATE_WAITING_APPROVAL;
    default:
      return v1::TASK_STATE_RUNNING;
  }
}
// Waits that may last long give their dispatch slot back meanwhile (a parent
// holding a slot while its children queue for one could deadlock).
bool ReleasesSlot(const v1::Effect& effect) {
  return effect.kind_case() == v1::Effect::kTimer ||
         (effect.kind_case() == v1::Effect::kChildren && !effect.children().detach()) ||
         effect.kind_case() == v1::Effect::kSignal || effect.kind_case() == v1::Effect::kApproval;
}

uint32_t MaxAttempts(const v1::AgentSpec& spec) {
  return spec.retry().max_attempts() == 0 ? 3 : spec.retry().max_attempts();
}
uint32_t MaxSteps(const v1::AgentSpec& spec) {
  return spec.limits().max_steps() == 0 ? 100 : spec.limits().max_steps();
}

struct RegisteredAgent {
  v1::AgentSpec spec;
  std::shared_ptr<Agent> impl;
};

// The effect in flight, as its handler sees it.
class EffectCallImpl final : public EffectCall {
 public:
  EffectCallImpl(v1::Task task, absl::Time deadline, absl::Time now)
      : task_(std::move(task)), deadline_(deadline), last_progress_(now) {}

  const v1::Task& task() const override { return task_; }
  absl::Time deadline() const override { return deadline_; }
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
  void Heartbeat() override {
    absl::MutexLock lock(&mu_);
    last_progress_ = absl::Now();
  }
  absl::Time last_progress() const {
    absl::MutexLock lock(&mu_);
    return last_progress_;
  }
  // Abandons the call; true the first time.
  bool Cancel() {
    std::vector<absl::AnyInvocable<void() &&>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return false;
      cancelled_ = true;
      callbacks.swap(on_cancel_);
    }
    for (auto& callback : callbacks) std::move(callback)();
    return true;
  }

 private:
  const v1::Task task_;
  const absl::Time deadline_;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> on_cancel_ ABSL_GUARDED_BY(mu_);
};

// Who acts next on a task.
enum class Phase {
  kBusy,     // A store write or the agent's step is running; its continuation decides.
  kEffect,   // A model or tool effect is in flight (`call`).
  kWaiting,  // Timer, signal or children; slot given back.
  kBackoff,  // Waiting to retry a failed step.
  kQueued,   // In the dispatch queue (a wait ended), slot not held.
  kDone,
};

struct TaskRun {
  v1::Task task;
  std::vector<v1::StepRecord> journal;
  // The session's history before this task, for a task with a session.
  std::optional<v1::Session> session;
  std::shared_ptr<const RegisteredAgent> agent;
  ReadyTask ready;
  bool holds_slot = false;
  bool counted = false;  // Counted by the supervisor as one of its agent's running tasks.
  // Tokens the task's model calls used while it held its slot: settled with
  // the model's budget in the dispatch queue when the slot is given back.
  int64_t tokens_used = 0;
  Phase phase = Phase::kBusy;
  // Why the task must end now (cancel, deadline), seen by the next continuation.
  std::optional<std::pair<v1::TaskState, std::string>> abort;
  std::shared_ptr<EffectCallImpl> call;
  absl::Time step_deadline = absl::InfiniteFuture();
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
  uint64_t timer = 0;           // Timer, signal timeout or retry backoff.
  uint64_t deadline_timer = 0;  // The task's deadline.
  // Resumed while this (suspended) run was still ending: Done queues the
  // task again once the run has given back its dispatch slot.
  bool requeue_when_done = false;
  // Cancel is ending the task, its children first: their ending must not
  // hand their results to it (it would go on, and could succeed).
  bool cancelling = false;
};

// The supervisor's hooks of one agent name: its newest version's lifecycle.
class NativeHooks final : public AgentHooks {
 public:
  void Set(std::shared_ptr<Agent> agent) {
    absl::MutexLock lock(&mu_);
    agent_ = std::move(agent);
  }
  void Start(absl::AnyInvocable<void(absl::Status) &&> done) override {
    Get()->Start(std::move(done));
  }
  void Stop() override { Get()->Stop(); }
  void CheckHealth(absl::AnyInvocable<void(absl::Status) &&> done) override {
    Get()->CheckHealth(std::move(done));
  }

 private:
  std::shared_ptr<Agent> Get() {
    absl::MutexLock lock(&mu_);
    return agent_;
  }
  absl::Mutex mu_;
  std::shared_ptr<Agent> agent_ ABSL_GUARDED_BY(mu_);
};

class AgentRuntimeImpl final : public AgentRuntime {
 public:
  AgentRuntimeImpl(const AgentRuntimeOptions& options, TaskStore& store,
                   std::unique_ptr<core::Executor> executor, std::unique_ptr<DispatchQueue> queue)
      : options_(options),
        clock_(options.clock != nullptr ? *options.clock : core::Clock::Real()),
        store_(store),
        executor_(std::move(executor)),
        queue_(std::move(queue)),
        dispatch_options_(options.dispatch) {
    absl::MutexLock lock(&lifeline_->mu);
    lifeline_->runtime = this;
  }

  ~AgentRuntimeImpl() override { Shutdown(); }

  absl::StatusOr<v1::AgentSpec> RegisterAgent(v1::AgentSpec spec,
                                              std::shared_ptr<Agent> agent) override;
  absl::Status Start() override;
  absl::StatusOr<SubmitResult> Submit(v1::Task task) override;
  absl::StatusOr<v1::Task> Get(std::string_view id) const override { return store_.Get(id); }
  absl::Status Cancel(std::string_view id) override;
  absl::Status Signal(std::string_view id, std::string_view name,
                      google::protobuf::Value payload) override;
  absl::Status Decide(std::string_view task_id, std::string_view call_id,
                      ApprovalVerdict verdict) override;
  absl::Status Suspend(std::string_view id) override;
  absl::Status Resume(std::string_view id) override;
  absl::StatusOr<v1::TaskSnapshot> Snapshot(std::string_view id) const override;
  absl::StatusOr<v1::Task> Restore(const v1::TaskSnapshot& snapshot) override;
  std::vector<v1::PendingApproval> PendingApprovals() const override;
  absl::StatusOr<v1::AgentStatus> GetAgentStatus(std::string_view name) const override {
    return supervisor_.Status(std::string(name));
  }
  std::vector<v1::AgentStatus> ListAgentStatuses() const override { return supervisor_.List(); }
  absl::Status StartAgent(std::string_view name) override {
    return supervisor_.Start(std::string(name));
  }
  absl::Status StopAgent(std::string_view name) override {
    return supervisor_.Stop(std::string(name));
  }
  absl::Status RestartAgent(std::string_view name) override {
    return supervisor_.Restart(std::string(name));
  }
  absl::Status DrainAgent(std::string_view name, absl::Duration grace) override {
    return supervisor_.Drain(std::string(name), grace);
  }
  absl::StatusOr<v1::Schedule> AddSchedule(v1::Schedule schedule) override;
  absl::StatusOr<std::vector<v1::Schedule>> ListSchedules() const override;
  absl::Status RemoveSchedule(std::string_view name) override;
  void Shutdown() override;

 private:
  using RunPtr = std::shared_ptr<TaskRun>;

  absl::Time Now() const { return clock_.Now(); }
  // Runs `work` at runtime-clock time `when`.
  uint64_t At(absl::Time when, absl::AnyInvocable<void() &&> work) {
    return timers_.At(absl::Now() + std::max(absl::ZeroDuration(), when - Now()), std::move(work));
  }
  // Runs `work` on the executor unless the runtime is stopping.
  void Post(absl::AnyInvocable<void() &&> work) {
    if (stopping_.load()) return;
    executor_->Schedule([this, work = std::move(work)]() mutable {
      if (!stopping_.load()) std::move(work)();
    });
  }
  // A store write whose continuation runs on the executor.
  void Write(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> then);

  std::shared_ptr<const RegisteredAgent> FindAgent(const std::string& name, uint64_t version) const;
  ReadyTask ReadyFor(const v1::Task& task, const RegisteredAgent* agent) const;
  void Enqueue(const v1::Task& task);
  // A task of a session ended: the next one on its session may go.
  void SessionTaskEnded(const std::string& task_id, const std::string& session_id);
  // Loads the session history of a task with a session into its run;
  // false (and the task ended) when it cannot.
  bool LoadSession(const RunPtr& run);
  void Dispatch();
  void Begin(ReadyTask ready);
  // Gives back the slot of a task suspended before its run began, without
  // running it. `maybe_resumed`: it was seen SUSPENDED in the store, and a
  // Resume may have come since.
  void SkipSuspended(const ReadyTask& ready, bool maybe_resumed);
  // Queues task `id` if the store has it PENDING (a Resume the queue refused
  // while the task still held its slot).
  void EnqueueIfPending(const std::string& id);
  void Admitted(const RunPtr& run);
  void Advance(const RunPtr& run);
  // `decided`: the tools step after an approval (not checked again).
  void Act(const RunPtr& run, v1::Effect effect, bool decided = false);
  // Records decisions on the approval step in flight; completes it when every
  // call is decided.
  void RecordDecisions(const RunPtr& run, std::vector<v1::ApprovalDecision> decisions);
  void Perform(const RunPtr& run);
  void Complete(const RunPtr& run, v1::EffectResult result);
  // `blame_agent`: an error of the agent's own code (reported to its
  // supervisor) rather than of a store the runtime wrote to.
  void StepFailed(const RunPtr& run, const absl::Status& error, bool effect_journaled,
                  bool blame_agent = true);
  void Finish(const RunPtr& run, v1::TaskState state, std::string error,
              std::optional<google::protobuf::Value> output, std::optional<v1::StepRecord> step);
  void Done(const RunPtr& run);
  void CheckChildren(const RunPtr& run);
  // Ends a task early (cancelled, timed out) from whatever it is doing.
  void Abort(const RunPtr& run, v1::TaskState state, std::string why);
  void Watchdog();
  void Prune();
  // Counts the task as running for its agent's supervisor; false (and the
  // task parked until the agent runs) when the agent takes no tasks now.
  bool AdmitToAgent(const RunPtr& run, const ReadyTask& ready);
  // The task no longer runs for its agent (ended, or waits without its slot).
  void ReleaseFromAgent(const RunPtr& run);
  // Queues the tasks parked for agent `it` if it may take a task now (and
  // forgets them); whether it did.
  bool Unpark(std::map<std::string, std::vector<ReadyTask>>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent's drain ran out of time: its running tasks go back to PENDING.
  void HandBack(const std::string& agent);
  // The pending abort of `run`, if any: the caller ends the task with it.
  std::optional<std::pair<v1::TaskState, std::string>> PendingAbort(const RunPtr& run) {
    absl::MutexLock lock(&mu_);
    return run->abort;
  }
  // Forwards an effect handler's result, also after Shutdown (then dropped).
  struct Lifeline {
    absl::Mutex mu;
    AgentRuntimeImpl* runtime ABSL_GUARDED_BY(mu);
  };

  const AgentRuntimeOptions options_;
  const core::Clock& clock_;
  TaskStore& store_;
  core::internal::TimerQueue timers_;
  std::unique_ptr<core::Executor> executor_;
  std::unique_ptr<DispatchQueue> queue_;
  AgentSupervisor supervisor_{clock_};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};

  mutable absl::Mutex mu_;
  DispatchQueueOptions dispatch_options_ ABSL_GUARDED_BY(mu_);
  // Every version of every agent.
  std::map<std::string, std::map<uint64_t, std::shared_ptr<const RegisteredAgent>>> agents_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, RunPtr> runs_ ABSL_GUARDED_BY(mu_);
  // Tasks not dispatched before their not_before: id -> timer.
  absl::flat_hash_map<std::string, uint64_t> delayed_ ABSL_GUARDED_BY(mu_);
  // A child's id -> its parent waiting for it.
  absl::flat_hash_map<std::string, std::string> waiting_parent_ ABSL_GUARDED_BY(mu_);
  uint64_t wakeup_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time wakeup_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  int writes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};

  // Tasks to cancel that were between the queue and their TaskRun when
  // Cancel looked: Begin ends them.
  absl::flat_hash_set<std::string> cancel_pending_ ABSL_GUARDED_BY(mu_);
  // Tasks suspended while between the queue and their TaskRun: Begin gives
  // their slot back without running them. Resume and Cancel clear the mark.
  absl::flat_hash_set<std::string> suspend_pending_ ABSL_GUARDED_BY(mu_);
  // Signals that arrived before their task's wait was armed, by task.
  absl::flat_hash_map<std::string, v1::EffectResult> early_signals_ ABSL_GUARDED_BY(mu_);
  // Tasks of each session not final yet, in submission order: only the
  // first may be dispatched.
  absl::flat_hash_map<std::string, std::deque<std::string>> session_lines_ ABSL_GUARDED_BY(mu_);
  // Tasks held back behind an earlier task of their session, by id.
  absl::flat_hash_map<std::string, v1::Task> session_held_ ABSL_GUARDED_BY(mu_);
  // The supervisor's hooks, by agent name.
  absl::flat_hash_map<std::string, std::unique_ptr<NativeHooks>> hooks_ ABSL_GUARDED_BY(mu_);
  // Tasks waiting for their agent to run again, by agent.
  std::map<std::string, std::vector<ReadyTask>> parked_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<Lifeline> lifeline_ = std::make_shared<Lifeline>();

  absl::Mutex dispatch_mu_;   // One Pop loop at a time.
  absl::Mutex schedules_mu_;  // One AddSchedule at a time (names stay unique).
  // Submits of session tasks one at a time, so their order in the store and
  // in their session's line is the same.
  absl::Mutex session_submit_mu_;
};

void AgentRuntimeImpl::Write(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> then) {
  {
    absl::MutexLock lock(&mu_);
    // Shutting down: no new writes (Shutdown waits for those in flight, then
    // stops the executor their callbacks run on). The step is performed
    // again after the next Start.
    if (stopping_.load()) return;
    ++writes_in_flight_;
  }
  store_.ApplyAsync(std::move(update), [this, then = std::move(then)](absl::Status s) mutable {
    // The store's writer thread: hand off at once.
    executor_->Schedule([this, then = std::move(then), s = std::move(s)]() mutable {
      if (!stopping_.load()) std::move(then)(std::move(s));
      absl::MutexLock lock(&mu_);
      --writes_in_flight_;
    });
  });
}

absl::StatusOr<v1::AgentSpec> AgentRuntimeImpl::RegisterAgent(v1::AgentSpec spec,
                                                              std::shared_ptr<Agent> agent) {
  if (spec.name().empty()) return absl::InvalidArgumentError("agent.name: must not be empty");
  if (agent == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("agent ", spec.name(), ": no implementation"));
  }
  if (spec.kind() == v1::AgentSpec::KIND_UNSPECIFIED) spec.set_kind(v1::AgentSpec::KIND_NATIVE);
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    auto& versions = agents_[spec.name()];
    spec.set_version(versions.empty() ? 1 : versions.rbegin()->first + 1);
    versions[spec.version()] =
        std::make_shared<const RegisteredAgent>(RegisteredAgent{spec, agent});
    if (spec.limits().max_concurrency() > 0) {
      dispatch_options_.max_running_per_agent[spec.name()] =
          static_cast<int>(spec.limits().max_concurrency());
      FLOWORK_RETURN_IF_ERROR(queue_->UpdateOptions(dispatch_options_));
    }
    std::unique_ptr<NativeHooks>& hooks = hooks_[spec.name()];
    first = hooks == nullptr;
    if (first) hooks = std::make_unique<NativeHooks>();
    hooks->Set(agent);
    if (first) FLOWORK_RETURN_IF_ERROR(supervisor_.Add(spec, *hooks));
  }
  // Outside the lock: Start calls the agent's Start hook.
  if (first) FLOWORK_RETURN_IF_ERROR(supervisor_.Start(spec.name()));
  return spec;
}

std::shared_ptr<const RegisteredAgent> AgentRuntimeImpl::FindAgent(const std::string& name,
                                                                   uint64_t version) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end() || it->second.empty()) return nullptr;
  auto exact = it->second.find(version);
  // After a restart the registered versions start again: the newest serves.
  return exact != it->second.end() ? exact->second : it->second.rbegin()->second;
}

ReadyTask AgentRuntimeImpl::ReadyFor(const v1::Task& task, const RegisteredAgent* agent) const {
  ReadyTask ready;
  ready.id = task.id();
  ready.agent = task.agent();
  ready.tenant = task.tenant();
  if (agent != nullptr) ready.model = agent->spec.model();
  ready.priority = task.priority();
  if (task.has_deadline()) ready.deadline = ToTime(task.deadline());
  ready.ready_since = Now();
  return ready;
}

absl::Status AgentRuntimeImpl::Start() {
  if (started_.exchange(true)) return absl::FailedPreconditionError("the runtime already started");
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Task> unfinished, store_.ListUnfinished());
  for (const v1::Task& task : unfinished) {
    if (task.state() == v1::TASK_STATE_SUSPENDED) {
      // Not dispatched, but later tasks of its session wait behind it.
      if (!task.session_id().empty()) {
        absl::MutexLock lock(&mu_);
        session_lines_[task.session_id()].push_back(task.id());
      }
      continue;
    }
    Enqueue(task);
  }
  At(Now() + options_.watchdog_interval, [this] { Watchdog(); });
  if (options_.retention.max_age || options_.retention.max_count) {
    At(Now() + options_.retention_interval, [this] { Prune(); });
  }
  Dispatch();
  return absl::OkStatus();
}

absl::StatusOr<SubmitResult> AgentRuntimeImpl::Submit(v1::Task task) {
  std::shared_ptr<const RegisteredAgent> agent = FindAgent(task.agent(), 0);
  if (agent == nullptr) {
    return absl::NotFoundError(absl::StrCat("no agent named \"", task.agent(), "\""));
  }
  task.set_agent_version(agent->spec.version());
  if (!task.has_deadline() && agent->spec.limits().has_task_timeout()) {
    *task.mutable_deadline() = ToProto(Now() + ToDuration(agent->spec.limits().task_timeout()));
  }
  if (task.session_id().empty()) {
    FLOWORK_ASSIGN_OR_RETURN(SubmitResult result, store_.Submit(std::move(task)));
    if (result.created && started_.load()) {
      Enqueue(result.task);
      Dispatch();
    }
    return result;
  }
  if (options_.sessions == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session_id: \"", task.session_id(), "\" given, but the runtime has no session store"));
  }
  FLOWORK_ASSIGN_OR_RETURN(v1::Session session, options_.sessions->Get(task.session_id()));
  if (session.tenant() != task.tenant() || session.agent() != task.agent()) {
    return absl::InvalidArgumentError(
        absl::StrCat("session_id: session \"", session.id(), "\" belongs to tenant \"",
                     session.tenant(), "\" and agent \"", session.agent(), "\", not to tenant \"",
                     task.tenant(), "\" and agent \"", task.agent(), "\""));
  }
  SubmitResult result;
  {
    absl::MutexLock submit_lock(&session_submit_mu_);
    FLOWORK_ASSIGN_OR_RETURN(result, store_.Submit(std::move(task)));
    if (result.created && started_.load()) Enqueue(result.task);
  }
  if (result.created && started_.load()) Dispatch();
  return result;
}

void AgentRuntimeImpl::SessionTaskEnded(const std::string& task_id, const std::string& session_id) {
  if (session_id.empty()) return;
  std::optional<v1::Task> next;
  {
    absl::MutexLock lock(&mu_);
    session_held_.erase(task_id);
    auto it = session_lines_.find(session_id);
    if (it == session_lines_.end()) return;
    std::erase(it->second, task_id);
    if (it->second.empty()) {
      session_lines_.erase(it);
      return;
    }
    if (auto held = session_held_.find(it->second.front()); held != session_held_.end()) {
      next = std::move(held->second);
      session_held_.erase(held);
    }
  }
  if (next) {
    Enqueue(*next);
    Post([this] { Dispatch(); });
  }
}

bool AgentRuntimeImpl::LoadSession(const RunPtr& run) {
  const std::string& id = run->task.session_id();
  if (id.empty() || run->session) return true;
  absl::StatusOr<v1::Session> session =
      options_.sessions == nullptr ? absl::FailedPreconditionError(absl::StrCat(
                                         "session \"", id, "\": the runtime has no session store"))
                                   : LoadSessionHistory(*options_.sessions, id, run->task.id());
  if (!session.ok()) {
    Finish(run, v1::TASK_STATE_FAILED,
           absl::StrCat("loading the session: ", session.status().ToString()), {}, {});
    return false;
  }
  run->session = *std::move(session);
  return true;
}

void AgentRuntimeImpl::Enqueue(const v1::Task& task) {
  const absl::Time not_before =
      task.has_not_before() ? ToTime(task.not_before()) : absl::InfinitePast();
  absl::MutexLock lock(&mu_);
  if (!task.session_id().empty()) {
    // One task of a session at a time, in submission order.
    std::deque<std::string>& line = session_lines_[task.session_id()];
    if (std::find(line.begin(), line.end(), task.id()) == line.end()) line.push_back(task.id());
    if (line.front() != task.id()) {
      session_held_[task.id()] = task;
      return;
    }
  }
  if (not_before > Now()) {
    const std::string id = task.id();
    delayed_[id] = At(not_before, [this, task] {
      {
        absl::MutexLock lock(&mu_);
        if (delayed_.erase(task.id()) == 0) return;  // Cancelled meanwhile.
      }
      v1::Task due = task;
      due.clear_not_before();
      Enqueue(due);
      Post([this] { Dispatch(); });
    });
    return;
  }
  std::shared_ptr<const RegisteredAgent> agent;
  if (auto it = agents_.find(task.agent()); it != agents_.end() && !it->second.empty()) {
    agent = it->second.rbegin()->second;
  }
  queue_->Push(ReadyFor(task, agent.get()));
}

void AgentRuntimeImpl::Dispatch() {
  if (stopping_.load()) return;
  absl::MutexLock dispatch_lock(&dispatch_mu_);
  const absl::Time now = Now();
  while (!stopping_.load()) {
    std::optional<ReadyTask> ready = queue_->Pop(now);
    if (!ready) break;
    executor_->Schedule([this, ready = *std::move(ready)]() mutable {
      if (!stopping_.load()) Begin(std::move(ready));
    });
  }
  // Sleep until a budget refills or a back-off ends, if that is what blocks.
  const absl::Time wake = queue_->NextWakeup(now);
  absl::MutexLock lock(&mu_);
  if (wake == absl::InfiniteFuture() || wake >= wakeup_at_) return;
  if (wakeup_timer_ != 0) timers_.Cancel(wakeup_timer_);
  wakeup_at_ = wake;
  wakeup_timer_ = At(wake, [this] {
    {
      absl::MutexLock lock(&mu_);
      wakeup_timer_ = 0;
      wakeup_at_ = absl::InfiniteFuture();
    }
    Post([this] { Dispatch(); });
  });
}

void AgentRuntimeImpl::Begin(ReadyTask ready) {
  RunPtr run;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = runs_.find(ready.id); it != runs_.end() && it->second->phase != Phase::kDone) {
      // A wait ended and the task got its slot again.
      run = it->second;
      run->ready = ready;
      run->holds_slot = true;
      if (run->phase != Phase::kQueued) {
        // Ended meanwhile (cancelled): give the slot back.
        run->holds_slot = false;
        queue_->Finish(ready, 0);
        Post([this] { Dispatch(); });
        return;
      }
    }
  }
  if (run != nullptr) {
    if (!AdmitToAgent(run, ready)) return;
    {
      absl::MutexLock lock(&mu_);
      if (run->phase != Phase::kQueued) return;  // Ended meanwhile.
      run->phase = Phase::kBusy;
    }
    return Advance(run);
  }

  absl::StatusOr<v1::Task> task = store_.Get(ready.id);
  if (!task.ok() || IsFinal(task->state())) {
    queue_->Finish(ready, 0);
    if (task.ok()) SessionTaskEnded(task->id(), task->session_id());
    return Dispatch();
  }
  run = std::make_shared<TaskRun>();
  run->task = *std::move(task);
  run->ready = ready;
  run->holds_slot = true;
  run->agent = FindAgent(run->task.agent(), run->task.agent_version());
  bool suspend_marked = false, skip = false;
  {
    absl::MutexLock lock(&mu_);
    suspend_marked = suspend_pending_.erase(ready.id) > 0;
    // Suspended since it was queued: it does not run.
    skip = suspend_marked || run->task.state() == v1::TASK_STATE_SUSPENDED;
    if (!skip) {
      runs_[ready.id] = run;
      if (cancel_pending_.erase(ready.id) > 0) run->task.set_cancel_requested(true);
      if (run->task.has_deadline()) {
        run->deadline_timer = At(ToTime(run->task.deadline()), [this, run] {
          Post([this, run] { Abort(run, v1::TASK_STATE_TIMED_OUT, "the task's deadline passed"); });
        });
      }
    }
  }
  if (skip) return SkipSuspended(ready, /*maybe_resumed=*/!suspend_marked);
  if (run->agent != nullptr && !AdmitToAgent(run, ready)) {
    absl::MutexLock lock(&mu_);
    runs_.erase(ready.id);  // Parked: picked up again from the store's state.
    if (run->deadline_timer) timers_.Cancel(run->deadline_timer);
    return;
  }
  if (run->agent == nullptr) {
    return Finish(run, v1::TASK_STATE_FAILED,
                  absl::StrCat("no agent named \"", run->task.agent(), "\" is registered"),
                  std::nullopt, std::nullopt);
  }
  if (run->task.cancel_requested()) {
    return Finish(run, v1::TASK_STATE_CANCELLED, "cancelled", std::nullopt, std::nullopt);
  }
  if (run->task.state() == v1::TASK_STATE_PENDING) {
    TaskUpdate admit{.task_id = run->task.id()};
    admit.expect_state = v1::TASK_STATE_PENDING;
    admit.state = v1::TASK_STATE_ADMITTED;
    return Write(std::move(admit), [this, run](absl::Status s) {
      if (!s.ok()) return Finish(run, v1::TASK_STATE_FAILED, s.ToString(), {}, {});
      run->task.set_state(v1::TASK_STATE_ADMITTED);
      Admitted(run);
    });
  }
  Admitted(run);
}

void AgentRuntimeImpl::SkipSuspended(const ReadyTask& ready, bool maybe_resumed) {
  queue_->Finish(ready, 0);
  if (maybe_resumed) {
    // A Resume that came after this task was read found no run and queued
    // it, but the queue refused it as still running: queue it now.
    EnqueueIfPending(ready.id);
  }
  Dispatch();
}

void AgentRuntimeImpl::EnqueueIfPending(const std::string& id) {
  absl::StatusOr<v1::Task> task = store_.Get(id);
  if (task.ok() && task->state() == v1::TASK_STATE_PENDING) Enqueue(*task);
}

void AgentRuntimeImpl::Admitted(const RunPtr& run) {
  if (!LoadSession(run)) return;
  auto go_on = [this, run] {
    absl::StatusOr<std::vector<v1::StepRecord>> journal = store_.Journal(run->task.id());
    if (!journal.ok())
      return Finish(run, v1::TASK_STATE_FAILED, journal.status().ToString(), {}, {});
    run->journal = *std::move(journal);
    Advance(run);
  };
  if (run->task.state() != v1::TASK_STATE_ADMITTED) return go_on();
  TaskUpdate start{.task_id = run->task.id()};
  start.expect_state = v1::TASK_STATE_ADMITTED;
  start.state = v1::TASK_STATE_RUNNING;
  Write(std::move(start), [this, run, go_on](absl::Status s) {
    if (!s.ok()) return Finish(run, v1::TASK_STATE_FAILED, s.ToString(), {}, {});
    run->task.set_state(v1::TASK_STATE_RUNNING);
    if (run->task.step_count() == 0) {
      // A task that never ran has no journal to read.
      Advance(run);
    } else {
      go_on();
    }
  });
}

// Decides the next step, or resumes the one journaled but not finished.
void AgentRuntimeImpl::Advance(const RunPtr& run) {
  if (auto abort = PendingAbort(run)) return Finish(run, abort->first, abort->second, {}, {});
  if (!run->journal.empty() && run->journal.back().status() == v1::StepRecord::STATUS_STARTED) {
    return Perform(run);  // Journaled before a crash (or a retry): act on it again.
  }
  if (!run->journal.empty() && run->journal.back().kind() == "approval") {
    // The decisions are in: the approved calls run, as edited.
    v1::Effect asked;
    v1::EffectResult decided;
    asked.ParseFromString(run->journal.back().input());
    decided.ParseFromString(run->journal.back().output());
    v1::Effect tools;
    for (const v1::ToolCall& call : asked.approval().calls().calls()) {
      v1::ToolCall* kept = tools.mutable_tools()->add_calls();
      *kept = call;
      for (const v1::ApprovalDecision& d : decided.approval().decisions()) {
        if (d.call_id() == call.id() && d.edited())
          *kept->mutable_arguments() = d.edited_arguments();
      }
    }
    return Act(run, std::move(tools), /*decided=*/true);
  }
  const v1::AgentSpec& spec = run->agent->spec;
  if (run->journal.size() >= MaxSteps(spec)) {
    return Finish(run, v1::TASK_STATE_FAILED,
                  absl::StrCat("max_steps reached (", MaxSteps(spec), ")"), {}, {});
  }
  StepContext context{run->task, run->journal, Now(), run->session ? &*run->session : nullptr};
  absl::StatusOr<v1::Effect> effect = run->agent->impl->Step(context);
  if (!effect.ok()) return StepFailed(run, effect.status(), /*effect_journaled=*/false);
  Act(run, *std::move(effect));
}

// Journals `effect` (STARTED, or the final step), then performs it.
void AgentRuntimeImpl::Act(const RunPtr& run, v1::Effect effect, bool decided) {
  const absl::Time now = Now();
  if (effect.has_approval()) {
    return StepFailed(run, absl::InvalidArgumentError("an agent may not return an approval effect"),
                      false);
  }
  if (effect.has_tools() && !decided && options_.approvals != nullptr) {
    // Calls that need a person first: the step becomes an approval, and the
    // tools step follows it once every call is decided.
    v1::ApprovalRequest request;
    absl::Duration timeout = absl::InfiniteDuration();
    for (const v1::ToolCall& call : effect.tools().calls()) {
      if (std::optional<ApprovalPolicy::Rule> rule = options_.approvals->Check(run->task, call)) {
        v1::ApprovalRequest::Pending* pending = request.add_pending();
        pending->set_call_id(call.id());
        pending->set_reason(rule->reason);
        if (rule->timeout < timeout) {
          timeout = rule->timeout;
          request.set_default_verdict(rule->on_timeout);
        }
      }
    }
    if (request.pending_size() > 0) {
      *request.mutable_calls() = effect.tools();
      if (timeout != absl::InfiniteDuration()) *request.mutable_until() = ToProto(now + timeout);
      effect.Clear();
      *effect.mutable_approval() = std::move(request);
    }
  }
  v1::StepRecord step;
  step.set_task_id(run->task.id());
  step.set_seq(run->journal.size() + 1);
  step.set_kind(KindName(effect));
  step.set_attempt(1);
  *step.mutable_start_time() = ToProto(now);
  switch (effect.kind_case()) {
    case v1::Effect::kFinish: {
      step.set_status(v1::StepRecord::STATUS_COMPLETED);
      *step.mutable_end_time() = ToProto(now);
      step.set_input(effect.SerializeAsString());
      if (!run->task.session_id().empty() && options_.sessions != nullptr) {
        // The turn goes into the session before the task is final, keyed
        // by the finish step: a crash in between asks again, applied once.
        StepContext context{run->task, run->journal, now, run->session ? &*run->session : nullptr};
        absl::StatusOr<SessionTurn> turn =
            run->agent->impl->TurnForSession(context, effect.finish().output());
        if (!turn.ok()) return StepFailed(run, turn.status(), /*effect_journaled=*/false);
        SessionAppend append;
        append.task_id = run->task.id();
        append.step_seq = step.seq();
        append.messages = std::move(turn->messages);
        append.summary = std::move(turn->summary);
        append.summarized_through = turn->summarized_through;
        absl::StatusOr<bool> appended = options_.sessions->Append(run->task.session_id(), append);
        if (!appended.ok()) {
          return StepFailed(run, appended.status(), /*effect_journaled=*/false,
                            /*blame_agent=*/false);
        }
      }
      return Finish(run, v1::TASK_STATE_SUCCEEDED, "", effect.finish().output(), std::move(step));
    }
    case v1::Effect::kFail: {
      step.set_status(v1::StepRecord::STATUS_COMPLETED);
      *step.mutable_end_time() = ToProto(now);
      step.set_input(effect.SerializeAsString());
      const std::string why =
          effect.fail().error().empty() ? "the agent failed the task" : effect.fail().error();
      return Finish(run, v1::TASK_STATE_FAILED, why, std::nullopt, std::move(step));
    }
    case v1::Effect::kTimer:
      if (!effect.timer().has_until()) {
        *effect.mutable_timer()->mutable_until() =
            ToProto(now + ToDuration(effect.timer().after()));
      }
      break;
    case v1::Effect::kSignal:
      if (effect.signal().has_timeout() && !effect.signal().has_until()) {
        *effect.mutable_signal()->mutable_until() =
            ToProto(now + ToDuration(effect.signal().timeout()));
      }
      break;
    case v1::Effect::KIND_NOT_SET:
      return StepFailed(run, absl::InvalidArgumentError("the agent's step returned no effect"),
                        false);
    default:
      break;
  }
  step.set_status(v1::StepRecord::STATUS_STARTED);
  step.set_input(effect.SerializeAsString());
  TaskUpdate update{.task_id = run->task.id()};
  update.expect_state = run->task.state();
  update.state = WaitingState(effect);
  update.attempt = 1;
  update.steps.push_back(step);
  Write(std::move(update), [this, run, step, state = WaitingState(effect)](absl::Status s) {
    if (!s.ok()) return Finish(run, v1::TASK_STATE_FAILED, s.ToString(), {}, {});
    run->task.set_state(state);
    run->task.set_attempt(1);
    run->journal.push_back(step);
    Perform(run);
  });
}

// Performs the journal's last (STARTED) step.
void AgentRuntimeImpl::Perform(const RunPtr& run) {
  v1::Effect effect;
  if (!effect.ParseFromString(run->journal.back().input())) {
    return Finish(run, v1::TASK_STATE_FAILED, "the journal holds an unreadable effect", {}, {});
  }
  const v1::AgentSpec& spec = run->agent->spec;
  const absl::Time now = Now();
  if (effect.has_children() && effect.children().detach()) {
    // Started and left to run on their own: no parent link, so cancelling
    // this task does not cancel them.
    v1::EffectResult result;
    const uint64_t seq = run->journal.back().seq();
    for (int i = 0; i < effect.children().tasks_size(); ++i) {
      v1::Task child = effect.children().tasks(i);
      if (child.tenant().empty()) child.set_tenant(run->task.tenant());
      child.set_idempotency_key(absl::StrCat(run->task.id(), "/", seq, "/", i));
      absl::StatusOr<SubmitResult> submitted = Submit(std::move(child));
      if (!submitted.ok()) {
        return StepFailed(run, submitted.status(), /*effect_journaled=*/true);
      }
      *result.mutable_children()->add_tasks() = std::move(submitted->task);
    }
    return Complete(run, std::move(result));
  }
  if (ReleasesSlot(effect)) {
    if (effect.has_children()) {
      // Started with keys derived from the step: after a crash, Submit returns
      // the children already started instead of starting them again.
      const uint64_t seq = run->journal.back().seq();
      for (int i = 0; i < effect.children().tasks_size(); ++i) {
        v1::Task child = effect.children().tasks(i);
        child.set_parent_id(run->task.id());
        if (child.tenant().empty()) child.set_tenant(run->task.tenant());
        child.set_idempotency_key(absl::StrCat(run->task.id(), "/", seq, "/", i));
        absl::StatusOr<SubmitResult> submitted = Submit(std::move(child));
        if (!submitted.ok()) {
          return Finish(run, v1::TASK_STATE_FAILED,
                        absl::StrCat("starting child ", i, ": ", submitted.status().ToString()), {},
                        {});
        }
        absl::MutexLock lock(&mu_);
        waiting_parent_[submitted->task.id()] = run->task.id();
      }
    }
    bool released = false;
    {
      absl::MutexLock lock(&mu_);
      if (!run->abort) {
        run->phase = Phase::kWaiting;
        released = run->holds_slot;
        run->holds_slot = false;
        if (released) queue_->Finish(run->ready, std::exchange(run->tokens_used, 0));
      }
    }
    ReleaseFromAgent(run);
    if (auto abort = PendingAbort(run)) return Finish(run, abort->first, abort->second, {}, {});
    if (released) Post([this] { Dispatch(); });
    if (effect.has_signal()) {
      std::optional<v1::EffectResult> early;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = early_signals_.find(run->task.id()); it != early_signals_.end()) {
          early = std::move(it->second);
          early_signals_.erase(it);
          run->phase = Phase::kBusy;
        }
      }
      if (early) return Complete(run, *std::move(early));
    }
    if (effect.has_timer()) {
      const uint64_t timer = At(ToTime(effect.timer().until()), [this, run] {
        Post([this, run] {
          {
            absl::MutexLock lock(&mu_);
            if (run->phase != Phase::kWaiting) return;
            run->phase = Phase::kBusy;
          }
          v1::EffectResult result;
          result.mutable_timer();
          Complete(run, std::move(result));
        });
      });
      absl::MutexLock lock(&mu_);
      run->timer = timer;
    } else if (effect.has_signal() && effect.signal().has_until()) {
      const uint64_t timer =
          At(ToTime(effect.signal().until()), [this, run, name = effect.signal().name()] {
            Post([this, run, name] {
              {
                absl::MutexLock lock(&mu_);
                if (run->phase != Phase::kWaiting) return;
                run->phase = Phase::kBusy;
              }
              v1::EffectResult result;
              result.mutable_signal()->set_name(name);
              result.mutable_signal()->set_timed_out(true);
              Complete(run, std::move(result));
            });
          });
      absl::MutexLock lock(&mu_);
      run->timer = timer;
    } else if (effect.has_children()) {
      Post([this, run] { CheckChildren(run); });
    } else if (effect.has_approval() && effect.approval().has_until()) {
      const uint64_t timer = At(ToTime(effect.approval().until()), [this, run, effect] {
        Post([this, run, effect] {
          // Time is up: the undecided calls get the default verdict.
          v1::EffectResult so_far;
          {
            absl::MutexLock lock(&mu_);
            if (run->phase != Phase::kWaiting) return;
            so_far.ParseFromString(run->journal.back().output());
          }
          std::vector<v1::ApprovalDecision> defaults;
          for (const auto& pending : effect.approval().pending()) {
            bool done = false;
            for (const auto& d : so_far.approval().decisions())
              done |= d.call_id() == pending.call_id();
            if (done) continue;
            v1::ApprovalDecision d;
            d.set_call_id(pending.call_id());
            d.set_verdict(effect.approval().default_verdict() == v1::VERDICT_APPROVE
                              ? v1::VERDICT_APPROVE
                              : v1::VERDICT_DENY);
            d.set_who("timeout");
            d.set_by_timeout(true);
            *d.mutable_time() = ToProto(Now());
            defaults.push_back(std::move(d));
          }
          RecordDecisions(run, std::move(defaults));
        });
      });
      absl::MutexLock lock(&mu_);
      run->timer = timer;
    }
    return;
  }
  EffectHandler* handler = effect.has_model()    ? options_.models
                           : effect.has_tools()  ? options_.tools
                           : effect.has_remote() ? options_.remote
                                                 : nullptr;
  if (handler == nullptr) {
    return Finish(
        run, v1::TASK_STATE_FAILED,
        absl::StrCat("no handler for effects of kind ", KindName(effect), " is configured"), {},
        {});
  }
  const absl::Time step_deadline =
      now + DurationOr(spec.limits().step_timeout(), absl::Minutes(10));
  auto call = std::make_shared<EffectCallImpl>(run->task, step_deadline, now);
  if (auto abort = PendingAbort(run)) return Finish(run, abort->first, abort->second, {}, {});
  {
    absl::MutexLock lock(&mu_);
    run->phase = Phase::kEffect;
    run->call = call;
    run->step_deadline = step_deadline;
    run->heartbeat_timeout = ToDuration(spec.limits().heartbeat_timeout());
  }
  // After an approval: denied calls are not performed; their result says so.
  std::map<std::string, std::string> denied;
  if (effect.has_tools() && run->journal.size() >= 2 &&
      run->journal[run->journal.size() - 2].kind() == "approval") {
    v1::EffectResult decided;
    decided.ParseFromString(run->journal[run->journal.size() - 2].output());
    for (const v1::ApprovalDecision& d : decided.approval().decisions()) {
      if (d.verdict() == v1::VERDICT_DENY) {
        denied[d.call_id()] =
            absl::StrCat("denied by ", d.who(), d.comment().empty() ? "" : ": ", d.comment());
      }
    }
  }
  // The answer as the step records it: denied calls get their denial, in
  // the order the agent asked (the identity when nothing was denied).
  std::function<v1::EffectResult(v1::EffectResult)> merge = [](v1::EffectResult r) { return r; };
  if (!denied.empty()) {
    v1::Effect approved = effect;
    approved.mutable_tools()->clear_calls();
    for (const v1::ToolCall& c : effect.tools().calls()) {
      if (!denied.count(c.id())) *approved.mutable_tools()->add_calls() = c;
    }
    merge = [order = effect.tools(), denied](v1::EffectResult performed) {
      v1::EffectResult merged;
      for (const v1::ToolCall& c : order.calls()) {
        v1::ToolResult* r = merged.mutable_tools()->add_results();
        r->set_id(c.id());
        if (auto it = denied.find(c.id()); it != denied.end()) {
          r->set_error(it->second);
          continue;
        }
        for (const v1::ToolResult& p : performed.tools().results()) {
          if (p.id() == c.id()) *r = p;
        }
      }
      return merged;
    };
    if (approved.tools().calls_size() == 0) {
      {
        absl::MutexLock lock(&mu_);
        run->phase = Phase::kBusy;
        run->call = nullptr;
      }
      return Complete(run, merge(v1::EffectResult()));
    }
    effect = std::move(approved);
  }
  handler->Perform(
      effect, call,
      [lifeline = lifeline_, run, call, merge](absl::StatusOr<v1::EffectResult> result) {
        absl::ReaderMutexLock alive(&lifeline->mu);
        AgentRuntimeImpl* self = lifeline->runtime;
        if (self == nullptr) return;  // Shut down: performed again after the next Start.
        if (result.ok()) result = merge(*std::move(result));
        self->Post([self, run, call, result = std::move(result)]() mutable {
          {
            absl::MutexLock lock(&self->mu_);
            if (run->call != call || run->phase != Phase::kEffect) return;  // Abandoned.
            run->call = nullptr;
            run->phase = Phase::kBusy;
          }
          if (!result.ok())
            return self->StepFailed(run, result.status(), /*effect_journaled=*/true);
          self->Complete(run, *std::move(result));
        });
      });
}

// Journals the result of the last step, then goes on.
void AgentRuntimeImpl::Complete(const RunPtr& run, v1::EffectResult result) {
  if (result.has_model()) {
    // The usage the model reported, for the model's tokens-per-minute budget.
    const auto& fields = result.model().struct_value().fields();
    if (auto usage = fields.find("usage"); usage != fields.end()) {
      const auto& u = usage->second.struct_value().fields();
      int64_t used = 0;
      for (const char* key : {"prompt_tokens", "completion_tokens"}) {
        if (auto it = u.find(key); it != u.end())
          used += static_cast<int64_t>(it->second.number_value());
      }
      absl::MutexLock lock(&mu_);
      run->tokens_used += used;
    }
  }
  v1::StepRecord done;
  done.set_task_id(run->task.id());
  done.set_seq(run->journal.back().seq());
  done.set_status(v1::StepRecord::STATUS_COMPLETED);
  done.set_output(result.SerializeAsString());
  *done.mutable_end_time() = ToProto(Now());
  TaskUpdate update{.task_id = run->task.id()};
  update.expect_state = run->task.state();
  update.state = v1::TASK_STATE_RUNNING;
  update.steps.push_back(done);
  Write(std::move(update), [this, run, done](absl::Status s) {
    if (!s.ok()) return Finish(run, v1::TASK_STATE_FAILED, s.ToString(), {}, {});
    run->task.set_state(v1::TASK_STATE_RUNNING);
    run->journal.back().MergeFrom(done);
    bool requeue = false;
    {
      absl::MutexLock lock(&mu_);
      if (!run->holds_slot && !run->abort) {
        // The wait gave its slot back: queue for one again.
        run->phase = Phase::kQueued;
        requeue = true;
      }
    }
    if (!requeue) return Advance(run);
    ReadyTask ready = ReadyFor(run->task, run->agent.get());
    {
      absl::MutexLock lock(&mu_);
      run->ready = ready;
      queue_->Push(std::move(ready));
    }
    Dispatch();
  });
}

void AgentRuntimeImpl::StepFailed(const RunPtr& run, const absl::Status& error,
                                  bool effect_journaled, bool blame_agent) {
  const v1::AgentSpec& spec = run->agent->spec;
  if (!effect_journaled && blame_agent) {
    // The agent itself failed: its supervisor decides about restarting it.
    // (Already down: nothing more to report.)
    supervisor_.ReportFailure(spec.name(), error).IgnoreError();
  }
  const int attempt = std::max(1, run->task.attempt());
  const std::string what = effect_journaled ? absl::StrCat("step ", run->journal.back().seq(), " (",
                                                           run->journal.back().kind(), ")")
                                            : std::string("the agent's step function");
  if (attempt >= static_cast<int>(MaxAttempts(spec))) {
    std::optional<v1::StepRecord> failed;
    if (effect_journaled) {
      failed.emplace();
      failed->set_task_id(run->task.id());
      failed->set_seq(run->journal.back().seq());
      failed->set_status(v1::StepRecord::STATUS_FAILED);
      failed->set_error(std::string(error.message()));
      *failed->mutable_end_time() = ToProto(Now());
    }
    return Finish(run, v1::TASK_STATE_FAILED,
                  absl::StrCat(what, " failed after ", attempt, " attempts: ", error.message()),
                  std::nullopt, std::move(failed));
  }
  double unit;
  {
    absl::MutexLock lock(&mu_);
    unit = std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  absl::Duration wait = StepBackoff(spec.retry(), attempt, unit);
  if (std::optional<absl::Duration> retry_after = LlmRetryAfter(error)) {
    // The router said 429: no task of this model is dispatched before then.
    if (!spec.model().empty()) queue_->BackOffModel(spec.model(), Now() + *retry_after);
    wait = std::max(wait, *retry_after);
  }
  TaskUpdate update{.task_id = run->task.id()};
  update.attempt = attempt + 1;
  update.error = absl::StrCat(what, " attempt ", attempt, " failed: ", error.message());
  if (effect_journaled) {
    v1::StepRecord retry;
    retry.set_task_id(run->task.id());
    retry.set_seq(run->journal.back().seq());
    retry.set_attempt(attempt + 1);
    retry.set_error(std::string(error.message()));
    update.steps.push_back(retry);
  }
  Write(std::move(update), [this, run, wait, attempt](absl::Status s) {
    if (!s.ok()) return Finish(run, v1::TASK_STATE_FAILED, s.ToString(), {}, {});
    run->task.set_attempt(attempt + 1);
    if (auto abort = PendingAbort(run)) return Finish(run, abort->first, abort->second, {}, {});
    absl::MutexLock lock(&mu_);
    run->phase = Phase::kBackoff;
    run->timer = At(Now() + wait, [this, run] {
      Post([this, run] {
        {
          absl::MutexLock lock(&mu_);
          if (run->phase != Phase::kBackoff) return;
          run->phase = Phase::kBusy;
        }
        Advance(run);
      });
    });
  });
}

void AgentRuntimeImpl::Finish(const RunPtr& run, v1::TaskState state, std::string error,
                              std::optional<google::protobuf::Value> output,
                              std::optional<v1::StepRecord> step) {
  {
    absl::MutexLock lock(&mu_);
    if (run->phase == Phase::kDone) return;
    run->phase = Phase::kDone;
    if (run->call) run->call->Cancel();
    run->call = nullptr;
    if (run->timer) timers_.Cancel(run->timer);
    if (run->deadline_timer) timers_.Cancel(run->deadline_timer);
  }
  TaskUpdate update{.task_id = run->task.id()};
  update.state = state;
  if (!error.empty()) update.error = error;
  if (output) update.output = *std::move(output);
  if (step) update.steps.push_back(*std::move(step));
  Write(std::move(update), [this, run, state](absl::Status s) {
    if (!s.ok()) {
      // Already final (a racing cancel won): what is stored stands.
      core::Log(core::LogLevel::kDebug, "task end not stored",
                {{"task", run->task.id()}, {"error", s.ToString()}});
    }
    run->task.set_state(state);
    if (state == v1::TASK_STATE_CANCELLED || state == v1::TASK_STATE_TIMED_OUT) {
      // Children started by the task end with it.
      absl::StatusOr<std::vector<std::string>> children = store_.Children(run->task.id());
      if (children.ok()) {
        for (const std::string& child : *children) {
          if (absl::Status s = Cancel(child); !s.ok()) {
            core::Log(core::LogLevel::kWarning, "cancelling a child failed",
                      {{"task", child}, {"error", s.ToString()}});
          }
        }
      }
    }
    Done(run);
  });
}

void AgentRuntimeImpl::Done(const RunPtr& run) {
  std::string parent;
  bool requeue = false;
  {
    absl::MutexLock lock(&mu_);
    requeue = run->requeue_when_done;
    // Only this run: a resumed task may already have a new one.
    if (auto it = runs_.find(run->task.id()); it != runs_.end() && it->second == run) {
      runs_.erase(it);
    }
    if (run->holds_slot) {
      run->holds_slot = false;
      queue_->Finish(run->ready, std::exchange(run->tokens_used, 0));
    }
    // A parent waits for final children only: a suspended child comes back.
    // (The next task of its session likewise waits for a final one.)
    if (auto it = waiting_parent_.find(run->task.id());
        it != waiting_parent_.end() && IsFinal(run->task.state())) {
      parent = it->second;
      waiting_parent_.erase(it);
    }
  }
  // After the slot is settled: an agent that shows no running task has
  // booked their model usage.
  ReleaseFromAgent(run);
  if (IsFinal(run->task.state())) SessionTaskEnded(run->task.id(), run->task.session_id());
  if (!parent.empty()) {
    RunPtr parent_run;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = runs_.find(parent); it != runs_.end()) parent_run = it->second;
    }
    if (parent_run) CheckChildren(parent_run);
  }
  if (requeue) EnqueueIfPending(run->task.id());
  Dispatch();
}

void AgentRuntimeImpl::CheckChildren(const RunPtr& run) {
  v1::Effect effect;
  {
    absl::MutexLock lock(&mu_);
    if (run->phase != Phase::kWaiting || run->cancelling || run->journal.empty()) return;
    if (!effect.ParseFromString(run->journal.back().input()) || !effect.has_children()) return;
  }
  absl::StatusOr<std::vector<std::string>> ids = store_.Children(run->task.id());
  if (!ids.ok()) return;
  v1::EffectResult result;
  const std::string prefix = absl::StrCat(run->task.id(), "/", run->journal.back().seq(), "/");
  std::vector<v1::Task> mine(effect.children().tasks_size());
  int found = 0;
  for (const std::string& id : *ids) {
    absl::StatusOr<v1::Task> child = store_.Get(id);
    if (!child.ok() || !absl::StartsWith(child->idempotency_key(), prefix)) continue;
    if (!IsFinal(child->state())) return;  // Still running: its end calls us again.
    size_t index = 0;
    if (!absl::SimpleAtoi(child->idempotency_key().substr(prefix.size()), &index) ||
        index >= mine.size()) {
      continue;
    }
    mine[index] = *std::move(child);
    ++found;
  }
  if (found < static_cast<int>(mine.size())) return;
  {
    absl::MutexLock lock(&mu_);
    if (run->phase != Phase::kWaiting) return;
    run->phase = Phase::kBusy;
  }
  for (v1::Task& child : mine) *result.mutable_children()->add_tasks() = std::move(child);
  Complete(run, std::move(result));
}

void AgentRuntimeImpl::Abort(const RunPtr& run, v1::TaskState state, std::string why) {
  Phase phase;
  {
    absl::MutexLock lock(&mu_);
    if (run->phase == Phase::kDone || run->abort) return;
    phase = run->phase;
    if (phase == Phase::kBusy) {
      run->abort.emplace(state, std::move(why));  // The continuation ends it.
      return;
    }
    if (phase == Phase::kQueued) queue_->Remove(run->task.id());
    run->phase = Phase::kBusy;
  }
  Finish(run, state, std::move(why), {}, {});
}

absl::Status AgentRuntimeImpl::Cancel(std::string_view id_view) {
  const std::string id(id_view);
  FLOWORK_ASSIGN_OR_RETURN(v1::Task task, store_.Get(id));
  if (IsFinal(task.state())) return absl::OkStatus();
  // Descendants first: a parent never ends while its children still run.
  FLOWORK_ASSIGN_OR_RETURN(std::vector<std::string> children, store_.Children(id));
  if (!task.cancel_requested()) {
    TaskUpdate durable{.task_id = std::string(id)};
    durable.cancel_requested = true;
    absl::Status stored = store_.Apply(std::move(durable));
    if (!stored.ok() && stored.code() != absl::StatusCode::kFailedPrecondition) return stored;
  }
  RunPtr parent;
  if (!children.empty()) {
    // A parent waiting for its children is continued as they end: it must
    // not go on (and succeed) between their cancellation and its own.
    absl::MutexLock lock(&mu_);
    if (auto it = runs_.find(id); it != runs_.end()) {
      parent = it->second;
      parent->cancelling = true;
    }
  }
  for (const std::string& child : children) {
    if (absl::Status cancelled = Cancel(child); !cancelled.ok()) {
      if (parent != nullptr) {
        {
          absl::MutexLock lock(&mu_);
          parent->cancelling = false;
        }
        CheckChildren(parent);  // Children that did end count again.
      }
      return cancelled;
    }
  }
  RunPtr run;
  bool end_here = false;
  {
    absl::MutexLock lock(&mu_);
    suspend_pending_.erase(id);
    if (auto it = runs_.find(id); it != runs_.end()) {
      run = it->second;
    } else if (auto delayed = delayed_.find(id); delayed != delayed_.end()) {
      timers_.Cancel(delayed->second);
      delayed_.erase(delayed);
      end_here = true;
    } else if (queue_->Remove(id) || task.state() == v1::TASK_STATE_SUSPENDED || !started_.load()) {
      end_here = true;
    } else if (session_held_.contains(id)) {
      end_here = true;  // Was waiting behind an earlier task of its session.
    } else if (auto parked = parked_.find(task.agent());
               parked != parked_.end() &&
               std::erase_if(parked->second, [&](const ReadyTask& r) { return r.id == id; }) > 0) {
      end_here = true;  // Was waiting for its agent.
    } else {
      // Between the queue and its TaskRun: Begin ends it.
      cancel_pending_.emplace(id);
    }
  }
  if (run != nullptr) {
    Abort(run, v1::TASK_STATE_CANCELLED, "cancelled");
  } else if (end_here) {
    TaskUpdate end{.task_id = std::string(id)};
    end.state = v1::TASK_STATE_CANCELLED;
    end.error = "cancelled";
    absl::Status stored = store_.Apply(std::move(end));
    if (!stored.ok() && stored.code() != absl::StatusCode::kFailedPrecondition) return stored;
    SessionTaskEnded(id, task.session_id());
  }
  return absl::OkStatus();
}

absl::Status AgentRuntimeImpl::Signal(std::string_view id_view, std::string_view name_view,
                                      google::protobuf::Value payload) {
  const std::string id(id_view), name(name_view);
  v1::EffectResult result;
  result.mutable_signal()->set_name(name);
  *result.mutable_signal()->mutable_payload() = std::move(payload);
  auto waits_for = [&](const v1::StepRecord& step) {
    v1::Effect effect;
    return step.status() == v1::StepRecord::STATUS_STARTED &&
           effect.ParseFromString(step.input()) && effect.has_signal() &&
           (effect.signal().name().empty() || effect.signal().name() == name);
  };
  RunPtr run;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = runs_.find(id); it != runs_.end()) run = it->second;
    if (run != nullptr && run->phase == Phase::kWaiting && !run->journal.empty() &&
        waits_for(run->journal.back())) {
      run->phase = Phase::kBusy;
      if (run->timer) timers_.Cancel(run->timer);
      Post([this, run, result = std::move(result)]() mutable { Complete(run, std::move(result)); });
      return absl::OkStatus();
    }
  }
  // The wait may be journaled but not yet armed (the task is between its
  // write and its wait, or queued after a restart): the signal waits for it.
  FLOWORK_RETURN_IF_ERROR(store_.Get(id).status());
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::StepRecord> journal, store_.Journal(id));
  if (journal.empty() || !waits_for(journal.back())) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", id, " is not waiting for signal \"", name, "\""));
  }
  absl::MutexLock lock(&mu_);
  early_signals_[id] = std::move(result);
  return absl::OkStatus();
}

absl::Status AgentRuntimeImpl::Suspend(std::string_view id_view) {
  const std::string id(id_view);
  FLOWORK_ASSIGN_OR_RETURN(v1::Task task, store_.Get(id));
  if (IsFinal(task.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", id, " is ", v1::TaskState_Name(task.state()), " and cannot be suspended"));
  }
  if (task.state() == v1::TASK_STATE_SUSPENDED) return absl::OkStatus();
  RunPtr run;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = runs_.find(id); it != runs_.end()) run = it->second;
    if (run != nullptr && run->requeue_when_done) {
      // Resumed while its suspended run was still ending: that run is over
      // (it will not queue the task now), so the task is suspended as one
      // not running.
      run->requeue_when_done = false;
      run = nullptr;
    }
    if (run == nullptr) {
      // Not running here: take it out of wherever it waits.
      bool found = false;
      if (auto delayed = delayed_.find(id); delayed != delayed_.end()) {
        timers_.Cancel(delayed->second);
        delayed_.erase(delayed);
        found = true;
      }
      found = queue_->Remove(id) || found;
      // Stays in its session's line (the tasks after it wait), but is not
      // released to run: Resume queues it again.
      found = session_held_.erase(id) > 0 || found;
      if (auto parked = parked_.find(task.agent()); parked != parked_.end()) {
        found = std::erase_if(parked->second, [&](const ReadyTask& r) { return r.id == id; }) > 0 ||
                found;
      }
      // Perhaps between the queue and its TaskRun: Begin must not run it.
      if (!found) suspend_pending_.insert(id);
    }
  }
  if (run != nullptr) {
    // Ends its run here like a cancel, but the task stays resumable.
    Abort(run, v1::TASK_STATE_SUSPENDED, "");
    return absl::OkStatus();
  }
  TaskUpdate park{.task_id = id};
  park.state = v1::TASK_STATE_SUSPENDED;
  FLOWORK_RETURN_IF_ERROR(store_.Apply(std::move(park)));
  Post([this] { Dispatch(); });
  return absl::OkStatus();
}

absl::Status AgentRuntimeImpl::Resume(std::string_view id_view) {
  const std::string id(id_view);
  TaskUpdate back{.task_id = id};
  back.expect_state = v1::TASK_STATE_SUSPENDED;
  back.state = v1::TASK_STATE_PENDING;
  absl::Status stored = store_.Apply(std::move(back));
  if (stored.code() == absl::StatusCode::kAborted) {
    return absl::FailedPreconditionError(absl::StrCat("task ", id, " is not suspended"));
  }
  FLOWORK_RETURN_IF_ERROR(stored);
  FLOWORK_ASSIGN_OR_RETURN(v1::Task task, store_.Get(id));
  {
    absl::MutexLock lock(&mu_);
    // Stored PENDING now: a Begin that has not looked yet runs it.
    suspend_pending_.erase(id);
    if (auto it = runs_.find(id); it != runs_.end()) {
      // The suspended run is still ending and holds the task's slot (the
      // queue would refuse the task as running): it queues the task again
      // when it is done.
      it->second->requeue_when_done = true;
      return absl::OkStatus();
    }
  }
  Enqueue(task);
  Dispatch();
  return absl::OkStatus();
}

absl::StatusOr<v1::TaskSnapshot> AgentRuntimeImpl::Snapshot(std::string_view id) const {
  v1::TaskSnapshot snapshot;
  FLOWORK_ASSIGN_OR_RETURN(*snapshot.mutable_task(), store_.Get(id));
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::StepRecord> steps, store_.Journal(id));
  for (v1::StepRecord& step : steps) *snapshot.add_steps() = std::move(step);
  return snapshot;
}

absl::StatusOr<v1::Task> AgentRuntimeImpl::Restore(const v1::TaskSnapshot& snapshot) {
  const v1::Task& original = snapshot.task();
  if (IsFinal(original.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", original.id(), " is final; there is nothing to continue"));
  }
  if (FindAgent(original.agent(), 0) == nullptr) {
    return absl::NotFoundError(absl::StrCat("no agent named \"", original.agent(), "\""));
  }
  v1::Task task = original;
  task.clear_id();
  task.clear_parent_id();
  task.set_idempotency_key(absl::StrCat("restore/", original.id()));
  (*task.mutable_labels())["flowork-restored-from"] = original.id();
  // Not dispatched before its journal is in (a crash in between must not run
  // it from its first step): held back until the journal write clears this.
  *task.mutable_not_before() = ToProto(absl::FromUnixSeconds(7'258'118'400));  // 2200-01-01
  FLOWORK_ASSIGN_OR_RETURN(SubmitResult submitted, store_.Submit(std::move(task)));
  const std::string id = submitted.task.id();
  if (!submitted.created &&
      (submitted.task.state() != v1::TASK_STATE_PENDING || submitted.task.step_count() > 0)) {
    return submitted.task;  // Restored before.
  }
  // The journal and the move to ADMITTED in one write: a crash leaves either
  // a PENDING task with no journal (finished by restoring again) or the whole.
  TaskUpdate journal{.task_id = id};
  journal.expect_state = v1::TASK_STATE_PENDING;
  journal.state = v1::TASK_STATE_ADMITTED;
  journal.attempt = original.attempt();
  journal.not_before = absl::InfinitePast();  // Dispatch at once.
  for (const v1::StepRecord& step : snapshot.steps()) {
    v1::StepRecord copy = step;
    copy.set_task_id(id);
    journal.steps.push_back(std::move(copy));
  }
  FLOWORK_RETURN_IF_ERROR(store_.Apply(std::move(journal)));
  FLOWORK_ASSIGN_OR_RETURN(v1::Task restored, store_.Get(id));
  if (started_.load()) {
    Enqueue(restored);
    Dispatch();
  }
  return restored;
}

absl::Status AgentRuntimeImpl::Decide(std::string_view task_view, std::string_view call_view,
                                      ApprovalVerdict verdict) {
  const std::string task_id(task_view), call_id(call_view);
  if (verdict.verdict == v1::VERDICT_UNSPECIFIED) {
    return absl::InvalidArgumentError("verdict: must be approve or deny");
  }
  RunPtr run;
  v1::Effect asked;
  v1::EffectResult so_far;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = runs_.find(task_id); it != runs_.end()) run = it->second;
    if (run == nullptr || run->phase != Phase::kWaiting || run->journal.empty() ||
        !asked.ParseFromString(run->journal.back().input()) || !asked.has_approval()) {
      return absl::NotFoundError(
          absl::StrCat("task ", task_id, " has no tool call waiting for approval"));
    }
    so_far.ParseFromString(run->journal.back().output());
  }
  bool pending = false;
  for (const auto& p : asked.approval().pending()) pending |= p.call_id() == call_id;
  for (const auto& d : so_far.approval().decisions()) pending &= d.call_id() != call_id;
  if (!pending) {
    return absl::NotFoundError(
        absl::StrCat("task ", task_id, " has no call ", call_id, " waiting for approval"));
  }
  v1::ApprovalDecision decision;
  decision.set_call_id(call_id);
  decision.set_verdict(verdict.verdict);
  decision.set_who(verdict.who);
  decision.set_comment(verdict.comment);
  if (verdict.edited_arguments && verdict.verdict == v1::VERDICT_APPROVE) {
    decision.set_edited(true);
    *decision.mutable_edited_arguments() = *verdict.edited_arguments;
  }
  *decision.mutable_time() = ToProto(Now());
  RecordDecisions(run, {std::move(decision)});
  return absl::OkStatus();
}

void AgentRuntimeImpl::RecordDecisions(const RunPtr& run,
                                       std::vector<v1::ApprovalDecision> decisions) {
  v1::EffectResult result;
  bool complete = false;
  {
    absl::MutexLock lock(&mu_);
    if (run->phase != Phase::kWaiting) return;
    v1::Effect asked;
    asked.ParseFromString(run->journal.back().input());
    result.ParseFromString(run->journal.back().output());
    auto decided = [&](const std::string& call_id) {
      for (const v1::ApprovalDecision& d : result.approval().decisions()) {
        if (d.call_id() == call_id) return true;
      }
      return false;
    };
    // The first decision on a call stands (two approvers racing, or a
    // decision racing the timeout).
    for (v1::ApprovalDecision& d : decisions) {
      if (!decided(d.call_id())) *result.mutable_approval()->add_decisions() = std::move(d);
    }
    complete = true;
    for (const auto& pending : asked.approval().pending()) complete &= decided(pending.call_id());
    if (complete) {
      run->phase = Phase::kBusy;
      if (run->timer) timers_.Cancel(run->timer);
    }
    // Kept here at once, so a second decision right after sees this one.
    run->journal.back().set_output(result.SerializeAsString());
  }
  if (complete) return Complete(run, std::move(result));
  // Not all decided: the decisions so far are stored on the step in flight.
  v1::StepRecord partial;
  partial.set_task_id(run->task.id());
  partial.set_seq(run->journal.back().seq());
  partial.set_output(result.SerializeAsString());
  TaskUpdate update{.task_id = run->task.id()};
  update.steps.push_back(std::move(partial));
  if (absl::Status stored = store_.Apply(std::move(update)); !stored.ok()) {
    core::Log(core::LogLevel::kWarning, "storing an approval decision failed",
              {{"task", run->task.id()}, {"error", stored.ToString()}});
  }
}

std::vector<v1::PendingApproval> AgentRuntimeImpl::PendingApprovals() const {
  std::vector<v1::PendingApproval> pending;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, run] : runs_) {
    v1::Effect asked;
    v1::EffectResult so_far;
    if (run->phase != Phase::kWaiting || run->journal.empty() ||
        !asked.ParseFromString(run->journal.back().input()) || !asked.has_approval()) {
      continue;
    }
    so_far.ParseFromString(run->journal.back().output());
    for (const auto& p : asked.approval().pending()) {
      bool decided = false;
      for (const auto& d : so_far.approval().decisions()) decided |= d.call_id() == p.call_id();
      if (decided) continue;
      v1::PendingApproval& out = pending.emplace_back();
      out.set_task_id(id);
      out.set_tenant(run->task.tenant());
      out.set_agent(run->task.agent());
      out.set_call_id(p.call_id());
      out.set_reason(p.reason());
      for (const v1::ToolCall& c : asked.approval().calls().calls()) {
        if (c.id() != p.call_id()) continue;
        out.mutable_call()->set_name(c.name());
        *out.mutable_call()->mutable_arguments() = c.arguments();
      }
      if (asked.approval().has_until()) *out.mutable_until() = asked.approval().until();
    }
  }
  std::sort(pending.begin(), pending.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.task_id(), a.call_id()) < std::make_pair(b.task_id(), b.call_id());
  });
  return pending;
}

bool AgentRuntimeImpl::AdmitToAgent(const RunPtr& run, const ReadyTask& ready) {
  const absl::Status started = supervisor_.TaskStarted(ready.agent);
  if (started.ok() || started.code() == absl::StatusCode::kNotFound) {
    absl::MutexLock lock(&mu_);
    run->counted = started.ok();
    return true;
  }
  // Not running now (starting, crashed, stopped, draining) or at its limit:
  // the task waits for it without holding a slot.
  {
    absl::MutexLock lock(&mu_);
    run->holds_slot = false;
    queue_->Finish(ready, 0);
    parked_[ready.agent].push_back(ready);
  }
  Post([this] { Dispatch(); });
  return false;
}

void AgentRuntimeImpl::ReleaseFromAgent(const RunPtr& run) {
  {
    absl::MutexLock lock(&mu_);
    if (!run->counted) return;
    run->counted = false;
  }
  supervisor_.TaskFinished(run->task.agent()).IgnoreError();
  // Tasks parked at the agent's max_concurrency take the freed place now,
  // not on the watchdog's next pass.
  bool unparked = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = parked_.find(run->task.agent()); it != parked_.end()) unparked = Unpark(it);
  }
  if (unparked) Post([this] { Dispatch(); });
}

bool AgentRuntimeImpl::Unpark(std::map<std::string, std::vector<ReadyTask>>::iterator it) {
  if (!supervisor_.MayTakeTask(it->first)) return false;
  for (ReadyTask& ready : it->second) queue_->Push(std::move(ready));
  parked_.erase(it);
  return true;
}

void AgentRuntimeImpl::HandBack(const std::string& agent) {
  std::vector<RunPtr> handed;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, run] : runs_) {
      if (run->task.agent() != agent || !run->counted) continue;
      if (run->phase != Phase::kEffect && run->phase != Phase::kBackoff) continue;
      if (run->call) run->call->Cancel();  // Performed again when the agent runs.
      run->call = nullptr;
      if (run->timer) timers_.Cancel(run->timer);
      if (run->deadline_timer) timers_.Cancel(run->deadline_timer);
      run->phase = Phase::kDone;
      handed.push_back(run);
    }
  }
  for (const RunPtr& run : handed) {
    TaskUpdate back{.task_id = run->task.id()};
    back.state = v1::TASK_STATE_PENDING;
    Write(std::move(back), [this, run](absl::Status s) {
      {
        absl::MutexLock lock(&mu_);
        runs_.erase(run->task.id());
        if (run->holds_slot) {
          run->holds_slot = false;
          queue_->Finish(run->ready, 0);
        }
      }
      ReleaseFromAgent(run);
      if (s.ok()) {
        run->task.set_state(v1::TASK_STATE_PENDING);
        Enqueue(run->task);  // Parked at dispatch until the agent runs again.
      }
      Dispatch();
    });
  }
}

void AgentRuntimeImpl::Watchdog() {
  if (stopping_.load()) return;
  const absl::Time now = Now();
  std::vector<std::pair<RunPtr, std::string>> overdue;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, run] : runs_) {
      if (run->phase != Phase::kEffect || run->call == nullptr) continue;
      if (now >= run->step_deadline) {
        overdue.emplace_back(run, "step timeout");
      } else if (run->heartbeat_timeout > absl::ZeroDuration() &&
                 absl::Now() - run->call->last_progress() > run->heartbeat_timeout) {
        overdue.emplace_back(run, "no heartbeat");
      }
    }
    for (auto& [run, why] : overdue) {
      run->call->Cancel();
      run->call = nullptr;
      run->phase = Phase::kBusy;
    }
  }
  for (auto& [run, why] : overdue) {
    Post([this, run, why] {
      StepFailed(run, absl::DeadlineExceededError(why), /*effect_journaled=*/true);
    });
  }
  // The supervisor's restarts and health checks; drains out of time.
  for (const SupervisorAction& action : supervisor_.Poll()) {
    if (action.kind == SupervisorAction::kHandBack) {
      Post([this, agent = action.agent] { HandBack(agent); });
    }
  }
  bool unparked = false;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = parked_.begin(); it != parked_.end();) {
      auto next = std::next(it);
      unparked = Unpark(it) || unparked;
      it = next;
    }
  }
  if (unparked) Post([this] { Dispatch(); });
  At(Now() + options_.watchdog_interval, [this] { Watchdog(); });
}

void AgentRuntimeImpl::Prune() {
  if (stopping_.load()) return;
  Post([this] {
    absl::StatusOr<int64_t> pruned = store_.PruneFinished(options_.retention);
    if (!pruned.ok()) {
      core::Log(core::LogLevel::kWarning, "pruning finished tasks failed",
                {{"error", pruned.status().ToString()}});
    }
  });
  At(Now() + options_.retention_interval, [this] { Prune(); });
}

absl::StatusOr<v1::Schedule> AgentRuntimeImpl::AddSchedule(v1::Schedule schedule) {
  if (schedule.name().empty() ||
      !std::all_of(schedule.name().begin(), schedule.name().end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule.name: \"", schedule.name(), "\" must match [a-z0-9-]+"));
  }
  FLOWORK_RETURN_IF_ERROR(CronSchedule::Parse(schedule.cron(), schedule.time_zone()).status());
  if (FindAgent(schedule.task().agent(), 0) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("schedule.task.agent: no agent named \"", schedule.task().agent(), "\""));
  }
  absl::MutexLock schedules_lock(&schedules_mu_);
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Schedule> active, ListSchedules());
  for (const v1::Schedule& existing : active) {
    if (existing.name() == schedule.name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a schedule named \"", schedule.name(), "\" exists"));
    }
  }
  v1::Task task;
  task.set_agent(internal::ScheduleAgent::kName);
  task.set_tenant(schedule.task().tenant());
  task.set_priority(v1::PRIORITY_BATCH);
  (*task.mutable_labels())["flowork-schedule"] = schedule.name();
  schedule.clear_id();
  task.set_input_bytes(schedule.SerializeAsString());
  FLOWORK_ASSIGN_OR_RETURN(SubmitResult submitted, Submit(std::move(task)));
  schedule.set_id(submitted.task.id());
  return schedule;
}

absl::StatusOr<std::vector<v1::Schedule>> AgentRuntimeImpl::ListSchedules() const {
  std::vector<v1::Schedule> schedules;
  TaskFilter filter;
  filter.agent = internal::ScheduleAgent::kName;
  filter.page_size = 1000;
  for (;;) {
    FLOWORK_ASSIGN_OR_RETURN(TaskPage page, store_.List(filter));
    for (const v1::Task& task : page.tasks) {
      if (IsFinal(task.state()) || task.cancel_requested()) continue;  // Removed.
      v1::Schedule schedule;
      if (!schedule.ParseFromString(task.input_bytes())) continue;
      schedule.set_id(task.id());
      schedules.push_back(std::move(schedule));
    }
    if (page.next_page_token.empty()) break;
    filter.page_token = page.next_page_token;
  }
  std::sort(schedules.begin(), schedules.end(),
            [](const v1::Schedule& a, const v1::Schedule& b) { return a.name() < b.name(); });
  return schedules;
}

absl::Status AgentRuntimeImpl::RemoveSchedule(std::string_view name_view) {
  const std::string name(name_view);
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Schedule> active, ListSchedules());
  for (const v1::Schedule& schedule : active) {
    if (schedule.name() == name) return Cancel(schedule.id());
  }
  return absl::NotFoundError(absl::StrCat("no schedule named \"", name, "\""));
}

void AgentRuntimeImpl::Shutdown() {
  if (stopping_.exchange(true)) return;
  {
    absl::MutexLock lock(&lifeline_->mu);
    lifeline_->runtime = nullptr;
  }
  timers_.Stop();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, run] : runs_) {
      if (run->call) run->call->Cancel();  // Performed again after the next Start.
    }
    // Writes already queued complete (their continuations are skipped).
    mu_.Await(absl::Condition(
        +[](int* writes) { return *writes == 0; }, &writes_in_flight_));
  }
  executor_.reset();  // Runs what is queued (skipped: stopping) and joins.
  absl::MutexLock lock(&mu_);
  runs_.clear();
}

}  // namespace

absl::Duration StepBackoff(const v1::StepRetryPolicy& policy, int attempt, double unit_random) {
  const absl::Duration initial = DurationOr(policy.initial_backoff(), absl::Seconds(1));
  const absl::Duration max = DurationOr(policy.max_backoff(), absl::Seconds(60));
  const double jitter = policy.jitter() == 0 ? 0.2 : std::max(0.0, policy.jitter());
  absl::Duration wait = initial;
  for (int i = 1; i < attempt && wait < max; ++i) wait *= 2;
  wait = std::min(wait, max);
  return wait * (1.0 + jitter * (2.0 * unit_random - 1.0));
}

absl::StatusOr<std::unique_ptr<AgentRuntime>> AgentRuntime::Create(
    const AgentRuntimeOptions& options, TaskStore& store) {
  if (options.threads < 1) return absl::InvalidArgumentError("threads: must be at least 1");
  if (options.watchdog_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("watchdog_interval: must be positive");
  }
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<core::Executor> executor,
                           core::CreateThreadPoolExecutor({.threads = options.threads}));
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<DispatchQueue> queue,
                           DispatchQueue::Create(options.dispatch));
  auto runtime =
      std::make_unique<AgentRuntimeImpl>(options, store, std::move(executor), std::move(queue));
  v1::AgentSpec cron;
  cron.set_name(internal::ScheduleAgent::kName);
  cron.set_description("Runs cron schedules: one task per schedule.");
  cron.mutable_limits()->set_max_steps(std::numeric_limits<uint32_t>::max());
  FLOWORK_RETURN_IF_ERROR(
      runtime->RegisterAgent(cron, std::make_shared<internal::ScheduleAgent>()).status());
  return runtime;
}

}  // namespace flowork::agent
