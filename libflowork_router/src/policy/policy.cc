// Compiles a RouterConfig into flat tables (capability and zone bitmasks,
// flattened route candidates) so a plan is a few passes over small arrays.

#include "flowork/router/policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "flowork/router/config_validation.h"
#include "stable_hash.h"

namespace flowork::router {
namespace {

constexpr uint64_t kUnknownCapabilityBit = uint64_t{1} << 63;
constexpr uint64_t kAllZones = ~uint64_t{0};

struct CompiledEndpoint {
  Endpoint endpoint;
  std::shared_ptr<EndpointState> state;
  uint64_t capabilities = 0;
  uint64_t zone_bit = 0;  // 0 for a provider without a zone.
  uint64_t id_hash = 0;
  double input_usd_per_token = 0;
  double output_usd_per_token = 0;
  uint32_t context_window = 0;  // 0 = unknown: no context filter.
  uint32_t max_concurrency = 64;
};

struct CompiledRoute {
  std::string name;
  v1::Route::Objective objective = v1::Route::OBJECTIVE_PRIORITY;
  std::vector<int> candidates;  // Indices into endpoints_.
  std::vector<double> weights;  // Per candidate.
  uint64_t required_capabilities = 0;
  uint64_t zones = kAllZones;
  std::optional<double> max_cost_usd;
  RetrySettings retry;
  FallbackSettings fallback;
  std::optional<absl::Duration> hedge_after;
};

// A candidate that passed the filters, with what ordering needs.
struct Kept {
  int endpoint;
  EndpointReading reading;
  double weight;
};
// Routes rarely have more candidates than this: no allocation per request.
using KeptList = absl::InlinedVector<Kept, 4>;

const char* ObjectiveName(v1::Route::Objective objective) {
  switch (objective) {
    case v1::Route::OBJECTIVE_WEIGHTED:
      return "weighted";
    case v1::Route::OBJECTIVE_LEAST_LATENCY:
      return "least_latency";
    case v1::Route::OBJECTIVE_LEAST_BUSY:
      return "least_busy";
    case v1::Route::OBJECTIVE_LOWEST_COST:
      return "lowest_cost";
    case v1::Route::OBJECTIVE_ROUND_ROBIN:
      return "round_robin";
    case v1::Route::OBJECTIVE_AFFINITY:
      return "affinity";
    default:
      return "priority";
  }
}

CircuitOptions CircuitFrom(const v1::CircuitBreaker& circuit) {
  CircuitOptions options;
  if (circuit.consecutive_failures() > 0) {
    options.consecutive_failures = circuit.consecutive_failures();
  }
  if (circuit.error_ratio() > 0) options.error_ratio = circuit.error_ratio();
  if (circuit.window_requests() > 0) options.window_requests = circuit.window_requests();
  if (circuit.has_open_for()) {
    options.open_for =
        absl::Seconds(circuit.open_for().seconds()) + absl::Nanoseconds(circuit.open_for().nanos());
  }
  return options;
}

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

RetrySettings RetryWithDefaults(const v1::Route* route) {
  RetrySettings retry;
  if (route == nullptr || !route->has_retry()) return retry;
  retry.same_endpoint = route->retry().same_endpoint();
  if (route->retry().has_backoff()) retry.backoff = ToDuration(route->retry().backoff());
  if (route->retry().has_max_wait()) retry.max_wait = ToDuration(route->retry().max_wait());
  return retry;
}

FallbackSettings FallbackWithDefaults(const v1::Route* route) {
  FallbackSettings fallback;
  if (route == nullptr) return fallback;
  if (route->fallback().max_attempts() > 0)
    fallback.max_attempts = route->fallback().max_attempts();
  fallback.continue_on_cut = route->fallback().continue_on_cut();
  return fallback;
}

std::string FormatUsd(double usd) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "$%.6g", usd);
  return buffer;
}

class PolicyImpl final : public Policy, public std::enable_shared_from_this<PolicyImpl> {
 public:
  PolicyImpl(const v1::RouterConfig& config, EndpointStats& stats)
      : config_(config), catalog_(config_), keys_(config_), clock_(stats.clock()) {
    for (const v1::Tenant& tenant : config_.tenants()) tenants_.emplace(tenant.name(), &tenant);
  }

  void Compile(EndpointStats& stats);

  absl::StatusOr<AttemptPlan> Plan(const RequestView& request) const override;
  absl::StatusOr<AttemptPlan> Explain(const RequestView& request) const override;
  const v1::RouterConfig& config() const override { return config_; }
  const Catalog& catalog() const override { return catalog_; }
  const KeyRing& keys() const override { return keys_; }
  const v1::Tenant* FindTenant(std::string_view name) const override {
    auto it = tenants_.find(core::internal::ToAbsl(name));
    return it == tenants_.end() ? nullptr : it->second;
  }

  bool Names(std::string_view model) const override {
    return routes_.contains(core::internal::ToAbsl(model));
  }

 private:
  uint64_t CapabilityMask(const std::vector<std::string>& names) const;
  uint64_t ZoneMask(const std::vector<std::string>& names) const;
  absl::StatusOr<AttemptPlan> Build(const RequestView& request) const;
  void Order(const CompiledRoute& route, const RequestView& request, uint64_t seed,
             KeptList& kept) const;

  const v1::RouterConfig config_;
  absl::flat_hash_map<std::string, const v1::Tenant*> tenants_;
  const Catalog catalog_;
  const KeyRing keys_;
  const core::Clock& clock_;
  std::vector<CompiledEndpoint> endpoints_;
  absl::flat_hash_map<std::string, CompiledRoute> routes_;  // Routes and models by name.
  absl::flat_hash_map<std::string, int> capability_bits_;
  std::vector<std::string> capability_names_;  // By bit.
  absl::flat_hash_map<std::string, int> zone_bits_;
};

uint64_t PolicyImpl::CapabilityMask(const std::vector<std::string>& names) const {
  uint64_t mask = 0;
  for (const std::string& name : names) {
    auto it = capability_bits_.find(name);
    mask |= it == capability_bits_.end() ? kUnknownCapabilityBit : uint64_t{1} << it->second;
  }
  return mask;
}

uint64_t PolicyImpl::ZoneMask(const std::vector<std::string>& names) const {
  if (names.empty()) return kAllZones;
  uint64_t mask = 0;
  for (const std::string& name : names) {
    auto it = zone_bits_.find(name);
    if (it != zone_bits_.end()) mask |= uint64_t{1} << it->second;
  }
  return mask;
}

void PolicyImpl::Compile(EndpointStats& stats) {
  auto bit_of = [](absl::flat_hash_map<std::string, int>& bits, const std::string& name) {
    auto [it, inserted] = bits.try_emplace(name, static_cast<int>(bits.size()));
    return it->second;
  };
  // Route requirements may name capabilities no model has: give them bits too.
  std::vector<std::string> all_capabilities;
  for (const v1::Model& model : config_.models()) {
    all_capabilities.insert(all_capabilities.end(), model.capabilities().begin(),
                            model.capabilities().end());
  }
  for (const v1::Route& route : config_.routes()) {
    all_capabilities.insert(all_capabilities.end(), route.require().capabilities().begin(),
                            route.require().capabilities().end());
  }
  for (const std::string& capability : all_capabilities) {
    if (capability_bits_.size() < 63 && !capability_bits_.contains(capability)) {
      capability_names_.push_back(capability);
      bit_of(capability_bits_, capability);
    }
  }
  absl::flat_hash_map<std::string, const v1::Provider*> providers;
  for (const v1::Provider& provider : config_.providers()) {
    providers[provider.name()] = &provider;
    if (!provider.zone().empty() && zone_bits_.size() < 63) bit_of(zone_bits_, provider.zone());
  }
  absl::flat_hash_map<std::string, int> endpoint_index;
  std::vector<std::string> ids;
  for (const v1::Model& model : config_.models()) {
    const v1::Provider* provider = providers.at(model.provider());
    CompiledEndpoint e;
    const std::string id = absl::StrCat(model.name(), "@", provider->name());
    e.state = stats.GetOrCreate(id, CircuitFrom(provider->circuit()));
    e.endpoint = {&model, provider, e.state.get()};
    e.capabilities = CapabilityMask({model.capabilities().begin(), model.capabilities().end()});
    auto zone = zone_bits_.find(provider->zone());
    if (zone != zone_bits_.end()) e.zone_bit = uint64_t{1} << zone->second;
    e.id_hash = StableHash(id);
    e.input_usd_per_token = model.price().input_per_mtok() / 1e6;
    e.output_usd_per_token = model.price().output_per_mtok() / 1e6;
    e.context_window = model.context_window();
    if (provider->max_concurrency() > 0) e.max_concurrency = provider->max_concurrency();
    endpoint_index[model.name()] = static_cast<int>(endpoints_.size());
    endpoints_.push_back(std::move(e));
    ids.push_back(id);
    // Asking for a model by name is a route of one.
    CompiledRoute direct;
    direct.name = model.name();
    direct.candidates = {endpoint_index[model.name()]};
    direct.weights = {1};
    direct.retry = RetryWithDefaults(nullptr);
    direct.fallback = FallbackWithDefaults(nullptr);
    routes_[model.name()] = std::move(direct);
  }
  stats.Retain(ids);

  absl::flat_hash_map<std::string, const v1::Route*> routes;
  for (const v1::Route& route : config_.routes()) routes[route.name()] = &route;
  // Flattens nested routes in candidate order; validation ruled out cycles.
  std::function<void(const v1::Route&, std::vector<int>&)> flatten = [&](const v1::Route& route,
                                                                         std::vector<int>& out) {
    for (const std::string& name : route.candidates()) {
      auto model = endpoint_index.find(name);
      if (model != endpoint_index.end()) {
        if (std::find(out.begin(), out.end(), model->second) == out.end()) {
          out.push_back(model->second);
        }
      } else {
        flatten(*routes.at(name), out);
      }
    }
  };
  for (const v1::Route& route : config_.routes()) {
    CompiledRoute compiled;
    compiled.name = route.name();
    compiled.objective = route.objective() == v1::Route::OBJECTIVE_UNSPECIFIED
                             ? v1::Route::OBJECTIVE_PRIORITY
                             : route.objective();
    flatten(route, compiled.candidates);
    for (int index : compiled.candidates) {
      auto weight = route.weights().find(endpoints_[index].endpoint.model->name());
      compiled.weights.push_back(weight == route.weights().end() ? 1.0 : weight->second);
    }
    compiled.required_capabilities = CapabilityMask(
        {route.require().capabilities().begin(), route.require().capabilities().end()});
    compiled.zones = ZoneMask({route.require().zones().begin(), route.require().zones().end()});
    if (route.require().has_max_cost_usd()) compiled.max_cost_usd = route.require().max_cost_usd();
    compiled.retry = RetryWithDefaults(&route);
    compiled.fallback = FallbackWithDefaults(&route);
    if (route.has_hedge()) {
      compiled.hedge_after = ToDuration(route.hedge().after());
    }
    routes_[route.name()] = std::move(compiled);
  }
}

void PolicyImpl::Order(const CompiledRoute& route, const RequestView& request, uint64_t seed,
                       KeptList& kept) const {
  if (kept.size() < 2) return;
  const size_t n = kept.size();
  switch (route.objective) {
    case v1::Route::OBJECTIVE_WEIGHTED: {
      // A Weyl sequence over the seed: consecutive seeds spread their picks
      // over the weights with low discrepancy, so shares converge fast.
      double total = 0;
      for (const Kept& k : kept) total += k.weight;
      const double u = static_cast<double>(seed * 0x9E3779B97F4A7C15ULL) / 18446744073709551616.0;
      double point = u * total;
      size_t chosen = n - 1;
      for (size_t i = 0; i < n; ++i) {
        if (point < kept[i].weight) {
          chosen = i;
          break;
        }
        point -= kept[i].weight;
      }
      std::rotate(kept.begin(), kept.begin() + chosen, kept.begin() + chosen + 1);
      return;
    }
    case v1::Route::OBJECTIVE_ROUND_ROBIN:
      std::rotate(kept.begin(), kept.begin() + static_cast<size_t>(seed % n), kept.end());
      return;
    case v1::Route::OBJECTIVE_LEAST_BUSY: {
      auto load = [this](const Kept& k) {
        return static_cast<double>(k.reading.in_flight) / endpoints_[k.endpoint].max_concurrency;
      };
      std::stable_sort(kept.begin(), kept.end(),
                       [&](const Kept& a, const Kept& b) { return load(a) < load(b); });
      return;
    }
    case v1::Route::OBJECTIVE_LOWEST_COST: {
      auto cost = [&](const Kept& k) {
        const CompiledEndpoint& e = endpoints_[k.endpoint];
        return request.estimated_prompt_tokens * e.input_usd_per_token +
               request.max_tokens * e.output_usd_per_token;
      };
      std::stable_sort(kept.begin(), kept.end(),
                       [&](const Kept& a, const Kept& b) { return cost(a) < cost(b); });
      return;
    }
    case v1::Route::OBJECTIVE_LEAST_LATENCY: {
      // Unmeasured endpoints score 0 so they get measured. Streams rank by
      // time to first token, whole responses by latency.
      auto score = [&](const Kept& k) {
        const std::optional<double>& ms = request.stream && k.reading.ttft_ewma_ms
                                              ? k.reading.ttft_ewma_ms
                                              : k.reading.latency_ewma_ms;
        return ms.value_or(0.0);
      };
      std::stable_sort(kept.begin(), kept.end(),
                       [&](const Kept& a, const Kept& b) { return score(a) < score(b); });
      // Power of two choices for the first pick: the better of two drawn
      // at random, so replicas with the same stats do not all herd onto
      // the single fastest endpoint.
      const size_t first = Mix64(seed) % n;
      size_t second = Mix64(seed ^ 0x5851F42D4C957F2DULL) % (n - 1);
      if (second >= first) ++second;
      // Sorted, so the lower index of the two is the better one.
      const size_t winner = std::min(first, second);
      std::rotate(kept.begin(), kept.begin() + winner, kept.begin() + winner + 1);
      return;
    }
    case v1::Route::OBJECTIVE_AFFINITY: {
      if (request.affinity_key.empty()) return;  // Priority order.
      // Rendezvous hashing: removing an endpoint moves only its own keys.
      const uint64_t key = StableHash(request.affinity_key);
      std::stable_sort(kept.begin(), kept.end(), [&](const Kept& a, const Kept& b) {
        return Mix64(key ^ endpoints_[a.endpoint].id_hash) >
               Mix64(key ^ endpoints_[b.endpoint].id_hash);
      });
      return;
    }
    default:
      return;  // Priority: configuration order.
  }
}

absl::StatusOr<AttemptPlan> PolicyImpl::Build(const RequestView& request) const {
  auto route_it = routes_.find(request.model);
  if (route_it == routes_.end()) {
    return absl::NotFoundError(absl::StrCat("no model or route named \"", request.model, "\""));
  }
  const CompiledRoute& route = route_it->second;
  const uint64_t seed = request.seed.value_or(0);
  const uint64_t required =
      route.required_capabilities | CapabilityMask(request.required_capabilities);
  const uint64_t key_zones = ZoneMask(request.key_zones);
  const uint64_t header_zones = ZoneMask(request.header_zones);
  const uint32_t needed_context = request.estimated_prompt_tokens + request.max_tokens;
  const absl::Time now = clock_.Now();

  AttemptPlan plan;
  plan.target = route.name;
  plan.objective = ObjectiveName(route.objective);
  plan.seed = seed;
  plan.retry = route.retry;
  plan.fallback = route.fallback;
  plan.hedge_after = route.hedge_after;
  plan.snapshot = shared_from_this();
  plan.decisions.resize(route.candidates.size());
  KeptList kept;
  kept.reserve(route.candidates.size());

  for (size_t i = 0; i < route.candidates.size(); ++i) {
    const CompiledEndpoint& e = endpoints_[route.candidates[i]];
    CandidateDecision& d = plan.decisions[i];
    d.endpoint = e.endpoint;
    if (const uint64_t missing = required & ~e.capabilities; missing != 0) {
      d.reason = DropReason::kMissingCapability;
      // Name the first missing capability, as configured or as requested.
      for (size_t bit = 0; bit < capability_names_.size(); ++bit) {
        if (missing & (uint64_t{1} << bit)) {
          d.detail = capability_names_[bit];
          break;
        }
      }
      if (d.detail.empty()) {
        for (const std::string& name : request.required_capabilities) {
          if (!capability_bits_.contains(name)) {
            d.detail = name;
            break;
          }
        }
      }
    } else if (e.context_window > 0 && needed_context > e.context_window) {
      d.reason = DropReason::kContextTooSmall;
      d.number = e.context_window;
      d.needed = needed_context;
    } else if (route.zones != kAllZones && !(e.zone_bit & route.zones)) {
      d.reason = DropReason::kZoneNotAllowedByRoute;
      d.detail = e.endpoint.provider->zone();
      d.subject = route.name;
    } else if (key_zones != kAllZones && !(e.zone_bit & key_zones)) {
      d.reason = DropReason::kZoneNotAllowedByKey;
      d.detail = e.endpoint.provider->zone();
      d.subject = request.key_name;
    } else if (header_zones != kAllZones && !(e.zone_bit & header_zones)) {
      d.reason = DropReason::kZoneNotAllowedByHeader;
      d.detail = e.endpoint.provider->zone();
    } else if (route.max_cost_usd.has_value() &&
               request.estimated_prompt_tokens * e.input_usd_per_token +
                       request.max_tokens * e.output_usd_per_token >
                   *route.max_cost_usd) {
      d.reason = DropReason::kOverCostCeiling;
      d.number = request.estimated_prompt_tokens * e.input_usd_per_token +
                 request.max_tokens * e.output_usd_per_token;
      d.needed = *route.max_cost_usd;
    } else {
      EndpointReading reading = e.state->Read(now);
      if (reading.circuit == CircuitState::kOpen) {
        d.reason = DropReason::kCircuitOpen;
        d.until = reading.open_until;
      } else if (reading.circuit == CircuitState::kHalfOpen && reading.probe_in_flight) {
        d.reason = DropReason::kProbeInFlight;
      } else if (now < reading.cooldown_until) {
        d.reason = DropReason::kCoolingDown;
        d.until = reading.cooldown_until;
      } else {
        kept.push_back({route.candidates[i], reading, route.weights[i]});
      }
    }
  }
  Order(route, request, seed, kept);
  plan.attempts.reserve(kept.size());
  for (const Kept& k : kept) plan.attempts.push_back(endpoints_[k.endpoint].endpoint);
  return plan;
}

absl::StatusOr<AttemptPlan> PolicyImpl::Explain(const RequestView& request) const {
  return Build(request);
}

absl::StatusOr<AttemptPlan> PolicyImpl::Plan(const RequestView& request) const {
  FLOWORK_ASSIGN_OR_RETURN(AttemptPlan plan, Build(request));
  if (plan.attempts.empty()) {
    std::vector<std::string> reasons;
    for (const CandidateDecision& d : plan.decisions) {
      reasons.push_back(absl::StrCat(d.endpoint.model->name(), ": ", d.Explain()));
    }
    return absl::FailedPreconditionError(absl::StrCat("no candidate of \"", plan.target,
                                                      "\" can serve the request (",
                                                      absl::StrJoin(reasons, "; "), ")"));
  }
  return plan;
}

}  // namespace

std::string CandidateDecision::Explain() const {
  auto time = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  };
  switch (reason) {
    case DropReason::kKept:
      return "kept";
    case DropReason::kMissingCapability:
      return absl::StrCat("missing capability ", detail);
    case DropReason::kContextTooSmall:
      return absl::StrCat("context ", number, " < needed ", needed);
    case DropReason::kZoneNotAllowedByRoute:
      return absl::StrCat("zone ", detail.empty() ? "(none)" : detail, " not allowed by route ",
                          subject);
    case DropReason::kZoneNotAllowedByKey:
      return absl::StrCat("zone ", detail.empty() ? "(none)" : detail, " not allowed for key ",
                          subject.empty() ? "(anonymous)" : subject);
    case DropReason::kZoneNotAllowedByHeader:
      return absl::StrCat("zone ", detail.empty() ? "(none)" : detail,
                          " not allowed by x-flowork-zone");
    case DropReason::kOverCostCeiling:
      return absl::StrCat("estimated cost ", FormatUsd(number), " > ceiling ", FormatUsd(needed));
    case DropReason::kCircuitOpen:
      return absl::StrCat("circuit open until ", time(until));
    case DropReason::kProbeInFlight:
      return "circuit half-open, probe in flight";
    case DropReason::kCoolingDown:
      return absl::StrCat("cooling down until ", time(until), " (Retry-After)");
  }
  return "kept";
}

std::string AttemptPlan::Explain() const {
  std::string out = absl::StrCat(target, " (", objective, ", seed ", seed, ")\n");
  for (size_t i = 0; i < attempts.size(); ++i) {
    absl::StrAppend(&out, "  try ", i + 1, ": ", attempts[i].model->name(), "@",
                    attempts[i].provider->name(), "\n");
  }
  for (const CandidateDecision& d : decisions) {
    absl::StrAppend(&out, "  ", d.endpoint.model->name(), "@", d.endpoint.provider->name(), ": ",
                    d.Explain(), "\n");
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const Policy>> Policy::Create(const v1::RouterConfig& config,
                                                             EndpointStats& stats) {
  FLOWORK_RETURN_IF_ERROR(ValidateRouterConfig(config));
  auto policy = std::make_shared<PolicyImpl>(config, stats);
  policy->Compile(stats);
  return policy;
}

absl::StatusOr<std::unique_ptr<PolicyEngine>> PolicyEngine::Create(const v1::RouterConfig& config,
                                                                   const core::Clock& clock) {
  std::unique_ptr<PolicyEngine> engine(new PolicyEngine(clock));
  FLOWORK_RETURN_IF_ERROR(engine->ApplyConfig(config));
  return engine;
}

absl::Status PolicyEngine::ApplyConfig(const v1::RouterConfig& config) {
  FLOWORK_ASSIGN_OR_RETURN(std::shared_ptr<const Policy> policy, Policy::Create(config, stats_));
  absl::MutexLock lock(&mu_);
  current_ = std::move(policy);
  return absl::OkStatus();
}

std::shared_ptr<const Policy> PolicyEngine::Current() const {
  absl::ReaderMutexLock lock(&mu_);
  return current_;
}

absl::StatusOr<AttemptPlan> PolicyEngine::Plan(RequestView request) const {
  return Plan(*Current(), std::move(request));
}

absl::StatusOr<AttemptPlan> PolicyEngine::Explain(RequestView request) const {
  return Explain(*Current(), std::move(request));
}

absl::StatusOr<AttemptPlan> PolicyEngine::Plan(const Policy& snapshot, RequestView request) const {
  if (!request.seed) request.seed = next_seed_.fetch_add(1, std::memory_order_relaxed);
  return snapshot.Plan(request);
}

absl::StatusOr<AttemptPlan> PolicyEngine::Explain(const Policy& snapshot,
                                                  RequestView request) const {
  if (!request.seed) request.seed = next_seed_.fetch_add(1, std::memory_order_relaxed);
  return snapshot.Explain(request);
}

}  // namespace flowork::router
