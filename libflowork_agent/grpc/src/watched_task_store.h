// Private to flowork::agent_grpc: a TaskStore that tells watchers when a
// task changed, so event streams follow tasks live without polling.
#ifndef FLOWORK_AGENT_GRPC_SRC_WATCHED_TASK_STORE_H_
#define FLOWORK_AGENT_GRPC_SRC_WATCHED_TASK_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/task_store.h"

namespace flowork::agent::internal {

// Forwards every call to `inner`; after a write to a task committed, runs the
// callbacks watching that task (on the store's writer thread, under a lock:
// they must be short and must not call Watch/Unwatch). Thread-safe.
class WatchedTaskStore final : public ForwardingTaskStore {
 public:
  explicit WatchedTaskStore(std::unique_ptr<TaskStore> inner)
      : ForwardingTaskStore(std::move(inner)) {}

  // Runs `changed` after each committed write to task `id` until Unwatch.
  int64_t Watch(const std::string& id, absl::AnyInvocable<void()> changed);
  // No callback of `token` runs once this returns.
  void Unwatch(const std::string& id, int64_t token);

  absl::StatusOr<SubmitResult> Submit(v1::Task task) override;
  void SubmitAsync(v1::Task task,
                   absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) override;
  absl::Status Apply(TaskUpdate update) override;
  void ApplyAsync(TaskUpdate update, absl::AnyInvocable<void(absl::Status) &&> done) override;

 private:
  void Changed(const std::string& id);

  absl::Mutex mu_;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::map<int64_t, absl::AnyInvocable<void()>>> watchers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_WATCHED_TASK_STORE_H_
