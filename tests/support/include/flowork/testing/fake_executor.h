#ifndef FLOWORK_TESTING_FAKE_EXECUTOR_H_
#define FLOWORK_TESTING_FAKE_EXECUTOR_H_

#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/executor.h"

namespace flowork::testing {

// Queues work until the test runs it, on the test's thread. Thread-safe.
class FakeExecutor final : public core::Executor {
 public:
  void Schedule(absl::AnyInvocable<void() &&> work) override;

  // Runs queued work, including work scheduled while running, until none is
  // left or `max` items ran. Returns how many ran.
  int RunAll(int max = 1'000'000);

  int pending() const;

 private:
  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::testing

#endif  // FLOWORK_TESTING_FAKE_EXECUTOR_H_
