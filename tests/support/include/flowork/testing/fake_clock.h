#ifndef FLOWORK_TESTING_FAKE_CLOCK_H_
#define FLOWORK_TESTING_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/clock.h"

namespace flowork::testing {

// A clock that moves only when told. Thread-safe.
class FakeClock final : public core::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() const override;
  void Advance(absl::Duration by);
  void Set(absl::Time to);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::testing

#endif  // FLOWORK_TESTING_FAKE_CLOCK_H_
