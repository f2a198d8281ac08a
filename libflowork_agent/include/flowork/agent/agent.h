#ifndef FLOWORK_AGENT_AGENT_H_
#define FLOWORK_AGENT_AGENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/effect.pb.h"
#include "flowork/agent/v1/task.pb.h"

namespace flowork::agent {

// What an agent's step sees: its task and everything journaled so far.
struct StepContext {
  // The task as stored when the step began.
  const v1::Task& task;
  // The task's completed steps, oldest first: each one's Effect (input) and
  // EffectResult (output), serialized.
  const std::vector<v1::StepRecord>& journal;
  absl::Time now;
  // For a task that continues a session (Task.session_id): the session's
  // history as it was before this task (its summary and every message, none
  // this task appended), loaded by the runtime when the task's run begins.
  // Null for a task without a session.
  const v1::Session* session = nullptr;
};

// What a task that continues a session adds to it when it succeeds.
struct SessionTurn {
  // Appended in order after the session's history.
  std::vector<v1::ChatMessage> messages;
  // When not empty: the session's new summary of its messages
  // [0, summarized_through] (indices counting the appended messages).
  std::string summary;
  uint64_t summarized_through = 0;
};

// The default turn of a session task: the task's input as a "user" message
// and its output as an "assistant" message (text as is, other values as
// JSON).
SessionTurn DefaultSessionTurn(const v1::Task& task, const google::protobuf::Value& output);

// A native agent. Agents decide, the runtime acts: Step looks at the task's
// context and returns the next effect (call a model, call tools, wait for a
// timer, children or a signal, finish or fail); the runtime performs it,
// journals the result and calls Step again. Step must not block and should be
// a pure function of its context: after a restart it is asked again with the
// same journal (a decision already journaled is never asked again; its
// effect is resumed instead). An error from Step counts as a failed step and
// is retried by the agent's retry policy. Called for many tasks at once from
// the runtime's threads: implementations are thread-safe.
class Agent {
 public:
  virtual ~Agent() = default;
  virtual absl::StatusOr<v1::Effect> Step(const StepContext& context) = 0;

  // What the task adds to its session when Step finished it with `output`
  // (asked only for a task with a session_id, after the Finish effect). The
  // runtime appends it once, keyed by the task and its finish step, before
  // the task is stored SUCCEEDED; after a crash in between it is asked again
  // with the same journal and must answer the same. An error counts as a
  // failed step. Default: DefaultSessionTurn.
  virtual absl::StatusOr<SessionTurn> TurnForSession(const StepContext& context,
                                                     const google::protobuf::Value& output) {
    return DefaultSessionTurn(context.task, output);
  }

  // Lifecycle, driven by the runtime's supervisor (see AgentSupervisor): the
  // agent takes tasks once Start reported OK, and a failed health check counts
  // as a crash (restarted by the agent's restart policy). `done` runs exactly
  // once, on any thread, possibly inline. Defaults: nothing to start or stop,
  // always healthy.
  virtual void Start(absl::AnyInvocable<void(absl::Status) &&> done) {
    std::move(done)(absl::OkStatus());
  }
  virtual void Stop() {}
  virtual void CheckHealth(absl::AnyInvocable<void(absl::Status) &&> done) {
    std::move(done)(absl::OkStatus());
  }
};

// One effect being performed, as its handler sees it. Thread-safe.
class EffectCall {
 public:
  virtual ~EffectCall() = default;
  virtual const v1::Task& task() const = 0;
  // When the runtime gives up on this effect (step timeout or task deadline).
  virtual absl::Time deadline() const = 0;
  // True once the runtime abandoned the effect (task cancelled or timed out,
  // step timeout, heartbeat watchdog). The handler should stop; whatever it
  // reports afterwards is dropped.
  virtual bool cancelled() const = 0;
  // Runs `on_cancel` once when the call is abandoned, at once if it already
  // was. Typically aborts the model call or tool.
  virtual void OnCancel(absl::AnyInvocable<void() &&> on_cancel) = 0;
  // Progress (a streamed token, a tool's output line): resets the heartbeat
  // watchdog of the step.
  virtual void Heartbeat() = 0;
};

// Performs the effects of one kind (model calls or tool calls) for the
// runtime. The runtime journals the effect before Perform and the result
// after `done`. Thread-safe; Perform must not block.
class EffectHandler {
 public:
  virtual ~EffectHandler() = default;
  // `done` runs exactly once, on any thread, possibly inside Perform. An
  // error is a failed attempt, retried by the agent's retry policy.
  virtual void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
                       absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) = 0;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_H_
