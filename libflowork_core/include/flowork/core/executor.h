#ifndef FLOWORK_CORE_EXECUTOR_H_
#define FLOWORK_CORE_EXECUTOR_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace flowork::core {

// Runs callbacks somewhere other than the caller's stack. Injected so tests can
// run work deterministically. Implementations are thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;

  // Runs `work` exactly once, later, on one of the executor's threads. Work
  // may schedule more work, also while the executor is being destroyed.
  virtual void Schedule(absl::AnyInvocable<void() &&> work) = 0;
};

// Options of a thread-pool executor.
struct ThreadPoolOptions {
  // Worker threads. Default 0 means the number of cores.
  int threads = 0;
};

// A fixed pool of threads draining one FIFO queue. Destruction runs the work
// already queued, then joins the threads.
absl::StatusOr<std::unique_ptr<Executor>> CreateThreadPoolExecutor(
    const ThreadPoolOptions& options);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_EXECUTOR_H_
