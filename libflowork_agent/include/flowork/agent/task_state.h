#ifndef FLOWORK_AGENT_TASK_STATE_H_
#define FLOWORK_AGENT_TASK_STATE_H_

#include "absl/status/status.h"
#include "flowork/agent/v1/task.pb.h"

namespace flowork::agent {

// The task life cycle as a table of legal moves. Pure functions; thread-safe.
//
//   PENDING   -> ADMITTED | CANCELLED | TIMED_OUT | SUSPENDED
//   ADMITTED  -> RUNNING | PENDING (handed back) | CANCELLED | TIMED_OUT | SUSPENDED
//   RUNNING, WAITING_*
//             -> RUNNING | WAITING_* | SUCCEEDED | FAILED | CANCELLED | TIMED_OUT | SUSPENDED
//                | PENDING (retry after backoff, or handed back on drain)
//   SUSPENDED -> PENDING | CANCELLED
//   SUCCEEDED, FAILED, CANCELLED, TIMED_OUT -> nothing (final)
//
// Staying in the same state is legal only for the active states (RUNNING and
// WAITING_*): re-entering one is how the runtime records the next step of the
// same kind (another model call, a retried tool call). For every other state a
// same-state move is a duplicated command (a second admission, a second
// suspend) and is rejected so the caller learns it raced.
// TASK_STATE_UNSPECIFIED and unknown values are never a legal end of a move.

// SUCCEEDED, FAILED, CANCELLED or TIMED_OUT: the task never changes again.
bool IsFinal(v1::TaskState state);

// RUNNING or any WAITING_* state: a worker owns the task.
bool IsActive(v1::TaskState state);

// OK when a task may move from `from` to `to`; kFailedPrecondition naming both
// states ("task state TASK_STATE_SUCCEEDED cannot move to TASK_STATE_RUNNING")
// otherwise.
absl::Status CheckTransition(v1::TaskState from, v1::TaskState to);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TASK_STATE_H_
