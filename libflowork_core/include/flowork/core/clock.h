#ifndef FLOWORK_CORE_CLOCK_H_
#define FLOWORK_CORE_CLOCK_H_

#include "absl/time/time.h"

namespace flowork::core {

// The source of time for everything that schedules, times out or stamps.
// Injected so tests can run on a fake clock. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // The current wall-clock time.
  virtual absl::Time Now() const = 0;

  // The process-wide real clock. Never destroyed; thread-safe.
  static Clock& Real();
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_CLOCK_H_
