#include "flowork/core/clock.h"

#include "flowork/core/internal/wall_clock.h"

namespace flowork::core {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return internal::WallNow(); }
};

}  // namespace

Clock& Clock::Real() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace flowork::core
