#include "task_txn.h"

#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/task_state.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent::internal {
namespace {

using core::internal::ToAbsl;

// Stored times are int64 nanoseconds since the epoch (years 1678 to 2262).
const absl::Time kMinStoredTime = absl::FromUnixNanos(std::numeric_limits<int64_t>::min());
const absl::Time kMaxStoredTime = absl::FromUnixNanos(std::numeric_limits<int64_t>::max());

bool IsStorable(const google::protobuf::Timestamp& t) {
  if (t.nanos() < 0 || t.nanos() >= 1'000'000'000) return false;
  const absl::Time time = FromTimestamp(t);
  return time >= kMinStoredTime && time <= kMaxStoredTime;
}

absl::Status CheckTimestamp(const google::protobuf::Timestamp& t, std::string_view field) {
  if (IsStorable(t)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(ToAbsl(field), ": timestamp out of range (years 1678 to 2262, nanos 0..1e9)"));
}

absl::Status CheckState(v1::TaskState state, std::string_view field) {
  if (v1::TaskState_IsValid(state) && state != v1::TASK_STATE_UNSPECIFIED) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(ToAbsl(field), ": ", static_cast<int>(state), " is not a task state"));
}

absl::Status CheckSubmit(const v1::Task& task) {
  if (task.agent().empty()) return absl::InvalidArgumentError("task.agent: required");
  if (task.has_input() && !task.input_bytes().empty()) {
    return absl::InvalidArgumentError("task: set input or input_bytes, not both");
  }
  if (!v1::Priority_IsValid(task.priority())) {
    return absl::InvalidArgumentError(
        absl::StrCat("task.priority: unknown value ", static_cast<int>(task.priority())));
  }
  if (task.has_deadline())
    FLOWORK_RETURN_IF_ERROR(CheckTimestamp(task.deadline(), "task.deadline"));
  if (task.has_not_before()) {
    FLOWORK_RETURN_IF_ERROR(CheckTimestamp(task.not_before(), "task.not_before"));
  }
  return absl::OkStatus();
}

std::string TaskName(std::string_view id) { return absl::StrCat("task \"", ToAbsl(id), "\""); }

// The checks that need no stored data.
absl::Status CheckUpdate(const TaskUpdate& update) {
  if (update.task_id.empty()) return absl::InvalidArgumentError("update.task_id: required");
  if (update.expect_state)
    FLOWORK_RETURN_IF_ERROR(CheckState(*update.expect_state, "update.expect_state"));
  if (update.state) FLOWORK_RETURN_IF_ERROR(CheckState(*update.state, "update.state"));
  if (update.attempt && *update.attempt < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("update.attempt: ", *update.attempt, " is negative"));
  }
  if (update.not_before && *update.not_before != absl::InfinitePast() &&
      (*update.not_before < kMinStoredTime || *update.not_before > kMaxStoredTime)) {
    return absl::InvalidArgumentError(
        "update.not_before: out of range (years 1678 to 2262; InfinitePast() clears it)");
  }
  absl::flat_hash_set<uint64_t> seqs;
  for (size_t i = 0; i < update.steps.size(); ++i) {
    const v1::StepRecord& step = update.steps[i];
    const std::string field = absl::StrCat("update.steps[", i, "]");
    if (!step.task_id().empty() && step.task_id() != update.task_id) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".task_id: \"", step.task_id(),
                                                     "\" is not the updated ",
                                                     TaskName(update.task_id)));
    }
    if (step.seq() == 0)
      return absl::InvalidArgumentError(absl::StrCat(field, ".seq: must be 1 or more"));
    if (!seqs.insert(step.seq()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".seq: ", step.seq(), " appears twice in one update"));
    }
    if (!v1::StepRecord::Status_IsValid(step.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".status: unknown value ", static_cast<int>(step.status())));
    }
  }
  return absl::OkStatus();
}

struct PlannedStep {
  bool insert = false;
  v1::StepRecord record;
};

}  // namespace

absl::Status TaskNotFound(std::string_view id) {
  return absl::NotFoundError(absl::StrCat(TaskName(id), " not found"));
}

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp timestamp;
  const int64_t seconds = absl::ToUnixSeconds(time);  // Rounds down.
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return timestamp;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

std::vector<v1::TaskState> FinalStates() {
  return {v1::TASK_STATE_SUCCEEDED, v1::TASK_STATE_FAILED, v1::TASK_STATE_CANCELLED,
          v1::TASK_STATE_TIMED_OUT};
}

absl::StatusOr<SubmitResult> SubmitTask(TaskTxn& txn, v1::Task task, absl::Time now,
                                        absl::FunctionRef<std::string()> new_id) {
  FLOWORK_RETURN_IF_ERROR(CheckSubmit(task));
  if (!task.idempotency_key().empty()) {
    FLOWORK_ASSIGN_OR_RETURN(std::optional<v1::Task> existing,
                             txn.FindByIdempotencyKey(task.tenant(), task.idempotency_key()));
    if (existing) return SubmitResult{*std::move(existing), false};
  }
  if (!task.parent_id().empty()) {
    FLOWORK_ASSIGN_OR_RETURN(bool parent_exists, txn.TaskExists(task.parent_id()));
    if (!parent_exists) {
      return absl::NotFoundError(
          absl::StrCat("task.parent_id: ", TaskName(task.parent_id()), " not found"));
    }
  }
  task.set_id(new_id());
  task.set_state(v1::TASK_STATE_PENDING);
  *task.mutable_create_time() = ToTimestamp(now);
  *task.mutable_update_time() = task.create_time();
  task.clear_output();
  task.clear_error();
  task.clear_attempt();
  task.clear_cancel_requested();
  task.clear_step_count();
  FLOWORK_RETURN_IF_ERROR(txn.InsertTask(task));
  return SubmitResult{std::move(task), true};
}

absl::Status ApplyTaskUpdate(TaskTxn& txn, const TaskUpdate& update, absl::Time now) {
  FLOWORK_RETURN_IF_ERROR(CheckUpdate(update));
  FLOWORK_ASSIGN_OR_RETURN(TaskRow row, txn.LoadTask(update.task_id));
  if (update.expect_state && row.state != *update.expect_state) {
    return absl::AbortedError(absl::StrCat(TaskName(row.id), " is ", v1::TaskState_Name(row.state),
                                           ", not the expected ",
                                           v1::TaskState_Name(*update.expect_state)));
  }
  if (IsFinal(row.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        TaskName(row.id), " is ", v1::TaskState_Name(row.state), " (final) and cannot change"));
  }
  if (update.state) {
    absl::Status legal = CheckTransition(row.state, *update.state);
    if (!legal.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(TaskName(row.id), ": ", legal.message()));
    }
    row.state = *update.state;
  }

  // Plan every step before writing anything, so a bad one leaves no trace.
  std::vector<PlannedStep> planned;
  planned.reserve(update.steps.size());
  uint64_t step_count = row.step_count;
  for (size_t i = 0; i < update.steps.size(); ++i) {
    const v1::StepRecord& step = update.steps[i];
    const std::string field = absl::StrCat("update.steps[", i, "]");
    PlannedStep& plan = planned.emplace_back();
    if (step.seq() <= row.step_count) {
      FLOWORK_ASSIGN_OR_RETURN(plan.record, txn.LoadStep(row.key, step.seq()));
      if (plan.record.status() == v1::StepRecord::STATUS_COMPLETED) {
        return absl::FailedPreconditionError(absl::StrCat(field, ": step ", step.seq(), " of ",
                                                          TaskName(row.id),
                                                          " is COMPLETED and cannot change"));
      }
      plan.record.MergeFrom(step);
    } else if (step.seq() == step_count + 1) {
      if (step.status() == v1::StepRecord::STATUS_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".status: required for a new step"));
      }
      plan.insert = true;
      plan.record = step;
      ++step_count;
    } else {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ".seq: ", step.seq(), " skips ahead of the journal of ",
                       TaskName(row.id), " (next is ", step_count + 1, ")"));
    }
    plan.record.set_task_id(row.id);
  }

  if (update.error) row.error = *update.error;
  if (update.attempt) row.attempt = *update.attempt;
  if (update.cancel_requested) row.cancel_requested = *update.cancel_requested;
  if (update.not_before) {
    row.not_before = *update.not_before == absl::InfinitePast()
                         ? std::nullopt
                         : std::optional<absl::Time>(*update.not_before);
  }
  row.step_count = step_count;
  row.update_time = now;
  FLOWORK_RETURN_IF_ERROR(txn.StoreTask(row, update.output ? &*update.output : nullptr));
  for (const PlannedStep& plan : planned) {
    if (plan.insert) {
      FLOWORK_RETURN_IF_ERROR(txn.InsertStep(row.key, plan.record));
    } else {
      FLOWORK_RETURN_IF_ERROR(txn.UpdateStep(row.key, plan.record));
    }
  }
  return absl::OkStatus();
}

}  // namespace flowork::agent::internal
