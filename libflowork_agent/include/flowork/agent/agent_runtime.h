#ifndef FLOWORK_AGENT_AGENT_RUNTIME_H_
#define FLOWORK_AGENT_AGENT_RUNTIME_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/agent.h"
#include "flowork/agent/dispatch_queue.h"
#include "flowork/agent/session_store.h"
#include "flowork/agent/task_store.h"
#include "flowork/agent/v1/agent.pb.h"
#include "flowork/core/clock.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// Decides which tool calls need a person's approval before they run.
// Thread-safe.
class ApprovalPolicy {
 public:
  struct Rule {
    // Shown to the approver ("sends email to an outside address").
    std::string reason;
    // Undecided calls get `on_timeout` after this long. Default: no timeout.
    absl::Duration timeout = absl::InfiniteDuration();
    v1::Verdict on_timeout = v1::VERDICT_DENY;
  };
  virtual ~ApprovalPolicy() = default;
  // The rule for this call, or nullopt when it runs without approval.
  virtual std::optional<Rule> Check(const v1::Task& task, const v1::ToolCall& call) const = 0;
};

// A person's decision on a tool call waiting for approval.
struct ApprovalVerdict {
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  // Who decided and why: journaled with the decision.
  std::string who;
  std::string comment;
  // Approve with these arguments instead (edit-and-approve).
  std::optional<google::protobuf::Value> edited_arguments;
};

// Options of an AgentRuntime. Every field documents its default.
struct AgentRuntimeOptions {
  // Threads that run steps and effect callbacks. Default 4.
  int threads = 4;
  // Admission limits and ordering (see DispatchQueueOptions).
  DispatchQueueOptions dispatch;
  // Effects of kind `model` and `tools`. Not owned; must outlive the runtime.
  // Null: a task asking for that kind of effect fails, saying so.
  EffectHandler* models = nullptr;
  EffectHandler* tools = nullptr;
  // Effects of kind `remote` (KIND_REMOTE agents; see RemoteWorkHub). Not
  // owned; must outlive the runtime. Null: such a task fails, saying so.
  EffectHandler* remote = nullptr;
  // Which tool calls wait for approval. Not owned. Null: none do.
  const ApprovalPolicy* approvals = nullptr;
  // Where sessions live (Task.session_id). Not owned; must outlive the
  // runtime. Null: a task naming a session is refused at submit.
  SessionStore* sessions = nullptr;
  // How often the watchdog checks running effects for step timeouts and
  // missed heartbeats. Default 1 s.
  absl::Duration watchdog_interval = absl::Seconds(1);
  // Finished tasks kept; checked every `retention_interval`. Default: all.
  RetentionPolicy retention;
  absl::Duration retention_interval = absl::Hours(1);
  // Not owned; must outlive the runtime. Default: the real clock.
  const core::Clock* clock = nullptr;
};

// The wait before retry number `attempt` (1 = the first retry) of a step:
// initial_backoff * 2^(attempt-1), at most max_backoff, scaled by
// (1 + jitter * (2 * unit_random - 1)). Pure; `unit_random` in [0, 1).
absl::Duration StepBackoff(const v1::StepRetryPolicy& policy, int attempt, double unit_random);

// The agent runtime: durable tasks run by registered agents. A task is
// stored at submit, admitted and ordered by the dispatch queue, and run step
// by step: each step's effect is journaled before it is performed and its
// result before the next step, in one transaction with the task's state, so
// after a crash Start() resumes every unfinished task from its journal
// without performing a finished effect again. Thread-safe.
class AgentRuntime {
 public:
  // `store` is not owned and must outlive the runtime.
  static absl::StatusOr<std::unique_ptr<AgentRuntime>> Create(const AgentRuntimeOptions& options,
                                                              TaskStore& store);
  // Stops (see Shutdown).
  virtual ~AgentRuntime() = default;

  // Registers a native agent under `spec.name`. A name registered again gets
  // a new version: tasks already started keep the version they started
  // with, new tasks get the new one. kInvalidArgument for a bad spec.
  // Returns the spec as registered (its version set).
  virtual absl::StatusOr<v1::AgentSpec> RegisterAgent(v1::AgentSpec spec,
                                                      std::shared_ptr<Agent> agent) = 0;

  // Resumes every unfinished task in the store, then dispatches. Call once,
  // after registering the agents those tasks need: a task whose agent is not
  // registered when it is dispatched FAILS, saying so.
  virtual absl::Status Start() = 0;

  // Stores a task and queues it. The same (tenant, idempotency_key) returns
  // the first task (`created` false). kNotFound: no agent by that name, or
  // no session `task.session_id`.
  //
  // Sessions: tasks naming the same session run one after another in the
  // order they were submitted: a task is not dispatched before every task
  // submitted earlier on its session is final (a SUSPENDED one holds the
  // ones after it back). Its agent sees the session's history
  // (StepContext::session), and when it SUCCEEDS its turn
  // (Agent::TurnForSession) is appended to the session exactly once, also
  // across crashes. A task that fails, is cancelled or times out appends
  // nothing. The order is kept by this runtime: one runtime per store.
  // kInvalidArgument: the session belongs to another tenant or agent;
  // kFailedPrecondition: no session store in the options.
  virtual absl::StatusOr<SubmitResult> Submit(v1::Task task) = 0;

  virtual absl::StatusOr<v1::Task> Get(std::string_view id) const = 0;

  // Cancels the task and, first, every descendant: durably (a restart
  // finishes the cancellation), aborting an effect in flight. Idempotent:
  // cancelling a final task changes nothing and is OK. kNotFound: no task.
  virtual absl::Status Cancel(std::string_view id) = 0;

  // Parks a task: an effect in flight is abandoned (performed again after
  // Resume), its slot given back, the task SUSPENDED until Resume.
  // kFailedPrecondition: the task is final. kNotFound: no task.
  virtual absl::Status Suspend(std::string_view id) = 0;
  // Queues a SUSPENDED task again; it continues from its journal.
  virtual absl::Status Resume(std::string_view id) = 0;
  // The task and its whole journal (its context state: every model answer
  // and tool result so far), e.g. to continue it on another node.
  virtual absl::StatusOr<v1::TaskSnapshot> Snapshot(std::string_view id) const = 0;
  // Stores a snapshot as a new task (a new id, the same journal) and queues
  // it: it continues where the snapshot left off, without repeating a
  // completed step. A snapshot is restored at most once per store. Its agent
  // must be registered here.
  virtual absl::StatusOr<v1::Task> Restore(const v1::TaskSnapshot& snapshot) = 0;

  // Delivers a signal to a task waiting for one (WaitSignal with this name,
  // or any name when the wait names none). kFailedPrecondition when the task
  // is not waiting for it. kNotFound: no task.
  virtual absl::Status Signal(std::string_view id, std::string_view name,
                              google::protobuf::Value payload) = 0;

  // Adds a cron schedule: `schedule.task` is submitted at every fire time
  // (see v1::Schedule). Durable: a schedule is a task of the built-in agent
  // "flowork-cron", resumed after a restart like any other. Returns it with
  // its id. kInvalidArgument: a bad name, expression or zone; kNotFound: the
  // task's agent; kAlreadyExists: an active schedule has that name.
  virtual absl::StatusOr<v1::Schedule> AddSchedule(v1::Schedule schedule) = 0;
  // The active schedules, by name.
  virtual absl::StatusOr<std::vector<v1::Schedule>> ListSchedules() const = 0;
  // Stops a schedule (tasks it already started go on). kNotFound: none active.
  virtual absl::Status RemoveSchedule(std::string_view name) = 0;

  // Decides one tool call waiting for approval. The task goes on once every
  // call of its step is decided: approved calls run (with the edited
  // arguments, if any), denied ones give the agent "denied by <who>:
  // <comment>" as their result. Durable: a decision survives a restart, and
  // a task waits for approval across restarts for as long as it takes.
  // kNotFound: no such task or call waiting; kInvalidArgument: no verdict.
  virtual absl::Status Decide(std::string_view task_id, std::string_view call_id,
                              ApprovalVerdict verdict) = 0;
  // The tool calls waiting for a decision.
  virtual std::vector<v1::PendingApproval> PendingApprovals() const = 0;

  // The agents' lifecycles (see AgentSupervisor): a task waits while its
  // agent is not READY or BUSY (starting, restarting after a crash, stopped),
  // and runs once it is. kNotFound: no agent by that name;
  // kFailedPrecondition: not possible from the agent's state.
  virtual absl::StatusOr<v1::AgentStatus> GetAgentStatus(std::string_view name) const = 0;
  virtual std::vector<v1::AgentStatus> ListAgentStatuses() const = 0;
  virtual absl::Status StartAgent(std::string_view name) = 0;
  // Takes no new tasks; stops once the running ones end.
  virtual absl::Status StopAgent(std::string_view name) = 0;
  // Clears a crash loop and starts the agent again.
  virtual absl::Status RestartAgent(std::string_view name) = 0;
  // Takes no new tasks; after `grace` the tasks still running are handed
  // back (their effects abandoned, the tasks queued again for when the agent
  // runs again).
  virtual absl::Status DrainAgent(std::string_view name, absl::Duration grace) = 0;

  // Stops dispatching and abandons effects in flight without journaling a
  // result (they are performed again after the next Start), then waits for
  // the runtime's threads. Idempotent.
  virtual void Shutdown() = 0;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_RUNTIME_H_
