#ifndef FLOWORK_ROUTER_ATTEMPT_PLAN_H_
#define FLOWORK_ROUTER_ATTEMPT_PLAN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "flowork/router/endpoint_stats.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// One model on one provider, as the plan offers it. Points into the config
// snapshot the plan holds; valid as long as the plan.
struct Endpoint {
  const v1::Model* model = nullptr;
  const v1::Provider* provider = nullptr;
  EndpointState* state = nullptr;  // Its live stats; same object across reloads.

  // "model@provider": the endpoint's name in headers, metrics and the audit.
  const std::string& name() const { return state->id(); }
};

// Why a candidate was dropped (kKept if it was not).
enum class DropReason {
  kKept,
  kMissingCapability,  // detail: the capability.
  kContextTooSmall,    // number: context window, needed: tokens needed.
  kZoneNotAllowedByRoute,
  kZoneNotAllowedByKey,
  kZoneNotAllowedByHeader,
  kOverCostCeiling,  // number: estimated USD, needed: ceiling USD.
  kCircuitOpen,      // until.
  kProbeInFlight,
  kCoolingDown,  // until.
};

// The verdict on one candidate, in the route's candidate order.
struct CandidateDecision {
  Endpoint endpoint;
  DropReason reason = DropReason::kKept;
  std::string detail;   // The capability, or the candidate's zone.
  std::string subject;  // The key (kZoneNotAllowedByKey) or route (...ByRoute).
  double number = 0;    // See DropReason.
  double needed = 0;    // See DropReason.
  absl::Time until;     // kCircuitOpen, kCoolingDown.

  bool kept() const { return reason == DropReason::kKept; }
  // "kept", or why not: "zone remote not allowed for key team-a",
  // "context 8192 < needed 9000", "circuit open until 2026-...".
  std::string Explain() const;
};

// A route's retry settings, defaults filled in (see RetryPolicy in config.proto).
struct RetrySettings {
  // Retries of a transient failure on the same endpoint before moving on.
  uint32_t same_endpoint = 1;
  // The first retry's backoff; it doubles per retry, with jitter.
  absl::Duration backoff = absl::Milliseconds(250);
  // The longest Retry-After waited out; a longer one cools the endpoint down.
  absl::Duration max_wait = absl::Seconds(5);
};

// A route's fallback settings, defaults filled in (see FallbackPolicy).
struct FallbackSettings {
  // Attempts in all, over every candidate.
  uint32_t max_attempts = 3;
  // Continue a stream cut after content on a prefill-capable candidate.
  bool continue_on_cut = false;
};

// The endpoints to try for one request, best first, with the verdict on
// every candidate. Built by Policy::Plan; a value that keeps the config
// snapshot it points into alive. Not thread-safe to mutate; const use is.
struct AttemptPlan {
  // The route (or model) the request named.
  std::string target;
  // How the candidates were ordered ("least_latency", ...).
  std::string objective;
  uint64_t seed = 0;
  // Kept endpoints, best first.
  std::vector<Endpoint> attempts;
  // Every candidate, kept or dropped, in configuration order.
  std::vector<CandidateDecision> decisions;
  // The route's retry and fallback settings (defaults filled in).
  RetrySettings retry;
  FallbackSettings fallback;
  // Start a second attempt on the next candidate when the first has produced
  // no content after this long (the route's hedge.after). Unset: no hedging.
  std::optional<absl::Duration> hedge_after;
  // Keeps the snapshot behind the pointers alive.
  std::shared_ptr<const void> snapshot;

  // One line per candidate: "llama-3.1-8b@local-vllm: kept", ...
  std::string Explain() const;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_ATTEMPT_PLAN_H_
