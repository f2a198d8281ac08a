#include "flowork/core/internal/timer_queue.h"

#include <utility>

#include "flowork/core/internal/wall_clock.h"

namespace flowork::core::internal {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() { Stop(); }

void TimerQueue::Stop() {
  Queue dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(queue_);
    by_id_.clear();
  }
  if (thread_.joinable()) thread_.join();
  // `dropped` is destroyed here, outside the lock: its work may own things.
}

uint64_t TimerQueue::At(absl::Time when, absl::AnyInvocable<void() &&> work) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = ++last_id_;
  if (stopping_) return id;
  by_id_[id] = queue_.emplace(when, Entry{id, std::move(work)});
  woken_ = true;  // The runner may be waiting for a later time.
  return id;
}

void TimerQueue::Cancel(uint64_t id) {
  if (id == 0) return;  // No timer: no need for the lock.
  absl::AnyInvocable<void() &&> dropped;
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  dropped = std::move(it->second->second.work);
  queue_.erase(it->second);
  by_id_.erase(it);
}

void TimerQueue::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time next = queue_.empty() ? absl::InfiniteFuture() : queue_.begin()->first;
    mu_.AwaitWithDeadline(absl::Condition(this, &TimerQueue::Woken), next);
    woken_ = false;
    while (!stopping_ && !queue_.empty() && queue_.begin()->first <= internal::WallNow()) {
      absl::AnyInvocable<void()&&> work = std::move(queue_.begin()->second.work);
      by_id_.erase(queue_.begin()->second.id);
      queue_.erase(queue_.begin());
      mu_.Unlock();
      std::move(work)();
      work = nullptr;  // Its captures go before the lock is taken again.
      mu_.Lock();
    }
  }
}

}  // namespace flowork::core::internal
