// Private to libflowork_agent: what a task store backend implements, and the
// logic every backend shares so they all check and fail the same way.
#ifndef FLOWORK_AGENT_SRC_STORE_TASK_TXN_H_
#define FLOWORK_AGENT_SRC_STORE_TASK_TXN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "flowork/agent/task_store.h"
#include "flowork/agent/v1/task.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace flowork::agent::internal {

// The mutable part of a stored task: what an update reads and writes.
struct TaskRow {
  // The backend's key of the task, increasing in submission order.
  int64_t key = 0;
  std::string id;
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  uint64_t step_count = 0;
  int32_t attempt = 0;
  bool cancel_requested = false;
  std::optional<absl::Time> not_before;
  std::string error;
  absl::Time update_time;
};

// A stored task with its backend key (for paging).
struct KeyedTask {
  int64_t key = 0;
  v1::Task task;
};

// The reads and writes of one write transaction. Every method may fail only
// with storage errors, except LoadTask (kNotFound) and LoadStep (kNotFound).
class TaskTxn {
 public:
  virtual ~TaskTxn() = default;

  // kNotFound `task "id" not found`.
  virtual absl::StatusOr<TaskRow> LoadTask(std::string_view id) = 0;
  // Writes the row's mutable fields; the output too when `output` is set.
  virtual absl::Status StoreTask(const TaskRow& row, const google::protobuf::Value* output) = 0;
  virtual absl::StatusOr<v1::StepRecord> LoadStep(int64_t task_key, uint64_t seq) = 0;
  virtual absl::Status InsertStep(int64_t task_key, const v1::StepRecord& step) = 0;
  virtual absl::Status UpdateStep(int64_t task_key, const v1::StepRecord& step) = 0;

  virtual absl::StatusOr<std::optional<v1::Task>> FindByIdempotencyKey(std::string_view tenant,
                                                                       std::string_view key) = 0;
  virtual absl::StatusOr<bool> TaskExists(std::string_view id) = 0;
  virtual absl::Status InsertTask(const v1::Task& task) = 0;

  // Deletes at most `limit` finished tasks (with their journals) that either
  // finished before `finished_before` or are not among the `keep_newest` most
  // recently finished; returns how many.
  virtual absl::StatusOr<int64_t> PruneFinished(std::optional<absl::Time> finished_before,
                                                std::optional<int64_t> keep_newest,
                                                int64_t limit) = 0;
};

// One write queued for the store's writer.
class WriteOp {
 public:
  virtual ~WriteOp() = default;
  // Runs inside the batch's transaction. A failure must be reported before
  // anything was written, or the backend must undo what was (a savepoint).
  virtual absl::Status Run(TaskTxn& txn) = 0;
  // Called exactly once, after the batch committed, with Run's status, or with
  // the error that kept the batch from committing.
  virtual void Finish(absl::Status status) && = 0;
};

// A storage engine under GroupCommitTaskStore. Called by one writer thread for
// RunBatch and by any threads for the reads; implementations are thread-safe.
class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  // Runs every op in one transaction, each atomically on its own: an op whose
  // Run fails leaves no trace and does not disturb the others. Sets
  // `results[i]` to op i's outcome; when the transaction cannot commit, every
  // op that succeeded gets that error instead.
  virtual void RunBatch(absl::Span<const std::unique_ptr<WriteOp>> ops,
                        absl::Span<absl::Status> results) = 0;

  virtual absl::StatusOr<v1::Task> Get(std::string_view id) = 0;
  // Tasks matching `filter` (its paging fields ignored) with key > `after_key`,
  // by key, at most `limit`.
  virtual absl::StatusOr<std::vector<KeyedTask>> List(const TaskFilter& filter, int64_t after_key,
                                                      int limit) = 0;
  virtual absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                              uint64_t after_seq) = 0;
  virtual absl::StatusOr<std::vector<v1::Task>> ListUnfinished() = 0;
  virtual absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) = 0;
};

// The shared rules. `now` stamps the write.
absl::StatusOr<SubmitResult> SubmitTask(TaskTxn& txn, v1::Task task, absl::Time now,
                                        absl::FunctionRef<std::string()> new_id);
absl::Status ApplyTaskUpdate(TaskTxn& txn, const TaskUpdate& update, absl::Time now);

// `task "id" not found`.
absl::Status TaskNotFound(std::string_view id);

// Times as protobuf Timestamps and back (times are stored to the nanosecond).
google::protobuf::Timestamp ToTimestamp(absl::Time time);
absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);

// The final states, for backends that query by state.
std::vector<v1::TaskState> FinalStates();

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_STORE_TASK_TXN_H_
