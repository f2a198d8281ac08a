// Private to libflowork_agent.
#ifndef FLOWORK_AGENT_SRC_STORE_GROUP_COMMIT_STORE_H_
#define FLOWORK_AGENT_SRC_STORE_GROUP_COMMIT_STORE_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/task_store.h"
#include "flowork/core/clock.h"
#include "task_txn.h"

namespace flowork::agent::internal {

// A TaskStore over a StoreBackend: writes queue for one writer thread, which
// hands whatever has queued up (at most `max_batch`) to the backend as one
// batch, then runs the callbacks. Reads go straight to the backend.
class GroupCommitTaskStore final : public TaskStore {
 public:
  GroupCommitTaskStore(std::unique_ptr<StoreBackend> backend, const core::Clock& clock,
                       int max_batch);
  ~GroupCommitTaskStore() override;

  absl::StatusOr<SubmitResult> Submit(v1::Task task) override;
  void SubmitAsync(v1::Task task,
                   absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) override;
  absl::StatusOr<v1::Task> Get(std::string_view id) const override;
  absl::StatusOr<TaskPage> List(const TaskFilter& filter) const override;
  absl::Status Apply(TaskUpdate update) override;
  void ApplyAsync(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> done) override;
  absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                      uint64_t after_seq) const override;
  absl::StatusOr<std::vector<v1::Task>> ListUnfinished() const override;
  absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) const override;
  absl::StatusOr<int64_t> PruneFinished(const RetentionPolicy& policy) override;

 private:
  class SubmitOp;
  class ApplyOp;
  class PruneOp;

  void Enqueue(std::unique_ptr<WriteOp> op);
  void WriterLoop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The blocking writes wait for the writer thread: from it they would hang.
  absl::Status CheckNotWriterThread(std::string_view method) const;
  // A new task id: 128 random bits, URL-safe base64. Writer thread only.
  std::string NewTaskId();

  const std::unique_ptr<StoreBackend> backend_;
  const core::Clock& clock_;
  const size_t max_batch_;
  absl::BitGen bitgen_;  // Writer thread only.

  absl::Mutex mu_;
  std::deque<std::unique_ptr<WriteOp>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread writer_;  // Last: starts once everything above exists.
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_STORE_GROUP_COMMIT_STORE_H_
