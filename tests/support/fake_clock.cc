#include "flowork/testing/fake_clock.h"

namespace flowork::testing {

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration by) {
  absl::MutexLock lock(&mu_);
  now_ += by;
}

void FakeClock::Set(absl::Time to) {
  absl::MutexLock lock(&mu_);
  now_ = to;
}

}  // namespace flowork::testing
