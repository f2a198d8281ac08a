#include "watched_task_store.h"

#include <utility>

namespace flowork::agent::internal {

int64_t WatchedTaskStore::Watch(const std::string& id, absl::AnyInvocable<void()> changed) {
  absl::MutexLock lock(&mu_);
  const int64_t token = next_token_++;
  watchers_[id].emplace(token, std::move(changed));
  return token;
}

void WatchedTaskStore::Unwatch(const std::string& id, int64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  it->second.erase(token);
  if (it->second.empty()) watchers_.erase(it);
}

void WatchedTaskStore::Changed(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  for (auto& [token, changed] : it->second) changed();
}

absl::StatusOr<SubmitResult> WatchedTaskStore::Submit(v1::Task task) {
  absl::StatusOr<SubmitResult> result = inner().Submit(std::move(task));
  if (result.ok()) Changed(result->task.id());
  return result;
}

void WatchedTaskStore::SubmitAsync(v1::Task task,
                                   absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) {
  inner().SubmitAsync(std::move(task),
                      [this, done = std::move(done)](absl::StatusOr<SubmitResult> result) mutable {
                        if (result.ok()) Changed(result->task.id());
                        std::move(done)(std::move(result));
                      });
}

absl::Status WatchedTaskStore::Apply(TaskUpdate update) {
  const std::string id = update.task_id;
  absl::Status status = inner().Apply(std::move(update));
  if (status.ok()) Changed(id);
  return status;
}

void WatchedTaskStore::ApplyAsync(TaskUpdate update,
                                  absl::AnyInvocable<void(absl::Status) &&> done) {
  std::string id = update.task_id;
  inner().ApplyAsync(std::move(update), [this, id = std::move(id),
                                         done = std::move(done)](absl::Status status) mutable {
    if (status.ok()) Changed(id);
    std::move(done)(std::move(status));
  });
}

}  // namespace flowork::agent::internal
