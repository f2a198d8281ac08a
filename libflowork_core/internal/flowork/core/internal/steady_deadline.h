// Private to Flowork's libraries: deadlines on the steady clock.
#ifndef FLOWORK_CORE_INTERNAL_STEADY_DEADLINE_H_
#define FLOWORK_CORE_INTERNAL_STEADY_DEADLINE_H_

#include <chrono>

#include "absl/time/time.h"

namespace flowork::core::internal {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

// `from` + `after`, saturating: an infinite or huge `after` gives
// SteadyTime::max() (never), a negative one `from`. (chrono's own addition
// overflows past about 292 years.)
inline SteadyTime SteadyDeadline(SteadyTime from, absl::Duration after) {
  if (after <= absl::ZeroDuration()) return from;
  const std::chrono::nanoseconds room = SteadyTime::max() - from;
  if (after >= absl::FromChrono(room)) return SteadyTime::max();
  return from + absl::ToChronoNanoseconds(after);
}

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_STEADY_DEADLINE_H_
