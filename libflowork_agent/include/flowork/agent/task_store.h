#ifndef FLOWORK_AGENT_TASK_STORE_H_
#define FLOWORK_AGENT_TASK_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/task.pb.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// What Submit did.
struct SubmitResult {
  // The task as stored: the new one, or the one submitted earlier with the
  // same (tenant, idempotency_key).
  v1::Task task;
  // False when an earlier submit with the same (tenant, idempotency_key)
  // created `task` and nothing new was stored.
  bool created = false;
};

// Which tasks List returns. Empty fields match everything.
struct TaskFilter {
  std::string agent;
  std::string tenant;
  // Any of these states; empty: every state.
  std::vector<v1::TaskState> states;
  // Most tasks per page. Default 0 means 100; at most 1000.
  int page_size = 0;
  // From the previous page's `next_page_token`; empty: the first page. Use it
  // with the same filter.
  std::string page_token;
};

// One page of List, in submission order (oldest first). The order is stable:
// tasks submitted while paging appear on a later page, never on one already
// returned.
struct TaskPage {
  std::vector<v1::Task> tasks;
  // Empty on the last page.
  std::string next_page_token;
};

// One atomic change to one task and its journal. Every field but `task_id` is
// optional; what is unset is left as stored.
struct TaskUpdate {
  std::string task_id;

  // Optimistic concurrency: when set, the update is applied only if the task
  // is in this state now, and fails with kAborted (changing nothing) if not.
  std::optional<v1::TaskState> expect_state;

  // Moves the task to this state; checked by CheckTransition (kFailedPrecondition).
  std::optional<v1::TaskState> state;

  // The small mutable fields of v1::Task.
  std::optional<google::protobuf::Value> output;
  std::optional<std::string> error;
  std::optional<int32_t> attempt;
  // absl::InfinitePast() clears it (dispatch at once).
  std::optional<absl::Time> not_before;
  std::optional<bool> cancel_requested;

  // Journal entries upserted by (task_id, seq); `task_id` may be left empty.
  // A new step must take the next seq (the task's step_count + 1, in order
  // within one update) and a status; it is stored as given. A step already
  // stored is merged with the given record (protobuf MergeFrom: fields set
  // here replace the stored ones), so completing a step needs only its seq,
  // status, output and end time, not its input again. A COMPLETED step never
  // changes again. Each write costs what the step holds: the rest of the
  // journal is never rewritten.
  std::vector<v1::StepRecord> steps;
};

// Which finished tasks PruneFinished deletes. Unset limits delete nothing.
struct RetentionPolicy {
  // Finished tasks that finished (were last updated) longer ago than this.
  std::optional<absl::Duration> max_age;
  // Finished tasks beyond the `max_count` most recently finished ones.
  std::optional<int64_t> max_count;
};

// The durable home of tasks and their step journals: the agent runtime's
// source of truth, read back after a restart. Thread-safe.
//
// Writes (Submit, Apply, PruneFinished and their Async forms) are queued and
// applied in queue order by one writer, which may commit many of them in one
// transaction; each is still atomic on its own, and one that fails changes
// nothing. A write has been stored durably (as the implementation defines it)
// when its result is delivered. Completion callbacks run exactly once, on the
// store's writer thread, after the write committed: keep them short. They may
// call the Async methods and the reads; the blocking writes called from a
// callback fail with kFailedPrecondition instead of deadlocking. Reads see
// every write whose result has been delivered.
//
// Destroying the store finishes the writes already queued (their callbacks
// run), then closes it. No call may race with the destruction.
class TaskStore {
 public:
  virtual ~TaskStore() = default;

  // Stores a new task in TASK_STATE_PENDING and returns it. The store assigns
  // `id` (random, URL-safe), `create_time` and `update_time`, and resets what
  // it owns (`state`, `output`, `error`, `attempt`, `cancel_requested`,
  // `step_count`) whatever the caller put there. When a task with the same
  // non-empty (tenant, idempotency_key) exists, returns it with
  // `created = false` and stores nothing, whatever the rest of `task` says.
  // kInvalidArgument naming the field: no agent, both input and input_bytes,
  // unknown priority, malformed timestamp. kNotFound: `parent_id` names no
  // stored task.
  virtual absl::StatusOr<SubmitResult> Submit(v1::Task task) = 0;
  virtual void SubmitAsync(v1::Task task,
                           absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) = 0;

  // kNotFound when no task has that id.
  virtual absl::StatusOr<v1::Task> Get(std::string_view id) const = 0;

  // kInvalidArgument: a page token this store did not issue, a negative or too
  // large page size, an unknown state.
  virtual absl::StatusOr<TaskPage> List(const TaskFilter& filter) const = 0;

  // Applies `update` atomically: checks `expect_state`, moves the state, sets
  // the given fields, upserts the steps, bumps `update_time` and `step_count`.
  // kNotFound: no such task. kAborted: the task is not in `expect_state`.
  // kFailedPrecondition: an illegal transition, a task already final, a step
  // that skips a seq or changes a COMPLETED step. kInvalidArgument: a malformed
  // update (no task id, a step for another task, seq 0, a new step without a
  // status, a negative attempt). On any error nothing of the update is stored.
  virtual absl::Status Apply(TaskUpdate update) = 0;
  virtual void ApplyAsync(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> done) = 0;

  // The task's steps with seq > `after_seq`, in seq order. kNotFound: no such task.
  virtual absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                              uint64_t after_seq = 0) const = 0;

  // Every task not in a final state, in submission order: what the runtime
  // resumes after a restart.
  virtual absl::StatusOr<std::vector<v1::Task>> ListUnfinished() const = 0;

  // Ids of the tasks whose parent_id is `parent_id` (direct children only), in
  // submission order. Empty for an unknown parent.
  virtual absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) const = 0;

  // Deletes finished tasks, with their journals, that `policy` no longer
  // keeps, and returns how many. Unfinished tasks are never touched. Large
  // prunes run as several transactions so other writes are not held up.
  // kInvalidArgument: a negative limit.
  virtual absl::StatusOr<int64_t> PruneFinished(const RetentionPolicy& policy) = 0;
};

// A TaskStore that passes every call to `inner`, which it owns: the base for a
// store that watches or changes some calls and forwards the rest (override
// those, call the base for the forwarding). As thread-safe as `inner`.
class ForwardingTaskStore : public TaskStore {
 public:
  explicit ForwardingTaskStore(std::unique_ptr<TaskStore> inner) : inner_(std::move(inner)) {}

  absl::StatusOr<SubmitResult> Submit(v1::Task task) override {
    return inner_->Submit(std::move(task));
  }
  void SubmitAsync(v1::Task task,
                   absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) override {
    inner_->SubmitAsync(std::move(task), std::move(done));
  }
  absl::StatusOr<v1::Task> Get(std::string_view id) const override { return inner_->Get(id); }
  absl::StatusOr<TaskPage> List(const TaskFilter& filter) const override {
    return inner_->List(filter);
  }
  absl::Status Apply(TaskUpdate update) override { return inner_->Apply(std::move(update)); }
  void ApplyAsync(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> done) override {
    inner_->ApplyAsync(std::move(update), std::move(done));
  }
  absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                      uint64_t after_seq = 0) const override {
    return inner_->Journal(task_id, after_seq);
  }
  absl::StatusOr<std::vector<v1::Task>> ListUnfinished() const override {
    return inner_->ListUnfinished();
  }
  absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) const override {
    return inner_->Children(parent_id);
  }
  absl::StatusOr<int64_t> PruneFinished(const RetentionPolicy& policy) override {
    return inner_->PruneFinished(policy);
  }

 protected:
  TaskStore& inner() { return *inner_; }
  const TaskStore& inner() const { return *inner_; }

 private:
  std::unique_ptr<TaskStore> inner_;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TASK_STORE_H_
