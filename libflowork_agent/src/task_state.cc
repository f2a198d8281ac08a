#include "flowork/agent/task_state.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace flowork::agent {
namespace {

std::string StateName(v1::TaskState state) {
  const std::string& name = v1::TaskState_Name(state);
  if (!name.empty()) return name;
  return absl::StrCat("TaskState(", static_cast<int>(state), ")");
}

bool IsLegal(v1::TaskState from, v1::TaskState to) {
  switch (from) {
    case v1::TASK_STATE_PENDING:
      return to == v1::TASK_STATE_ADMITTED || to == v1::TASK_STATE_CANCELLED ||
             to == v1::TASK_STATE_TIMED_OUT || to == v1::TASK_STATE_SUSPENDED;
    case v1::TASK_STATE_ADMITTED:
      return to == v1::TASK_STATE_RUNNING || to == v1::TASK_STATE_PENDING ||
             to == v1::TASK_STATE_CANCELLED || to == v1::TASK_STATE_TIMED_OUT ||
             to == v1::TASK_STATE_SUSPENDED;
    case v1::TASK_STATE_RUNNING:
    case v1::TASK_STATE_WAITING_LLM:
    case v1::TASK_STATE_WAITING_TOOL:
    case v1::TASK_STATE_WAITING_APPROVAL:
    case v1::TASK_STATE_WAITING_TIMER:
    case v1::TASK_STATE_WAITING_CHILDREN:
      return IsActive(to) || IsFinal(to) || to == v1::TASK_STATE_SUSPENDED ||
             to == v1::TASK_STATE_PENDING;
    case v1::TASK_STATE_SUSPENDED:
      return to == v1::TASK_STATE_PENDING || to == v1::TASK_STATE_CANCELLED;
    default:  // Final, unspecified or unknown: nothing leaves them.
      return false;
  }
}

}  // namespace

bool IsFinal(v1::TaskState state) {
  return state == v1::TASK_STATE_SUCCEEDED || state == v1::TASK_STATE_FAILED ||
         state == v1::TASK_STATE_CANCELLED || state == v1::TASK_STATE_TIMED_OUT;
}

bool IsActive(v1::TaskState state) {
  return state == v1::TASK_STATE_RUNNING || state == v1::TASK_STATE_WAITING_LLM ||
         state == v1::TASK_STATE_WAITING_TOOL || state == v1::TASK_STATE_WAITING_APPROVAL ||
         state == v1::TASK_STATE_WAITING_TIMER || state == v1::TASK_STATE_WAITING_CHILDREN;
}

absl::Status CheckTransition(v1::TaskState from, v1::TaskState to) {
  if (IsLegal(from, to)) return absl::OkStatus();
  std::string message =
      absl::StrCat("task state ", StateName(from), " cannot move to ", StateName(to));
  if (IsFinal(from)) absl::StrAppend(&message, " (", StateName(from), " is final)");
  return absl::FailedPreconditionError(message);
}

}  // namespace flowork::agent
