#ifndef FLOWORK_ROUTER_SRC_GOVERNANCE_GATEWAY_METRICS_H_
#define FLOWORK_ROUTER_SRC_GOVERNANCE_GATEWAY_METRICS_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "flowork/core/metrics.h"
#include "flowork/router/audit_log.h"
#include "flowork/router/endpoint_stats.h"
#include "providers/translation.h"

namespace flowork::router {

// The gateway's series on /metrics. Each label set is looked up in the
// registry once and cached, so a request costs a map probe under a reader
// lock (none when the thread's previous request had the same labels) plus
// atomic adds, and allocates nothing once warm. Thread-safe.
class GatewayMetrics {
 public:
  // `registry` must outlive this.
  explicit GatewayMetrics(core::MetricsRegistry& registry);

  // One finished request: `model` as asked ("" when it named no model or
  // route of the config: callers must not mint series), `endpoint` that
  // answered ("" if none), the status the caller got, and whether it failed.
  void Request(std::string_view model, std::string_view endpoint, int status, bool failed,
               absl::Duration latency, std::optional<absl::Duration> ttft, const TokenUsage& usage,
               double cost_usd);

  // A request refused by a limit or budget; `scope` names it (key_rpm, ...).
  void LimiterRejection(std::string_view scope);

  // The circuit of `endpoint` ("model@provider") is now `state`. Cheap when
  // nothing changed: the gauge is written only on a change.
  void Circuit(std::string_view endpoint, CircuitState state);

  // The audit log's counters after an append; `dropped` when it refused one.
  void Audit(const AuditLogStats& stats, bool dropped);

 private:
  struct Series {
    core::Counter* requests;
    core::Counter* errors;
  };
  struct EndpointSeries {
    core::Histogram* latency;
    core::Histogram* ttft;
    core::Counter* prompt_tokens;
    core::Counter* completion_tokens;
    core::Counter* cached_tokens;
    core::Counter* cost;
  };
  struct CircuitSeries {
    core::Gauge* gauge = nullptr;
    std::atomic<int> published{-1};  // The state last written; -1 before the first.
    absl::Mutex mu;                  // Keeps `published` and the gauge in step.
  };
  // The series of one (model, endpoint): one map probe a request books all
  // its series with. `endpoint` is set once, when the endpoint is named.
  struct RouteSeries {
    std::optional<EndpointSeries> endpoint;
    absl::InlinedVector<std::pair<int, Series>, 4> by_status;  // few codes per route
  };
  struct Booked {
    Series request;
    const EndpointSeries* endpoint;  // nullptr when no endpoint answered
  };
  // The series of a label set: the calling thread's last one when it
  // matches, else LookUp's.
  Booked ForRoute(std::string_view model, std::string_view endpoint, int status);
  // The map probe, and the registry's series the first time a label set
  // comes.
  Booked LookUp(std::string_view model, std::string_view endpoint, int status);
  Series MakeRequestSeries(std::string_view model, std::string_view endpoint, int status);
  EndpointSeries MakeEndpointSeries(std::string_view model, std::string_view endpoint);
  CircuitSeries& ForCircuit(std::string_view endpoint);

  const uint64_t instance_;  // Tells ForRoute's per-thread cache whose it is.
  core::MetricsRegistry& registry_;
  core::Gauge& audit_queue_;
  core::Gauge& audit_written_;
  core::Counter& audit_dropped_;
  absl::Mutex mu_;
  // Node maps: the series found are used after the lock is released, so
  // they must stay put while other threads insert.
  absl::node_hash_map<std::string, RouteSeries> routes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<CircuitSeries>> circuits_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_SRC_GOVERNANCE_GATEWAY_METRICS_H_
