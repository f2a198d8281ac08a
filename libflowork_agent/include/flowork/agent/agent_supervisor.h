#ifndef FLOWORK_AGENT_AGENT_SUPERVISOR_H_
#define FLOWORK_AGENT_AGENT_SUPERVISOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/agent.pb.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// What the runtime does for the supervisor, one implementation per agent.
// The supervisor never calls these while holding its lock, so they may call
// back into the supervisor inline. Calls come from whichever thread called
// the supervisor (Start, Stop, Poll, TaskFinished...), so two calls for one
// agent may overlap (Stop while a CheckHealth runs): implementations must be
// thread-safe. Answers to calls overtaken by a later Start, Stop or failure
// are ignored.
class AgentHooks {
 public:
  virtual ~AgentHooks() = default;

  // Brings the agent up. `done` runs exactly once, on any thread, inline or
  // later: OK makes the agent READY, an error counts as a failure. Also used
  // to restart a failed agent, whose leftovers Start must clean up (the
  // supervisor does not call Stop after a failure).
  virtual void Start(absl::AnyInvocable<void(absl::Status) &&> done) = 0;

  // Shuts the agent down; it has no running tasks by then. May come while a
  // Start is still in flight (the agent was stopped while STARTING): Start's
  // answer is then ignored.
  virtual void Stop() = 0;

  // Checks the agent. `done` runs exactly once, on any thread, inline or
  // later; an error, or no answer within the policy's health_interval, counts
  // as a failure.
  virtual void CheckHealth(absl::AnyInvocable<void(absl::Status) &&> done) = 0;
};

// Something the runtime must do that the supervisor cannot do through hooks.
struct SupervisorAction {
  enum Kind {
    // A drain's grace ran out: hand the agent's running tasks back to the
    // scheduler and call TaskFinished for each; the last one stops the agent.
    kHandBack,
  };
  Kind kind;
  std::string agent;

  friend bool operator==(const SupervisorAction&, const SupervisorAction&) = default;
};

// Keeps agents in their lifecycle: starts and stops them, admits tasks,
// restarts failed agents with exponential backoff per their RestartPolicy,
// detects crash loops, checks health and drains.
//
//   CREATED/STOPPED/FAILED/CRASH_LOOP --Start--> STARTING --ok--> READY
//   READY <--TaskStarted/TaskFinished--> BUSY (running tasks > 0)
//   READY/BUSY --Drain/Stop--> DRAINING --last task--> STOPPED
//   STARTING/READY/BUSY/DRAINING --ReportFailure--> FAILED or CRASH_LOOP
//   STARTING/READY/BUSY/DRAINING --ReportExited--> STOPPED
//   FAILED/CRASH_LOOP (and STOPPED after an exit under MODE_ALWAYS)
//     --backoff elapsed, Poll--> STARTING
//
// Deterministic and clock-driven: it has no threads or timers of its own.
// The runtime calls Poll when NextWakeup says (and after any call that may
// have moved it earlier); Poll performs due restarts and health checks and
// returns what the runtime must do. Illegal transitions are rejected with
// kFailedPrecondition naming both states, unknown agents with kNotFound.
//
// Thread-safe.
class AgentSupervisor {
 public:
  // `clock` must outlive the supervisor. Completion callbacks that run after
  // the supervisor is destroyed are ignored.
  explicit AgentSupervisor(const core::Clock& clock);
  ~AgentSupervisor();

  AgentSupervisor(const AgentSupervisor&) = delete;
  AgentSupervisor& operator=(const AgentSupervisor&) = delete;

  // Supervises a new agent, CREATED. `hooks` must stay alive until Remove
  // returned OK or the supervisor is destroyed. kAlreadyExists when the name
  // is taken; kInvalidArgument naming the field for an empty name or a bad
  // restart policy (negative durations, max_backoff below initial_backoff).
  absl::Status Add(const v1::AgentSpec& spec, AgentHooks& hooks);

  // Forgets an agent that is CREATED, STOPPED, FAILED or CRASH_LOOP (a
  // scheduled restart is dropped). Waits for a hook call the supervisor is
  // making on that agent to return, so the caller may then destroy its hooks;
  // kFailedPrecondition when called from inside that agent's own hooks.
  absl::Status Remove(const std::string& name);

  // CREATED, STOPPED, FAILED or CRASH_LOOP -> STARTING, and calls
  // hooks.Start. Keeps the consecutive failure count (see Restart).
  absl::Status Start(const std::string& name);

  // Stops the agent for good (no automatic restart). READY and STARTING ->
  // STOPPED, calling hooks.Stop; BUSY -> DRAINING without a grace limit,
  // STOPPED (and hooks.Stop) when the last task finishes; DRAINING stays as
  // it is; CREATED, FAILED and CRASH_LOOP -> STOPPED, dropping a scheduled
  // restart. Rejected on STOPPED, unless a MODE_ALWAYS restart after an exit
  // is pending: that is dropped.
  absl::Status Stop(const std::string& name);

  // Manual restart: clears the consecutive failures (and so the crash loop
  // and the backoff), then -> STARTING and calls hooks.Start; on READY calls
  // hooks.Stop first. From READY, STOPPED, FAILED or CRASH_LOOP.
  absl::Status Restart(const std::string& name);

  // Stops the agent taking tasks: READY -> STOPPED at once (hooks.Stop);
  // BUSY -> DRAINING, STOPPED when the last task finishes. If tasks still run
  // `grace` later, Poll returns {kHandBack, name} once. On DRAINING only
  // brings the deadline forward. kInvalidArgument for a negative grace.
  absl::Status Drain(const std::string& name, absl::Duration grace);

  // Whether TaskStarted would succeed now: READY, or BUSY below the agent's
  // max_concurrency. False for an unknown agent.
  bool MayTakeTask(const std::string& name) const;

  // A task began on the agent: READY -> BUSY. The admission itself (checked
  // atomically, unlike MayTakeTask then TaskStarted): kFailedPrecondition
  // unless READY or BUSY, kResourceExhausted at max_concurrency.
  absl::Status TaskStarted(const std::string& name);

  // A task ended (or was handed back). BUSY -> READY with the last one;
  // DRAINING -> STOPPED (and hooks.Stop) with the last one. Accepted in any
  // state; kFailedPrecondition when no task is running.
  absl::Status TaskFinished(const std::string& name);

  // The agent crashed (a step failed with an internal error, Start failed,
  // a health check failed): STARTING, READY, BUSY or DRAINING -> FAILED.
  // Counts a consecutive failure; with crash_loop_after of them the state is
  // CRASH_LOOP instead. Unless the policy is NEVER or the agent was draining,
  // a restart is scheduled at now + initial_backoff * 2^(failures - 1),
  // capped at max_backoff. Running tasks stay counted until TaskFinished.
  // kInvalidArgument for an OK `error`.
  absl::Status ReportFailure(const std::string& name, const absl::Status& error);

  // The agent stopped by itself: STARTING, READY, BUSY or DRAINING ->
  // STOPPED. Under MODE_ALWAYS (unless draining) a restart is scheduled as
  // after a failure and counts toward the backoff and the crash loop, since
  // an agent that keeps exiting is as broken as one that keeps crashing; the
  // state stays STOPPED until then, or CRASH_LOOP once the count is reached.
  absl::Status ReportExited(const std::string& name);

  // Does what is due at the clock's now: restarts (hooks.Start), health
  // checks (hooks.CheckHealth), health checks that did not answer in time
  // (failures), drains whose grace ran out (returned as kHandBack). Agents in
  // name order. Hooks are called after the lock is released.
  std::vector<SupervisorAction> Poll();

  // The earliest time Poll has something to do; InfiniteFuture() if nothing.
  absl::Time NextWakeup() const;

  // kNotFound for an unknown agent.
  absl::StatusOr<v1::AgentStatus> Status(const std::string& name) const;

  // Every agent, ordered by name.
  std::vector<v1::AgentStatus> List() const;

 private:
  struct Policy {
    v1::RestartPolicy::Mode mode = v1::RestartPolicy::MODE_ON_FAILURE;
    absl::Duration initial_backoff;
    absl::Duration max_backoff;
    absl::Duration healthy_reset;
    uint32_t crash_loop_after = 0;
    absl::Duration health_interval;  // Zero: no health checks.
  };

  struct Agent {
    AgentHooks* hooks = nullptr;
    Policy policy;
    uint32_t max_concurrency = 0;  // 0: no limit.
    v1::AgentState state = v1::AGENT_STATE_CREATED;
    // Changes with every Start, so answers of an earlier one are ignored.
    uint64_t incarnation = 0;
    uint32_t running_tasks = 0;
    uint32_t restarts = 0;
    uint32_t consecutive_failures = 0;
    std::string last_error;
    absl::Time healthy_since = absl::InfiniteFuture();
    absl::Time next_restart = absl::InfiniteFuture();
    absl::Time next_health_check = absl::InfiniteFuture();
    bool health_check_in_flight = false;
    absl::Time health_check_deadline = absl::InfiniteFuture();
    absl::Time drain_deadline = absl::InfiniteFuture();
    bool handed_back = false;
    // Hook calls in progress; Remove waits for none.
    int hook_calls = 0;
  };

  // A hook call decided under the lock, made after it is released.
  struct HookCall {
    enum Kind { kStart, kStop, kCheckHealth };
    Kind kind;
    std::string name;
    Agent* agent;  // Stays: Remove waits for agent->hook_calls to drop.
    AgentHooks* hooks;
    uint64_t incarnation;
  };

  class Liveness;

  absl::StatusOr<Agent*> Find(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the healthy_reset rule up to now; call before changing state.
  void SettleHealthy(Agent& agent, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  HookCall BeginStart(const std::string& name, Agent& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  HookCall BeginStop(const std::string& name, Agent& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnterRunning(Agent& agent, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnterDraining(Agent& agent, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Clears the timers of a running agent (health checks, healthy period, drain).
  void LeaveRunning(Agent& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(Agent& agent, const absl::Status& error, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRestart(Agent& agent, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::AgentStatus MakeStatus(const std::string& name, const Agent& agent, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Makes the calls in order without the lock held.
  void Run(std::vector<HookCall> calls) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStarted(const std::string& name, uint64_t incarnation, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnHealthChecked(const std::string& name, uint64_t incarnation, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);

  const core::Clock& clock_;
  // Lets completion callbacks outlive the supervisor safely.
  std::shared_ptr<Liveness> liveness_;

  mutable absl::Mutex mu_;
  std::map<std::string, Agent> agents_ ABSL_GUARDED_BY(mu_);
  uint64_t next_incarnation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_SUPERVISOR_H_
