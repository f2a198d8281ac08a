#include "flowork/router/endpoint_stats.h"

#include <algorithm>
#include <bit>

namespace flowork::router {
namespace {

// Weight of the newest sample in the latency averages.
constexpr double kEwmaAlpha = 0.3;
// Cooldown after a 429 without Retry-After.
constexpr absl::Duration kDefaultCooldown = absl::Seconds(1);

int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }
absl::Time FromNanos(int64_t ns) { return absl::FromUnixNanos(ns); }

void UpdateEwma(std::atomic<double>& ewma, double sample) {
  double current = ewma.load(std::memory_order_relaxed);
  double next;
  do {
    next = current < 0 ? sample : current + kEwmaAlpha * (sample - current);
  } while (!ewma.compare_exchange_weak(current, next, std::memory_order_relaxed));
}

// Raises `target` to at least `value`.
void StoreMax(std::atomic<int64_t>& target, int64_t value) {
  int64_t current = target.load(std::memory_order_relaxed);
  while (current < value &&
         !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

const char* CircuitStateName(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half-open";
  }
  return "closed";
}

EndpointState::EndpointState(std::string id, const CircuitOptions& options,
                             const core::Clock& clock)
    : id_(std::move(id)), clock_(clock) {
  SetOptions(options);
}

void EndpointState::SetOptions(const CircuitOptions& options) {
  consecutive_failures_threshold_.store(std::max<uint32_t>(1, options.consecutive_failures));
  error_ratio_.store(options.error_ratio);
  window_requests_.store(std::clamp<uint32_t>(options.window_requests, 1, 64));
  open_for_ns_.store(absl::ToInt64Nanoseconds(options.open_for));
}

EndpointReading EndpointState::Read(absl::Time now) const {
  EndpointReading reading;
  reading.circuit = static_cast<CircuitState>(state_.load(std::memory_order_acquire));
  if (reading.circuit == CircuitState::kOpen) {
    reading.open_until = FromNanos(open_until_ns_.load(std::memory_order_relaxed));
    if (now >= reading.open_until) reading.circuit = CircuitState::kHalfOpen;
  }
  if (reading.circuit == CircuitState::kHalfOpen) {
    reading.probe_in_flight = probe_in_flight_.load(std::memory_order_relaxed);
  }
  reading.cooldown_until = FromNanos(cooldown_until_ns_.load(std::memory_order_relaxed));
  double latency = latency_ewma_ms_.load(std::memory_order_relaxed);
  if (latency >= 0) reading.latency_ewma_ms = latency;
  double ttft = ttft_ewma_ms_.load(std::memory_order_relaxed);
  if (ttft >= 0) reading.ttft_ewma_ms = ttft;
  reading.in_flight = in_flight_.load(std::memory_order_relaxed);
  return reading;
}

bool EndpointState::BeginAttempt() {
  int state = state_.load(std::memory_order_acquire);
  if (state == static_cast<int>(CircuitState::kOpen)) {
    if (clock_.Now() < FromNanos(open_until_ns_.load(std::memory_order_relaxed))) return false;
    // Time is up: move to half-open (one of the racing callers wins; fine).
    state_.compare_exchange_strong(state, static_cast<int>(CircuitState::kHalfOpen));
    state = state_.load(std::memory_order_acquire);
  }
  if (state == static_cast<int>(CircuitState::kHalfOpen)) {
    bool expected = false;
    if (!probe_in_flight_.compare_exchange_strong(expected, true)) return false;
  } else if (state == static_cast<int>(CircuitState::kOpen)) {
    return false;
  }
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void EndpointState::OnSuccess(absl::Duration latency, std::optional<absl::Duration> ttft) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  UpdateEwma(latency_ewma_ms_, absl::ToDoubleMilliseconds(latency));
  if (ttft.has_value()) UpdateEwma(ttft_ewma_ms_, absl::ToDoubleMilliseconds(*ttft));
  consecutive_failures_.store(0, std::memory_order_relaxed);
  RecordOutcome(false);
  if (state_.load(std::memory_order_acquire) == static_cast<int>(CircuitState::kHalfOpen)) {
    // The probe came back healthy: close, with a clean window.
    outcomes_.store(0, std::memory_order_relaxed);
    outcome_count_.store(0, std::memory_order_relaxed);
    state_.store(static_cast<int>(CircuitState::kClosed), std::memory_order_release);
    probe_in_flight_.store(false, std::memory_order_relaxed);
  }
}

void EndpointState::OnFailure(FailureKind kind, std::optional<absl::Duration> retry_after) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  const absl::Time now = clock_.Now();
  if (retry_after.has_value() || kind == FailureKind::kRateLimited) {
    StoreMax(cooldown_until_ns_, ToNanos(now + retry_after.value_or(kDefaultCooldown)));
  }
  const int state = state_.load(std::memory_order_acquire);
  if (kind == FailureKind::kRateLimited) {
    // Busy, not broken; a half-open probe that hit a 429 proves nothing.
    if (state == static_cast<int>(CircuitState::kHalfOpen)) probe_in_flight_.store(false);
    return;
  }
  if (state == static_cast<int>(CircuitState::kHalfOpen)) return Open(now);
  const uint32_t failures = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  RecordOutcome(true);
  if (state != static_cast<int>(CircuitState::kClosed)) return;
  if (failures >= consecutive_failures_threshold_.load(std::memory_order_relaxed)) return Open(now);
  const uint32_t window = window_requests_.load(std::memory_order_relaxed);
  if (outcome_count_.load(std::memory_order_relaxed) < window) return;
  const uint64_t mask = window >= 64 ? ~uint64_t{0} : (uint64_t{1} << window) - 1;
  const double ratio =
      static_cast<double>(std::popcount(outcomes_.load(std::memory_order_relaxed) & mask)) / window;
  if (ratio >= error_ratio_.load(std::memory_order_relaxed)) Open(now);
}

void EndpointState::OnAbandoned() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

void EndpointState::Open(absl::Time now) {
  open_until_ns_.store(ToNanos(now) + open_for_ns_.load(std::memory_order_relaxed),
                       std::memory_order_relaxed);
  probe_in_flight_.store(false, std::memory_order_relaxed);
  consecutive_failures_.store(0, std::memory_order_relaxed);
  state_.store(static_cast<int>(CircuitState::kOpen), std::memory_order_release);
}

void EndpointState::RecordOutcome(bool failure) {
  uint64_t current = outcomes_.load(std::memory_order_relaxed);
  while (!outcomes_.compare_exchange_weak(current, (current << 1) | (failure ? 1 : 0),
                                          std::memory_order_relaxed)) {
  }
  uint32_t count = outcome_count_.load(std::memory_order_relaxed);
  while (count < 64 &&
         !outcome_count_.compare_exchange_weak(count, count + 1, std::memory_order_relaxed)) {
  }
}

std::shared_ptr<EndpointState> EndpointStats::GetOrCreate(const std::string& id,
                                                          const CircuitOptions& options) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = states_.try_emplace(id, nullptr);
  if (inserted) {
    it->second = std::make_shared<EndpointState>(id, options, clock_);
  } else {
    it->second->SetOptions(options);
  }
  return it->second;
}

void EndpointStats::Retain(const std::vector<std::string>& keep) {
  absl::flat_hash_map<std::string, std::shared_ptr<EndpointState>> kept;
  absl::MutexLock lock(&mu_);
  for (const std::string& id : keep) {
    auto it = states_.find(id);
    if (it != states_.end()) kept.emplace(id, it->second);
  }
  states_.swap(kept);
}

std::shared_ptr<EndpointState> EndpointStats::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(id);
  return it == states_.end() ? nullptr : it->second;
}

}  // namespace flowork::router
