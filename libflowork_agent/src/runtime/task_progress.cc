#include "flowork/agent/task_progress.h"

#include <utility>

namespace flowork::agent {

int64_t TaskProgress::Subscribe(const std::string& task_id, Listener listener) {
  absl::MutexLock lock(&mu_);
  const int64_t token = ++last_token_;
  subscriptions_.emplace(token, Subscription{task_id, std::move(listener)});
  by_task_.emplace(task_id, token);
  return token;
}

void TaskProgress::Unsubscribe(int64_t token) {
  // Publish holds the lock while it calls listeners, so once this returns
  // no listener of `token` is running.
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(token);
  if (it == subscriptions_.end()) return;
  auto [first, last] = by_task_.equal_range(it->second.task_id);
  for (auto at = first; at != last; ++at) {
    if (at->second == token) {
      by_task_.erase(at);
      break;
    }
  }
  subscriptions_.erase(it);
}

bool TaskProgress::Watched(const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  return by_task_.count(task_id) > 0;
}

void TaskProgress::Publish(const std::string& task_id, std::string_view text) {
  if (text.empty()) return;
  absl::MutexLock lock(&mu_);
  auto [first, last] = by_task_.equal_range(task_id);
  for (auto at = first; at != last; ++at) {
    subscriptions_.at(at->second).listener(text);
  }
}

}  // namespace flowork::agent
