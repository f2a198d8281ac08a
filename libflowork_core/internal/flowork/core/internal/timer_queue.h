#ifndef FLOWORK_CORE_INTERNAL_TIMER_QUEUE_H_
#define FLOWORK_CORE_INTERNAL_TIMER_QUEUE_H_

#include <cstdint>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace flowork::core::internal {

// Runs callbacks at a (real) time, on one thread of its own: the agent
// runtime's timers, the gateway's retry backoff and first-token deadlines.
// Callbacks should hand work off and return. A callback and its captures are
// destroyed outside the queue's lock (they may hold the last reference to
// something whose destruction takes other locks). Thread-safe.
class TimerQueue {
 public:
  TimerQueue();
  ~TimerQueue();  // Stop().

  // Returns an id for Cancel; never 0.
  uint64_t At(absl::Time when, absl::AnyInvocable<void() &&> work);
  // Drops work not yet run; harmless for work that ran or was dropped.
  void Cancel(uint64_t id);  // 0 (no timer) is ignored.
  // Drops what has not run and joins the thread. Idempotent.
  void Stop();

 private:
  struct Entry {
    uint64_t id;
    absl::AnyInvocable<void() &&> work;
  };
  using Queue = std::multimap<absl::Time, Entry>;
  void Run();
  bool Woken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  Queue queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Queue::iterator> by_id_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_TIMER_QUEUE_H_
