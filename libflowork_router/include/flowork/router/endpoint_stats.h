#ifndef FLOWORK_ROUTER_ENDPOINT_STATS_H_
#define FLOWORK_ROUTER_ENDPOINT_STATS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "flowork/core/clock.h"

namespace flowork::router {

// When an endpoint's circuit opens and for how long. Every field documents
// its default (the config's zero values map to these).
struct CircuitOptions {
  // Failures in a row that open the circuit.
  uint32_t consecutive_failures = 5;
  // Failure ratio over the last `window_requests` outcomes that opens it,
  // once that many outcomes were seen.
  double error_ratio = 0.5;
  // Outcomes the ratio looks at (at most 64).
  uint32_t window_requests = 20;
  // How long an opened circuit stays open before one probe may go through.
  absl::Duration open_for = absl::Seconds(10);
};

enum class CircuitState { kClosed, kOpen, kHalfOpen };

// "closed", "open", "half-open".
const char* CircuitStateName(CircuitState state);

// What went wrong with one attempt, as far as health is concerned.
enum class FailureKind {
  kConnect,      // Refused, reset, TLS: counts against the circuit.
  kTimeout,      // No first byte / token in time: counts.
  kServerError,  // 5xx: counts.
  kRateLimited,  // 429: cooldown only (honouring Retry-After), not a fault.
};

// One endpoint's health and load at one moment, as a plan reads it.
struct EndpointReading {
  CircuitState circuit = CircuitState::kClosed;
  absl::Time open_until = absl::InfinitePast();  // While kOpen.
  bool probe_in_flight = false;                  // While kHalfOpen.
  absl::Time cooldown_until = absl::InfinitePast();
  std::optional<double> latency_ewma_ms;  // Unset until the first success.
  std::optional<double> ttft_ewma_ms;     // Unset until the first streamed success.
  int in_flight = 0;
};

// The live state of one endpoint: latency and time-to-first-token EWMAs,
// requests in flight, circuit breaker, Retry-After cooldown. Updated from the
// data path with atomics only (no locks); thread-safe.
class EndpointState {
 public:
  // `clock` is not owned and must outlive the state.
  EndpointState(std::string id, const CircuitOptions& options, const core::Clock& clock);

  const std::string& id() const { return id_; }

  // Reads everything at `now`; an open circuit whose time is up reads as
  // half-open.
  EndpointReading Read(absl::Time now) const;

  // Called when an attempt is about to be sent. False when the circuit is
  // open, or half-open with its one probe already taken (then send nothing).
  // On true the attempt counts as in flight until OnSuccess/OnFailure.
  bool BeginAttempt();

  // The attempt succeeded. `ttft` is the time to the first content token of
  // a stream (unset for whole responses).
  void OnSuccess(absl::Duration latency, std::optional<absl::Duration> ttft = std::nullopt);

  // The attempt failed. `retry_after` (from a 429 or 503) starts a cooldown.
  void OnFailure(FailureKind kind, std::optional<absl::Duration> retry_after = std::nullopt);

  // The attempt ended without a verdict on the endpoint (the client left, or
  // the request itself was bad): just no longer in flight.
  void OnAbandoned();

  // Replaces the circuit options (config reload); state carries over.
  void SetOptions(const CircuitOptions& options);

 private:
  void Open(absl::Time now);
  void RecordOutcome(bool failure);

  const std::string id_;
  const core::Clock& clock_;
  std::atomic<uint32_t> consecutive_failures_threshold_;
  std::atomic<double> error_ratio_;
  std::atomic<uint32_t> window_requests_;
  std::atomic<int64_t> open_for_ns_;

  std::atomic<int> in_flight_{0};
  std::atomic<int> state_{0};              // CircuitState.
  std::atomic<int64_t> open_until_ns_{0};  // Unix nanos.
  std::atomic<bool> probe_in_flight_{false};
  std::atomic<int64_t> cooldown_until_ns_{0};
  std::atomic<uint32_t> consecutive_failures_{0};
  std::atomic<uint64_t> outcomes_{0};  // Last 64 outcomes, newest in bit 0, 1 = failure.
  std::atomic<uint32_t> outcome_count_{0};
  std::atomic<double> latency_ewma_ms_{-1};  // < 0: no sample yet.
  std::atomic<double> ttft_ewma_ms_{-1};
};

// The states of all endpoints of a router, by id. A reload asks for the
// states of the new config's endpoints: those that still exist keep their
// stats. Lookups lock (they happen at reload, not per request); the states
// themselves are lock-free. Thread-safe.
class EndpointStats {
 public:
  // `clock` is not owned and must outlive this and every state.
  explicit EndpointStats(const core::Clock& clock) : clock_(clock) {}

  // The state of `id`, created with `options` if new; an existing one gets
  // `options` applied.
  std::shared_ptr<EndpointState> GetOrCreate(const std::string& id, const CircuitOptions& options);

  // Forgets every state not in `keep` (states still referenced live on).
  void Retain(const std::vector<std::string>& keep);

  // The state of `id`, or null.
  std::shared_ptr<EndpointState> Find(const std::string& id) const;

  const core::Clock& clock() const { return clock_; }

 private:
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<EndpointState>> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_ENDPOINT_STATS_H_
