#ifndef FLOWORK_ROUTER_POLICY_H_
#define FLOWORK_ROUTER_POLICY_H_

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/clock.h"
#include "flowork/router/attempt_plan.h"
#include "flowork/router/catalog.h"
#include "flowork/router/endpoint_stats.h"
#include "flowork/router/key_ring.h"
#include "flowork/router/request_view.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Picks the endpoints that may serve one request, best first, from one
// immutable configuration snapshot and the endpoints' live stats. Plan is a
// pure function of (snapshot, request, stats readings, seed, now): the same
// inputs give the same plan. Thread-safe.
class Policy {
 public:
  virtual ~Policy() = default;

  // Validates `config` (ValidateRouterConfig) and compiles it. Endpoint
  // states come from `stats`, so endpoints that exist in an earlier snapshot
  // keep their stats. `stats` must outlive the policy.
  static absl::StatusOr<std::shared_ptr<const Policy>> Create(const v1::RouterConfig& config,
                                                              EndpointStats& stats);

  // kNotFound: no route or model by that name. kFailedPrecondition: every
  // candidate was filtered out; the message gives each one's reason.
  // `request.seed` must be set.
  virtual absl::StatusOr<AttemptPlan> Plan(const RequestView& request) const = 0;

  // The plan with every verdict, even when nothing is kept. kNotFound only
  // for an unknown name. Sends nothing anywhere.
  virtual absl::StatusOr<AttemptPlan> Explain(const RequestView& request) const = 0;

  // The configuration this policy was built from.
  virtual const v1::RouterConfig& config() const = 0;

  // The models and routes clients may ask for in this configuration.
  virtual const Catalog& catalog() const = 0;

  // The client API keys of this configuration.
  virtual const KeyRing& keys() const = 0;

  // The tenant named `name` in this configuration, or null.
  virtual const v1::Tenant* FindTenant(std::string_view name) const = 0;

  // Whether `model` names a model or route of this configuration (what a
  // request's `model` may ask for).
  virtual bool Names(std::string_view model) const = 0;
};

// The router's current policy, replaced whole on reload while requests in
// flight keep the snapshot they started with; endpoint stats carry over.
// Thread-safe.
class PolicyEngine {
 public:
  // `clock` is not owned and must outlive the engine.
  static absl::StatusOr<std::unique_ptr<PolicyEngine>> Create(const v1::RouterConfig& config,
                                                              const core::Clock& clock);

  // Builds a snapshot from `config` and swaps it in. On error (the config is
  // invalid) the current snapshot stays.
  absl::Status ApplyConfig(const v1::RouterConfig& config);

  // The current snapshot.
  std::shared_ptr<const Policy> Current() const;

  // Plans on the current snapshot, assigning the next seed when the request
  // has none.
  absl::StatusOr<AttemptPlan> Plan(RequestView request) const;
  absl::StatusOr<AttemptPlan> Explain(RequestView request) const;
  // The same on `snapshot`, one that Current() returned: a caller that
  // checked a request against a snapshot plans it on that one, even if a
  // reload swapped in another meanwhile.
  absl::StatusOr<AttemptPlan> Plan(const Policy& snapshot, RequestView request) const;
  absl::StatusOr<AttemptPlan> Explain(const Policy& snapshot, RequestView request) const;

  EndpointStats& stats() { return stats_; }

 private:
  explicit PolicyEngine(const core::Clock& clock) : stats_(clock) {}

  EndpointStats stats_;
  mutable std::atomic<uint64_t> next_seed_{1};
  mutable absl::Mutex mu_;
  std::shared_ptr<const Policy> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_POLICY_H_
