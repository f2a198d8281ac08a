#ifndef FLOWORK_AGENT_TASK_PROGRESS_H_
#define FLOWORK_AGENT_TASK_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace flowork::agent {

// Live progress of running tasks that is not journaled: the text of a model
// answer as it streams in. Whoever shows a task live (an event stream)
// subscribes to it; the model effect handler publishes. Nothing is kept: a
// subscriber sees only what is published while it is subscribed, so after a
// reconnect the journal (the whole answer in the step's result) is the
// record. Thread-safe.
class TaskProgress {
 public:
  // Called with each piece of answer text of `task_id`'s running model call,
  // on the publisher's thread: keep it short and never block.
  using Listener = std::function<void(std::string_view text)>;

  // A token for Unsubscribe.
  int64_t Subscribe(const std::string& task_id, Listener listener);
  // After it returns, `listener` is not running and will not run again.
  void Unsubscribe(int64_t token);

  // Whether anyone listens to `task_id`: a publisher may skip the work.
  bool Watched(const std::string& task_id) const;
  void Publish(const std::string& task_id, std::string_view text);

 private:
  struct Subscription {
    std::string task_id;
    Listener listener;
  };
  mutable absl::Mutex mu_;
  int64_t last_token_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, int64_t> by_task_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TASK_PROGRESS_H_
