#include "governance/gateway_metrics.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::router {
namespace {

using core::internal::ToAbsl;

// The cache key of a label set, built in a per-thread buffer: a lookup that
// finds its series allocates nothing.
absl::string_view SeriesKey(std::string_view model, std::string_view endpoint, int status) {
  thread_local std::string key;
  key.clear();
  key.append(model).append(1, '\n').append(endpoint);
  if (status >= 0) absl::StrAppend(&key, "\n", status);
  return key;
}

const std::vector<double>& LatencyBuckets() {
  static const auto* const buckets =
      new std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

}  // namespace

GatewayMetrics::GatewayMetrics(core::MetricsRegistry& registry)
    : registry_(registry),
      audit_queue_(registry.GetGauge("flowork_router_audit_queue_depth",
                                     "Audit entries waiting for the writer.")),
      audit_written_(registry.GetGauge("flowork_router_audit_written",
                                       "Audit entries committed since start.")),
      audit_dropped_(registry.GetCounter("flowork_router_audit_dropped_total",
                                         "Audit entries dropped by a full queue.")) {}

GatewayMetrics::Series& GatewayMetrics::RequestSeries(std::string_view model,
                                                      std::string_view endpoint, int status) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = series_.find(SeriesKey(model, endpoint, status)); it != series_.end()) {
      return it->second;
    }
  }
  std::string id(SeriesKey(model, endpoint, status));
  const core::MetricLabels labels = {{"model", std::string(model)},
                                     {"endpoint", std::string(endpoint)},
                                     {"code", absl::StrCat(status)}};
  Series series{
      &registry_.GetCounter("flowork_router_requests_total", "Requests by outcome.", labels),
      &registry_.GetCounter("flowork_router_request_errors_total",
                            "Requests that failed (error status or a broken stream).", labels)};
  absl::MutexLock lock(&mu_);
  return series_.try_emplace(std::move(id), series).first->second;
}

GatewayMetrics::EndpointSeries& GatewayMetrics::ForEndpoint(std::string_view model,
                                                            std::string_view endpoint) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = endpoints_.find(SeriesKey(model, endpoint, -1)); it != endpoints_.end()) {
      return it->second;
    }
  }
  std::string id(SeriesKey(model, endpoint, -1));
  const core::MetricLabels labels = {{"model", std::string(model)},
                                     {"endpoint", std::string(endpoint)}};
  auto tokens = [&](const char* kind) -> core::Counter* {
    core::MetricLabels with_kind = labels;
    with_kind["kind"] = kind;
    return &registry_.GetCounter("flowork_router_tokens_total", "Tokens by kind.", with_kind);
  };
  EndpointSeries series{
      &registry_.GetHistogram("flowork_router_request_duration_seconds",
                              "Time from request to the end of the answer.", LatencyBuckets(),
                              labels),
      &registry_.GetHistogram("flowork_router_ttft_seconds", "Time to the first streamed token.",
                              LatencyBuckets(), labels),
      tokens("prompt"),
      tokens("completion"),
      tokens("cached"),
      &registry_.GetCounter("flowork_router_cost_usd_total", "Cost from the price table.", labels)};
  absl::MutexLock lock(&mu_);
  return endpoints_.try_emplace(std::move(id), series).first->second;
}

GatewayMetrics::CircuitSeries& GatewayMetrics::ForCircuit(std::string_view endpoint) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = circuits_.find(ToAbsl(endpoint)); it != circuits_.end()) return *it->second;
  }
  auto series = std::make_unique<CircuitSeries>();
  series->gauge = &registry_.GetGauge("flowork_router_circuit_state",
                                      "Circuit of each endpoint: 0 closed, 1 half-open, 2 open.",
                                      {{"endpoint", std::string(endpoint)}});
  absl::MutexLock lock(&mu_);
  return *circuits_.try_emplace(std::string(endpoint), std::move(series)).first->second;
}

void GatewayMetrics::Request(std::string_view model, std::string_view endpoint, int status,
                             bool failed, absl::Duration latency,
                             std::optional<absl::Duration> ttft, const TokenUsage& usage,
                             double cost_usd) {
  Series& series = RequestSeries(model, endpoint, status);
  series.requests->Increment();
  if (failed) series.errors->Increment();
  if (endpoint.empty()) return;  // Nothing was answered: no latency or usage to book.
  EndpointSeries& by_endpoint = ForEndpoint(model, endpoint);
  by_endpoint.latency->Observe(absl::ToDoubleSeconds(latency));
  if (ttft) by_endpoint.ttft->Observe(absl::ToDoubleSeconds(*ttft));
  if (usage.prompt_tokens > 0)
    by_endpoint.prompt_tokens->Increment(static_cast<double>(usage.prompt_tokens));
  if (usage.completion_tokens > 0)
    by_endpoint.completion_tokens->Increment(static_cast<double>(usage.completion_tokens));
  if (usage.cached_prompt_tokens > 0)
    by_endpoint.cached_tokens->Increment(static_cast<double>(usage.cached_prompt_tokens));
  if (cost_usd > 0) by_endpoint.cost->Increment(cost_usd);
}

void GatewayMetrics::LimiterRejection(std::string_view scope) {
  registry_
      .GetCounter("flowork_router_limiter_rejections_total",
                  "Requests refused by a rate limit or budget.", {{"scope", std::string(scope)}})
      .Increment();
}

void GatewayMetrics::Circuit(std::string_view endpoint, CircuitState state) {
  const int value = state == CircuitState::kClosed ? 0 : state == CircuitState::kHalfOpen ? 1 : 2;
  CircuitSeries& series = ForCircuit(endpoint);
  if (series.published.load(std::memory_order_relaxed) == value) return;
  absl::MutexLock lock(&series.mu);
  series.published.store(value, std::memory_order_relaxed);
  series.gauge->Set(value);
}

void GatewayMetrics::Audit(const AuditLogStats& stats, bool dropped) {
  audit_queue_.Set(static_cast<double>(stats.queued));
  audit_written_.Set(static_cast<double>(stats.written));
  if (dropped) audit_dropped_.Increment();
}

}  // namespace flowork::router
