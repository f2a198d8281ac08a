#ifndef FLOWORK_AGENT_DISPATCH_QUEUE_H_
#define FLOWORK_AGENT_DISPATCH_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/task.pb.h"

namespace flowork::agent {

// A task that may start as soon as the scheduler admits it.
struct ReadyTask {
  // Unique among the tasks queued and running.
  std::string id;
  std::string agent;
  std::string tenant;
  // The model the task's next LLM call uses; its budget and backoff apply.
  std::string model;
  // PRIORITY_UNSPECIFIED (and any unknown value) counts as PRIORITY_STANDARD.
  v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
  // Inside a tenant and class, the earliest deadline is dispatched first.
  absl::Time deadline = absl::InfiniteFuture();
  // Since when the task has been ready: breaks deadline ties (FIFO) and drives aging.
  absl::Time ready_since;
  // Tokens reserved from the model's tokens-per-minute budget at dispatch;
  // Finish settles the difference to what the task really used.
  int64_t estimated_tokens = 0;
};

// The rate budget of one model, shared by every task that uses it. Each is a
// token bucket that holds one minute's worth, starts full and refills
// continuously.
struct ModelBudget {
  // Default 0: unlimited.
  int64_t requests_per_minute = 0;
  // Default 0: unlimited. A task estimating more than a whole minute's worth
  // waits for a full bucket and then drives it negative.
  int64_t tokens_per_minute = 0;
};

// Limits of a DispatchQueue. Concurrency limits count dispatched tasks not yet
// finished; 0 means unlimited, negative values are rejected.
struct DispatchQueueOptions {
  // Tasks running at once over everything. Default 64.
  int max_running = 64;
  // Tasks running at once per agent: the map's entry for the agent, else the
  // default. Default: empty map, 0 (unlimited).
  std::map<std::string, int> max_running_per_agent;
  int default_max_running_per_agent = 0;
  // Tasks running at once per tenant, as for agents. Default: empty map, 0 (unlimited).
  std::map<std::string, int> max_running_per_tenant;
  int default_max_running_per_tenant = 0;
  // Share of dispatches inside a priority class among tenants that all have
  // work: weights 3 and 1 get 75% and 25%. At least 1. Default: empty map, 1.
  std::map<std::string, int> tenant_weights;
  int default_tenant_weight = 1;
  // Budgets by model name; a model without an entry is unlimited. Default: empty.
  std::map<std::string, ModelBudget> model_budgets;
  // A task that has waited this long (since its ready_since) is treated as one
  // priority class higher, and one more per further interval, so batch work is
  // never starved by a constant stream of interactive work. Zero or infinite:
  // no aging. Default 30 seconds.
  absl::Duration aging_interval = absl::Seconds(30);
};

// The ready tasks of the agent scheduler, and which of them may start now.
//
// Order: strict priority classes (interactive, standard, batch, after aging);
// inside a class, weighted fair share of dispatches across tenants (stride
// scheduling); inside a tenant, earliest deadline first, then oldest
// ready_since, then push order.
//
// Admission: a task waits, without failing and without losing its place,
// while its agent, its tenant or the whole queue runs its maximum of tasks, or
// while its model is backed off or its model's request or token bucket cannot
// cover one request and the task's estimated tokens. Such a task does not hold
// up tasks of other agents, tenants or models; the first task in the order
// that a model's budget cannot cover does hold up later tasks of that model,
// so that small requests cannot starve a large one.
//
// Time comes in as `now` arguments (non-decreasing, as from a Clock); the
// queue never reads a clock and never blocks. Knows nothing about storage.
// Thread-safe.
class DispatchQueue {
 public:
  // kInvalidArgument naming the field when a limit or budget is negative, a
  // weight is below 1 or aging_interval is negative.
  static absl::StatusOr<std::unique_ptr<DispatchQueue>> Create(DispatchQueueOptions options);

  ~DispatchQueue();
  DispatchQueue(const DispatchQueue&) = delete;
  DispatchQueue& operator=(const DispatchQueue&) = delete;

  // Queues `task`. False, changing nothing, when a task with its id is already
  // queued or running.
  bool Push(ReadyTask task);

  // Takes a queued task out (cancellation). False when no task with that id
  // is queued; a running task is not affected. O(log n).
  bool Remove(std::string_view id);

  // The next task that may start at `now`, taken out of the queue, with its
  // concurrency slots and its model's request and estimated tokens reserved;
  // std::nullopt when nothing may start. Call Finish for it when it stops.
  std::optional<ReadyTask> Pop(absl::Time now);

  // Releases the slots of a task returned by Pop and settles its model's
  // token bucket: refunds what the estimate overshot at once, charges an
  // overrun at the next Pop (as of its `now`). Does nothing for an id that is
  // not running (never popped, or finished already).
  void Finish(const ReadyTask& task, int64_t actual_tokens);

  // No task of `model` is dispatched before `until` (a 429 with Retry-After).
  // A later backoff extends an earlier one; an earlier one changes nothing.
  void BackOffModel(std::string_view model, absl::Time until);

  // When to call Pop next: `now` when Pop(now) would return a task; else the
  // earliest time a refilling budget or an ending backoff lets a waiting task
  // start; absl::InfiniteFuture() when nothing waits or only concurrency limits
  // hold tasks back (Finish frees those). After Pop(now) returned
  // std::nullopt, the answer is later than `now`. Pushes, finishes and aging
  // after the call can make it earlier.
  absl::Time NextWakeup(absl::Time now) const;

  // Tasks queued, and tasks popped but not finished.
  size_t size() const;
  size_t running() const;

  // Replaces the limits; running and queued tasks stay. Lowered concurrency
  // limits hold back new dispatches until enough tasks finish. A changed
  // model budget keeps its bucket's fill fraction. A changed aging interval
  // applies to the next promotions; tasks already promoted stay promoted.
  // kInvalidArgument as for Create, and then nothing changes.
  absl::Status UpdateOptions(DispatchQueueOptions options);

 private:
  struct State;

  DispatchQueue();

  mutable absl::Mutex mu_;
  std::unique_ptr<State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_DISPATCH_QUEUE_H_
