#include "flowork/testing/fake_executor.h"

namespace flowork::testing {

void FakeExecutor::Schedule(absl::AnyInvocable<void() &&> work) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(work));
}

int FakeExecutor::RunAll(int max) {
  int ran = 0;
  while (ran < max) {
    absl::AnyInvocable<void() &&> work;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) break;
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(work)();
    ++ran;
  }
  return ran;
}

int FakeExecutor::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace flowork::testing
