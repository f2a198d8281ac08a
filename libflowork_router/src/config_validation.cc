// Checks a RouterConfig as a whole and reports every problem at once, so a
// user fixes a file in one pass instead of one error per restart.

#include "flowork/router/config_validation.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"
#include "google/protobuf/duration.pb.h"

namespace flowork::router {
namespace {

constexpr const char* kKnownCapabilities[] = {"chat", "completion", "embeddings", "tools",
                                              "json", "vision",     "prefill"};
// EndpointState keeps its outcome window in one 64-bit word.
constexpr uint32_t kMaxCircuitWindow = 64;

bool IsKnownCapability(const std::string& name) {
  return std::any_of(std::begin(kKnownCapabilities), std::end(kKnownCapabilities),
                     [&](const char* known) { return name == known; });
}

bool HasUnknownCapability(const v1::Requirements& require) {
  return !std::all_of(require.capabilities().begin(), require.capabilities().end(),
                      IsKnownCapability);
}

std::string Quoted(const std::string& text) { return absl::StrCat("\"", text, "\""); }

std::string Indexed(const std::string& path, int index) {
  return absl::StrCat(path, "[", index, "]");
}

bool IsPositive(const google::protobuf::Duration& d) {
  return d.seconds() > 0 || (d.seconds() == 0 && d.nanos() > 0);
}

bool IsNegative(const google::protobuf::Duration& d) {
  return d.seconds() < 0 || (d.seconds() == 0 && d.nanos() < 0);
}

bool IsPositiveNumber(double value) { return std::isfinite(value) && value > 0; }

std::string ZoneList(const google::protobuf::RepeatedPtrField<std::string>& zones) {
  return absl::StrCat("[", absl::StrJoin(zones, ", "), "]");
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list,
              const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void AddUnique(std::vector<int>& list, int value) {
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

bool IsHostChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

// Why `url` is not an http:// or https:// base URL with a host, or empty when
// it is one.
std::string BaseUrlProblem(const std::string& url) {
  const std::string quoted = Quoted(url);
  if (url.empty()) return "must not be empty";
  if (std::any_of(url.begin(), url.end(), [](char c) { return absl::ascii_isspace(c); })) {
    return absl::StrCat(quoted, " contains whitespace");
  }
  const std::string lower = absl::AsciiStrToLower(url);
  size_t rest_at;
  if (absl::StartsWith(lower, "http://")) {
    rest_at = 7;
  } else if (absl::StartsWith(lower, "https://")) {
    rest_at = 8;
  } else {
    return absl::StrCat(quoted, " is not an http:// or https:// URL");
  }
  if (url.find_first_of("?#") != std::string::npos) {
    return absl::StrCat(quoted, " must not have a query or fragment");
  }
  const std::string rest = url.substr(rest_at);
  const std::string authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos) {
    return absl::StrCat(quoted, " must not carry credentials; use api_key_env or api_key_file");
  }
  std::string host;
  std::string port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return absl::StrCat(quoted, " has a bad host");
    host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return absl::StrCat(quoted, " has a bad host");
      has_port = true;
      port = after.substr(1);
    }
    if (host.empty()) return absl::StrCat(quoted, " has no host");
    if (!std::all_of(host.begin(), host.end(),
                     [](char c) { return absl::ascii_isxdigit(c) || c == ':' || c == '.'; })) {
      return absl::StrCat(quoted, " has a bad host ", Quoted(host));
    }
  } else {
    const size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
    }
    if (host.empty()) return absl::StrCat(quoted, " has no host");
    if (!std::all_of(host.begin(), host.end(), IsHostChar)) {
      return absl::StrCat(quoted, " has a bad host ", Quoted(host));
    }
  }
  if (has_port) {
    const bool digits = !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), absl::ascii_isdigit);
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return absl::StrCat(quoted, " has a bad port ", Quoted(port));
    }
  }
  return "";
}

bool IsLowerHexSha256(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

class Validator {
 public:
  explicit Validator(const v1::RouterConfig& config)
      : config_(config),
        flattened_(config.routes_size()),
        flattening_(config.routes_size(), false) {
    for (int i = 0; i < config.providers_size(); ++i) {
      providers_.try_emplace(config.providers(i).name(), i);
    }
    for (int i = 0; i < config.models_size(); ++i) models_.try_emplace(config.models(i).name(), i);
    for (int i = 0; i < config.routes_size(); ++i) routes_.try_emplace(config.routes(i).name(), i);
    for (int i = 0; i < config.tenants_size(); ++i) {
      tenants_.try_emplace(config.tenants(i).name(), i);
    }
    std::vector<int> state(config.routes_size(), 0);
    reaches_cycle_.assign(config.routes_size(), false);
    for (int i = 0; i < config.routes_size(); ++i) MarkCycles(i, state);
  }

  absl::Status Run() {
    CheckAuth();
    for (int i = 0; i < config_.providers_size(); ++i) CheckProvider(i);
    for (int i = 0; i < config_.models_size(); ++i) CheckModel(i);
    for (int i = 0; i < config_.routes_size(); ++i) CheckRoute(i);
    for (int i = 0; i < config_.tenants_size(); ++i) CheckTenant(i);
    for (int i = 0; i < config_.keys_size(); ++i) CheckKey(i);
    CheckLog();
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "\n"));
  }

 private:
  void Add(const std::string& path, const std::string& problem) {
    lines_.push_back(absl::StrCat(path, ": ", problem));
  }

  // Index of the model or route of that name, or -1. A name that is both
  // resolves to the model, as the policy does.
  int ModelIndex(const std::string& name) const {
    auto it = models_.find(name);
    return it == models_.end() ? -1 : it->second;
  }
  int RouteIndex(const std::string& name) const {
    if (ModelIndex(name) >= 0) return -1;
    auto it = routes_.find(name);
    return it == routes_.end() ? -1 : it->second;
  }
  // The provider of model `m`, or null when it names none.
  const v1::Provider* ProviderOf(int m) const {
    auto it = providers_.find(config_.models(m).provider());
    return it == providers_.end() ? nullptr : &config_.providers(it->second);
  }

  void CheckAuth();
  void CheckProvider(int i);
  void CheckModel(int i);
  void CheckRoute(int i);
  void CheckRouteCandidates(int i);
  void CheckRequirements(int i);
  void CheckWeights(int i);
  void CheckTenant(int i);
  void CheckLimitsAndBudget(const std::string& path, const v1::Limits& limits,
                            const v1::Budget& budget);
  void CheckKey(int i);
  void CheckKeyZones(int i);
  void CheckLog();

  bool MarkCycles(int route, std::vector<int>& state);
  const std::vector<int>& Flatten(int route);
  bool FindCycle(int origin, int node, std::vector<int>& path, std::vector<bool>& visited) const;
  std::string Unmet(const v1::Requirements& require, int model) const;
  bool InZones(int model, const google::protobuf::RepeatedPtrField<std::string>& zones) const;

  const v1::RouterConfig& config_;
  absl::flat_hash_map<std::string, int> providers_;  // First of each name.
  absl::flat_hash_map<std::string, int> models_;
  absl::flat_hash_map<std::string, int> routes_;
  absl::flat_hash_map<std::string, int> tenants_;
  std::vector<std::optional<std::vector<int>>> flattened_;  // Model indices, by route.
  std::vector<bool> flattening_;
  // Whether a route is on a cycle or leads into one: its flattened models
  // are then partial, so checks built on them are skipped.
  std::vector<bool> reaches_cycle_;
  const std::vector<int> none_;
  std::vector<std::string> lines_;
};

void Validator::CheckAuth() {
  const v1::AuthConfig::Mode mode = config_.auth().mode();
  if (!v1::AuthConfig::Mode_IsValid(mode)) {
    Add("auth.mode", absl::StrCat("unknown value ", static_cast<int>(mode)));
    return;
  }
  if (mode != v1::AuthConfig::MODE_NONE) return;
  // Empty listeners mean the loopback defaults.
  const std::pair<const char*, const std::string*> listeners[] = {
      {"listen.http", &config_.listen().http()}, {"listen.grpc", &config_.listen().grpc()}};
  for (const auto& [field, address] : listeners) {
    if (!address->empty() && !core::IsLoopbackAddress(*address)) {
      Add("auth.mode", absl::StrCat("none is refused on a non-loopback listener (", field, " ",
                                    Quoted(*address), ")"));
    }
  }
}

void Validator::CheckProvider(int i) {
  const v1::Provider& provider = config_.providers(i);
  const std::string path = Indexed("providers", i);
  if (provider.name().empty()) {
    Add(path + ".name", "must not be empty");
  } else if (int first = providers_.at(provider.name()); first != i) {
    Add(path + ".name", absl::StrCat("duplicate provider ", Quoted(provider.name()), " (also ",
                                     Indexed("providers", first), ")"));
  }
  if (!v1::Provider::Kind_IsValid(provider.kind())) {
    Add(path + ".kind", absl::StrCat("unknown value ", static_cast<int>(provider.kind())));
  } else if (provider.kind() == v1::Provider::KIND_UNSPECIFIED) {
    Add(path + ".kind", "must be set: openai, ollama, anthropic or mock");
  }
  if (std::string problem = BaseUrlProblem(provider.base_url()); !problem.empty()) {
    Add(path + ".base_url", problem);
  }
  if (!provider.api_key_env().empty() && !provider.api_key_file().empty()) {
    Add(path + ".api_key_file", "set api_key_env or api_key_file, not both");
  }
  const v1::Timeouts& timeouts = provider.timeouts();
  const std::pair<const char*, const google::protobuf::Duration*> durations[] = {
      {"connect", timeouts.has_connect() ? &timeouts.connect() : nullptr},
      {"first_byte", timeouts.has_first_byte() ? &timeouts.first_byte() : nullptr},
      {"first_token", timeouts.has_first_token() ? &timeouts.first_token() : nullptr},
      {"idle", timeouts.has_idle() ? &timeouts.idle() : nullptr},
      {"total", timeouts.has_total() ? &timeouts.total() : nullptr}};
  for (const auto& [field, duration] : durations) {
    if (duration != nullptr && !IsPositive(*duration)) {
      Add(absl::StrCat(path, ".timeouts.", field), "must be positive");
    }
  }
  const v1::CircuitBreaker& circuit = provider.circuit();
  if (circuit.error_ratio() != 0 && !(circuit.error_ratio() > 0 && circuit.error_ratio() <= 1)) {
    Add(path + ".circuit.error_ratio",
        absl::StrCat("must be in (0, 1], got ", circuit.error_ratio()));
  }
  if (circuit.window_requests() > kMaxCircuitWindow) {
    Add(path + ".circuit.window_requests", absl::StrCat("must be at most ", kMaxCircuitWindow));
  }
  if (circuit.has_open_for() && !IsPositive(circuit.open_for())) {
    Add(path + ".circuit.open_for", "must be positive");
  }
}

void Validator::CheckModel(int i) {
  const v1::Model& model = config_.models(i);
  const std::string path = Indexed("models", i);
  if (model.name().empty()) {
    Add(path + ".name", "must not be empty");
  } else if (int first = models_.at(model.name()); first != i) {
    Add(path + ".name", absl::StrCat("duplicate model ", Quoted(model.name()), " (also ",
                                     Indexed("models", first), ")"));
  }
  if (model.provider().empty()) {
    Add(path + ".provider", "must not be empty");
  } else if (!providers_.contains(model.provider())) {
    Add(path + ".provider", absl::StrCat("unknown provider ", Quoted(model.provider())));
  }
  for (int j = 0; j < model.capabilities_size(); ++j) {
    if (!IsKnownCapability(model.capabilities(j))) {
      Add(Indexed(path + ".capabilities", j),
          absl::StrCat("unknown capability ", Quoted(model.capabilities(j))));
    }
  }
  const std::pair<const char*, double> prices[] = {
      {"input_per_mtok", model.price().input_per_mtok()},
      {"output_per_mtok", model.price().output_per_mtok()},
      {"cached_input_per_mtok", model.price().cached_input_per_mtok()}};
  for (const auto& [field, price] : prices) {
    if (!(std::isfinite(price) && price >= 0)) {
      Add(absl::StrCat(path, ".price.", field), absl::StrCat("must not be negative, got ", price));
    }
  }
}

void Validator::CheckRoute(int i) {
  const v1::Route& route = config_.routes(i);
  const std::string path = Indexed("routes", i);
  if (route.name().empty()) {
    Add(path + ".name", "must not be empty");
  } else if (int model = ModelIndex(route.name()); model >= 0) {
    Add(path + ".name", absl::StrCat(Quoted(route.name()), " is already a model name (",
                                     Indexed("models", model), ")"));
  } else if (int first = routes_.at(route.name()); first != i) {
    Add(path + ".name", absl::StrCat("duplicate route ", Quoted(route.name()), " (also ",
                                     Indexed("routes", first), ")"));
  }
  CheckRouteCandidates(i);
  if (!v1::Route::Objective_IsValid(route.objective())) {
    Add(path + ".objective", absl::StrCat("unknown value ", static_cast<int>(route.objective())));
  }
  CheckRequirements(i);
  if (route.retry().has_backoff() && IsNegative(route.retry().backoff())) {
    Add(path + ".retry.backoff", "must not be negative");
  }
  if (route.retry().has_max_wait() && IsNegative(route.retry().max_wait())) {
    Add(path + ".retry.max_wait", "must not be negative");
  }
  if (route.has_hedge() && !(route.hedge().has_after() && IsPositive(route.hedge().after()))) {
    Add(path + ".hedge.after", "must be positive");
  }
  CheckWeights(i);
}

void Validator::CheckRouteCandidates(int i) {
  const v1::Route& route = config_.routes(i);
  const std::string path = Indexed("routes", i);
  if (route.candidates().empty()) {
    Add(path + ".candidates", "must not be empty");
    return;
  }
  absl::flat_hash_set<std::string> names;
  std::vector<int> reached;  // Models of the earlier candidates.
  for (int j = 0; j < route.candidates_size(); ++j) {
    const std::string& name = route.candidates(j);
    const std::string candidate_path = Indexed(path + ".candidates", j);
    const int model = ModelIndex(name);
    const int nested = RouteIndex(name);
    if (model < 0 && nested < 0) {
      Add(candidate_path, absl::StrCat("unknown model or route ", Quoted(name)));
      continue;
    }
    if (!names.insert(name).second) {
      Add(candidate_path, absl::StrCat("duplicate candidate ", Quoted(name)));
      continue;
    }
    if (nested >= 0 && reaches_cycle_[nested]) {
      // Each cycle is reported once, from its first route in config order.
      std::vector<int> cycle = {i};
      std::vector<bool> visited(config_.routes_size(), false);
      bool found = nested == i;
      if (found) {
        cycle.push_back(i);
      } else if (nested > i) {
        cycle.push_back(nested);
        visited[nested] = true;
        found = FindCycle(i, nested, cycle, visited);
      }
      if (found) {
        std::vector<std::string> steps;
        for (int r : cycle) steps.push_back(config_.routes(r).name());
        Add(candidate_path, absl::StrCat("cycle ", absl::StrJoin(steps, " -> ")));
      }
      continue;
    }
    const std::vector<int> models = model >= 0 ? std::vector<int>{model} : Flatten(nested);
    std::vector<std::string> repeated;
    for (int m : models) {
      if (std::find(reached.begin(), reached.end(), m) != reached.end()) {
        repeated.push_back(config_.models(m).name());
      }
    }
    if (!repeated.empty()) {
      if (model >= 0) {
        Add(candidate_path, absl::StrCat("model ", Quoted(name),
                                         " is already a candidate through an earlier route"));
      } else {
        Add(candidate_path,
            absl::StrCat("route ", Quoted(name), " repeats candidate",
                         repeated.size() > 1 ? "s " : " ", absl::StrJoin(repeated, ", ")));
      }
    }
    for (int m : models) AddUnique(reached, m);
  }
}

void Validator::CheckRequirements(int i) {
  const v1::Route& route = config_.routes(i);
  const v1::Requirements& require = route.require();
  const std::string path = Indexed("routes", i) + ".require";
  for (int j = 0; j < require.capabilities_size(); ++j) {
    if (!IsKnownCapability(require.capabilities(j))) {
      Add(Indexed(path + ".capabilities", j),
          absl::StrCat("unknown capability ", Quoted(require.capabilities(j))));
    }
  }
  for (int j = 0; j < require.zones_size(); ++j) {
    if (require.zones(j).empty()) Add(Indexed(path + ".zones", j), "must not be empty");
  }
  if (require.has_max_cost_usd() && !IsPositiveNumber(require.max_cost_usd())) {
    Add(path + ".max_cost_usd", absl::StrCat("must be positive, got ", require.max_cost_usd()));
  }
  // An unknown capability or a cycle is reported already; do not also blame
  // every model.
  const bool trivial = require.capabilities().empty() && require.zones().empty();
  if (trivial || HasUnknownCapability(require) || reaches_cycle_[i]) return;
  const std::vector<int>& models = Flatten(i);
  if (models.empty()) return;
  std::vector<std::string> reasons;
  for (int m : models) {
    std::string unmet = Unmet(require, m);
    if (unmet.empty()) return;
    reasons.push_back(absl::StrCat(config_.models(m).name(), ": ", unmet));
  }
  Add(path, absl::StrCat("no candidate can satisfy it (", absl::StrJoin(reasons, "; "), ")"));
}

void Validator::CheckWeights(int i) {
  const v1::Route& route = config_.routes(i);
  const std::string path = Indexed("routes", i) + ".weights";
  auto weight_path = [&](const std::string& key) {
    return absl::StrCat(path, "[", Quoted(key), "]");
  };
  std::vector<std::string> candidates;
  for (const std::string& name : route.candidates()) {
    if (std::find(candidates.begin(), candidates.end(), name) == candidates.end()) {
      candidates.push_back(name);
    }
  }
  std::vector<std::string> missing;
  for (const std::string& name : candidates) {
    auto weight = route.weights().find(name);
    if (weight == route.weights().end()) {
      missing.push_back(Quoted(name));
    } else if (weight->second == 0) {
      Add(weight_path(name), "must be positive");
    }
  }
  // Proto maps keep no order: report strays sorted, so output is stable.
  std::vector<std::string> strays;
  for (const auto& [key, weight] : route.weights()) {
    if (!Contains(route.candidates(), key)) strays.push_back(key);
  }
  std::sort(strays.begin(), strays.end());
  for (const std::string& key : strays) Add(weight_path(key), "not a candidate of this route");
  if (route.objective() == v1::Route::OBJECTIVE_WEIGHTED && !missing.empty()) {
    Add(path, absl::StrCat("objective weighted needs a weight for every candidate; missing ",
                           absl::StrJoin(missing, ", ")));
  }
}

void Validator::CheckKey(int i) {
  const v1::ApiKey& key = config_.keys(i);
  const std::string path = Indexed("keys", i);
  if (key.name().empty()) {
    Add(path + ".name", "must not be empty");
  } else {
    for (int k = 0; k < i; ++k) {
      if (config_.keys(k).name() == key.name()) {
        Add(path + ".name",
            absl::StrCat("duplicate key ", Quoted(key.name()), " (also ", Indexed("keys", k), ")"));
        break;
      }
    }
  }
  if (!IsLowerHexSha256(key.sha256())) {
    Add(path + ".sha256", "must be 64 lower-case hex characters (the SHA-256 of the key)");
  } else {
    for (int k = 0; k < i; ++k) {
      if (config_.keys(k).sha256() == key.sha256()) {
        Add(path + ".sha256", absl::StrCat("same hash as ", Indexed("keys", k)));
        break;
      }
    }
  }
  for (int j = 0; j < key.allow_size(); ++j) {
    if (ModelIndex(key.allow(j)) < 0 && RouteIndex(key.allow(j)) < 0) {
      Add(Indexed(path + ".allow", j),
          absl::StrCat("unknown model or route ", Quoted(key.allow(j))));
    }
  }
  for (int j = 0; j < key.zones_size(); ++j) {
    if (key.zones(j).empty()) Add(Indexed(path + ".zones", j), "must not be empty");
  }
  CheckKeyZones(i);
  // Once tenants are declared, a key's tenant must be one of them: a typo
  // would otherwise escape the tenant's limits and budget unnoticed. Without
  // declared tenants the name only groups keys for accounting. A key without
  // a tenant is always allowed.
  if (!key.tenant().empty() && !config_.tenants().empty() && !tenants_.contains(key.tenant())) {
    Add(path + ".tenant", absl::StrCat("unknown tenant ", Quoted(key.tenant())));
  }
  CheckLimitsAndBudget(path, key.limits(), key.budget());
}

void Validator::CheckTenant(int i) {
  const v1::Tenant& tenant = config_.tenants(i);
  const std::string path = Indexed("tenants", i);
  if (tenant.name().empty()) {
    Add(path + ".name", "must not be empty");
  } else if (int first = tenants_.at(tenant.name()); first != i) {
    Add(path + ".name", absl::StrCat("duplicate tenant ", Quoted(tenant.name()), " (also ",
                                     Indexed("tenants", first), ")"));
  }
  CheckLimitsAndBudget(path, tenant.limits(), tenant.budget());
}

void Validator::CheckLimitsAndBudget(const std::string& path, const v1::Limits& limits,
                                     const v1::Budget& budget) {
  if (limits.has_rpm() && limits.rpm() == 0) Add(path + ".limits.rpm", "must be positive");
  if (limits.has_tpm() && limits.tpm() == 0) Add(path + ".limits.tpm", "must be positive");
  if (budget.has_usd_per_day() && !IsPositiveNumber(budget.usd_per_day())) {
    Add(path + ".budget.usd_per_day", absl::StrCat("must be positive, got ", budget.usd_per_day()));
  }
  if (budget.has_usd_per_month() && !IsPositiveNumber(budget.usd_per_month())) {
    Add(path + ".budget.usd_per_month",
        absl::StrCat("must be positive, got ", budget.usd_per_month()));
  }
}

// A key's zones narrow every route and model it uses. Listing a target none
// of whose candidates lies in those zones is a mistake; with an empty allow
// list the key is only useless when no target at all is left.
void Validator::CheckKeyZones(int i) {
  const v1::ApiKey& key = config_.keys(i);
  if (key.zones().empty()) return;
  // Whether `name`, a model or route, keeps a candidate under the key's
  // zones. Unresolvable names count as usable: they are reported elsewhere.
  auto usable = [&](const std::string& name) {
    if (int m = ModelIndex(name); m >= 0) return InZones(m, key.zones());
    const int r = RouteIndex(name);
    if (r < 0 || reaches_cycle_[r]) return true;
    const std::vector<int>& models = Flatten(r);
    if (models.empty() || HasUnknownCapability(config_.routes(r).require())) return true;
    return std::any_of(models.begin(), models.end(), [&](int m) {
      return Unmet(config_.routes(r).require(), m).empty() && InZones(m, key.zones());
    });
  };
  std::vector<std::string> unusable;
  if (!key.allow().empty()) {
    for (const std::string& name : key.allow()) {
      if (!usable(name) && std::find(unusable.begin(), unusable.end(), name) == unusable.end()) {
        unusable.push_back(name);
      }
    }
  } else {
    bool any = false;
    for (const v1::Model& model : config_.models()) any = any || usable(model.name());
    for (const v1::Route& route : config_.routes()) any = any || usable(route.name());
    if (!any && (config_.models_size() > 0 || config_.routes_size() > 0)) {
      unusable.push_back("any model or route");
    }
  }
  if (!unusable.empty()) {
    Add(Indexed("keys", i) + ".zones",
        absl::StrCat(ZoneList(key.zones()), " allow no candidate of ",
                     absl::StrJoin(unusable, ", ")));
  }
}

void Validator::CheckLog() {
  const std::string& level = config_.log().level();
  if (!level.empty() && !core::ParseLogLevel(level).ok()) {
    Add("log.level",
        absl::StrCat("unknown level ", Quoted(level), "; use debug, info, warning or error"));
  }
}

// Depth-first over nested routes; `state` is 0 unseen, 1 on the stack, 2
// done. Returns whether `route` is on a cycle or leads into one.
bool Validator::MarkCycles(int route, std::vector<int>& state) {
  if (state[route] == 1) return true;
  if (state[route] == 2) return reaches_cycle_[route];
  state[route] = 1;
  bool cyclic = false;
  for (const std::string& name : config_.routes(route).candidates()) {
    if (int next = RouteIndex(name); next >= 0) cyclic = MarkCycles(next, state) || cyclic;
  }
  state[route] = 2;
  reaches_cycle_[route] = cyclic;
  return cyclic;
}

// Models reached through `route`, nested routes expanded in candidate order,
// each once. A route met again while it is being expanded (a cycle, reported
// elsewhere) adds nothing.
const std::vector<int>& Validator::Flatten(int route) {
  if (flattened_[route].has_value()) return *flattened_[route];
  if (flattening_[route]) return none_;
  flattening_[route] = true;
  std::vector<int> models;
  for (const std::string& name : config_.routes(route).candidates()) {
    if (int m = ModelIndex(name); m >= 0) {
      AddUnique(models, m);
    } else if (int r = RouteIndex(name); r >= 0) {
      for (int nested : Flatten(r)) AddUnique(models, nested);
    }
  }
  flattening_[route] = false;
  flattened_[route] = std::move(models);
  return *flattened_[route];
}

// Depth-first from `node` (the last entry of `path`) back to `origin` through
// routes after `origin` in config order; on success `path` is the cycle.
bool Validator::FindCycle(int origin, int node, std::vector<int>& path,
                          std::vector<bool>& visited) const {
  for (const std::string& name : config_.routes(node).candidates()) {
    const int next = RouteIndex(name);
    if (next < 0) continue;
    if (next == origin) {
      path.push_back(origin);
      return true;
    }
    if (next < origin || visited[next]) continue;
    visited[next] = true;
    path.push_back(next);
    if (FindCycle(origin, next, path, visited)) return true;
    path.pop_back();
  }
  return false;
}

// Why model `m` can never meet `require`, or empty when it can.
std::string Validator::Unmet(const v1::Requirements& require, int m) const {
  const v1::Model& model = config_.models(m);
  for (const std::string& capability : require.capabilities()) {
    if (!Contains(model.capabilities(), capability)) {
      return absl::StrCat("missing capability ", capability);
    }
  }
  if (!require.zones().empty() && !InZones(m, require.zones())) {
    const std::string& zone = ProviderOf(m)->zone();
    return absl::StrCat("zone ", zone.empty() ? "(none)" : zone, " not in ",
                        ZoneList(require.zones()));
  }
  return "";
}

// Whether model `m`'s provider is in `zones` (non-empty). A model whose
// provider is unknown counts as inside: that is reported on the model.
bool Validator::InZones(int m, const google::protobuf::RepeatedPtrField<std::string>& zones) const {
  const v1::Provider* provider = ProviderOf(m);
  if (provider == nullptr) return true;
  return !provider->zone().empty() && Contains(zones, provider->zone());
}

}  // namespace

absl::Status ValidateRouterConfig(const v1::RouterConfig& config) {
  return Validator(config).Run();
}

}  // namespace flowork::router
