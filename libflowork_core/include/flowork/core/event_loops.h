#ifndef FLOWORK_CORE_EVENT_LOOPS_H_
#define FLOWORK_CORE_EVENT_LOOPS_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace flowork::core {

// A fixed set of event loops, one thread each. Give the same EventLoops to an
// HttpServer and an HttpClient and a proxied request stays on the thread
// that accepted it, upstream connection pool included: no hop between
// threads on the request path. Thread-safe.
class EventLoops {
 public:
  // `threads` loops; 0 = the number of cores.
  static absl::StatusOr<std::unique_ptr<EventLoops>> Create(int threads);

  // Stops the loops (work still queued is dropped) and joins their threads.
  // Must not run on one of them. Everything using the loops must be gone.
  ~EventLoops();

  int size() const;

  // The index of the loop running the calling thread, or -1.
  int CurrentIndex() const;

  // Runs `work` on loop `index` (0 <= index < size()), later.
  void Post(int index, absl::AnyInvocable<void() &&> work);

  // Private to Flowork's own sources (flowork/core/internal/event_loops.h).
  struct Internal;
  Internal& internal() { return *internal_; }

 private:
  explicit EventLoops(std::unique_ptr<Internal> internal);
  std::unique_ptr<Internal> internal_;
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_EVENT_LOOPS_H_
