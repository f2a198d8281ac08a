#include "governance/gateway_metrics.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::router {
namespace {

using core::internal::ToAbsl;

// The cache key of a (model, endpoint), built in a per-thread buffer: a
// lookup that finds its series allocates nothing.
absl::string_view SeriesKey(std::string_view model, std::string_view endpoint) {
  thread_local std::string key;
  key.clear();
  key.append(model).append(1, '\n').append(endpoint);
  return key;
}

// Each GatewayMetrics' own number, so a thread's cached lookup (below) is
// never taken for another instance's, even one at the same address.
std::atomic<uint64_t> next_instance{1};

const std::vector<double>& LatencyBuckets() {
  static const auto* const buckets =
      new std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

}  // namespace

GatewayMetrics::GatewayMetrics(core::MetricsRegistry& registry)
    : instance_(next_instance.fetch_add(1, std::memory_order_relaxed)),
      registry_(registry),
      audit_queue_(registry.GetGauge("flowork_router_audit_queue_depth",
                                     "Audit entries waiting for the writer.")),
      audit_written_(registry.GetGauge("flowork_router_audit_written",
                                       "Audit entries committed since start.")),
      audit_dropped_(registry.GetCounter("flowork_router_audit_dropped_total",
                                         "Audit entries dropped by a full queue.")) {}

GatewayMetrics::Booked GatewayMetrics::ForRoute(std::string_view model, std::string_view endpoint,
                                                int status) {
  // A thread serves the same few routes over and over: the last label set
  // it booked is kept, and a request like the one before takes no lock and
  // no hash. What it points to stays put (the registry's series, the node
  // map's entries) while this instance lives; the instance number keeps
  // another instance from using it.
  struct LastBooked {
    uint64_t instance = 0;
    int status = 0;
    std::string model;
    std::string endpoint;
    Booked booked{};
  };
  thread_local LastBooked last;
  if (last.instance == instance_ && last.status == status && last.model == model &&
      last.endpoint == endpoint) {
    return last.booked;
  }
  const Booked booked = LookUp(model, endpoint, status);
  last.instance = instance_;
  last.status = status;
  last.model.assign(model);
  last.endpoint.assign(endpoint);
  last.booked = booked;
  return booked;
}

GatewayMetrics::Booked GatewayMetrics::LookUp(std::string_view model, std::string_view endpoint,
                                              int status) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = routes_.find(SeriesKey(model, endpoint)); it != routes_.end()) {
      const RouteSeries& route = it->second;
      for (const auto& [code, series] : route.by_status) {
        if (code == status) return {series, route.endpoint ? &*route.endpoint : nullptr};
      }
    }
  }
  // First time for this label set: the registry hands out the same series
  // for the same labels, so two threads racing here book the same ones.
  std::string id(SeriesKey(model, endpoint));
  const Series series = MakeRequestSeries(model, endpoint, status);
  std::optional<EndpointSeries> endpoint_series;
  if (!endpoint.empty()) endpoint_series = MakeEndpointSeries(model, endpoint);
  absl::MutexLock lock(&mu_);
  RouteSeries& route = routes_[std::move(id)];
  if (!route.endpoint) route.endpoint = endpoint_series;
  bool known = false;
  for (const auto& [code, booked] : route.by_status) known = known || code == status;
  if (!known) route.by_status.emplace_back(status, series);
  return {series, route.endpoint ? &*route.endpoint : nullptr};
}

GatewayMetrics::Series GatewayMetrics::MakeRequestSeries(std::string_view model,
                                                         std::string_view endpoint, int status) {
  const core::MetricLabels labels = {{"model", std::string(model)},
                                     {"endpoint", std::string(endpoint)},
                                     {"code", absl::StrCat(status)}};
  return Series{
      &registry_.GetCounter("flowork_router_requests_total", "Requests by outcome.", labels),
      &registry_.GetCounter("flowork_router_request_errors_total",
                            "Requests that failed (error status or a broken stream).", labels)};
}

GatewayMetrics::EndpointSeries GatewayMetrics::MakeEndpointSeries(std::string_view model,
                                                                  std::string_view endpoint) {
  const core::MetricLabels labels = {{"model", std::string(model)},
                                     {"endpoint", std::string(endpoint)}};
  auto tokens = [&](const char* kind) -> core::Counter* {
    core::MetricLabels with_kind = labels;
    with_kind["kind"] = kind;
    return &registry_.GetCounter("flowork_router_tokens_total", "Tokens by kind.", with_kind);
  };
  return EndpointSeries{
      &registry_.GetHistogram("flowork_router_request_duration_seconds",
                              "Time from request to the end of the answer.", LatencyBuckets(),
                              labels),
      &registry_.GetHistogram("flowork_router_ttft_seconds", "Time to the first streamed token.",
                              LatencyBuckets(), labels),
      tokens("prompt"),
      tokens("completion"),
      tokens("cached"),
      &registry_.GetCounter("flowork_router_cost_usd_total", "Cost from the price table.", labels)};
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
  const Booked booked = ForRoute(model, endpoint, status);
  booked.request.requests->Increment();
  if (failed) booked.request.errors->Increment();
  // Nothing was answered: no latency or usage to book.
  if (booked.endpoint == nullptr) return;
  const EndpointSeries& by_endpoint = *booked.endpoint;
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
