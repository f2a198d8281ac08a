#include "flowork/router/config_validation.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "flowork/core/config_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The example of docs/configuration.md, verbatim.
constexpr char kDocumentedExample[] = R"yaml(
listen: {http: 127.0.0.1:2402, grpc: 127.0.0.1:2403}
auth: {mode: keys}
providers:
  - {name: local-vllm, kind: openai, base_url: "http://127.0.0.1:8000/v1", api_key_env: VLLM_API_KEY, zone: local, max_concurrency: 64, timeouts: {connect: 2s, first_byte: 30s, first_token: 30s, idle: 60s, total: 600s}}
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY, zone: remote}
models:
  - {name: llama-3.1-8b, provider: local-vllm, upstream_model: meta-llama/Llama-3.1-8B-Instruct, context_window: 131072, capabilities: [chat, tools, json, prefill], price: {input_per_mtok: 0, output_per_mtok: 0}}
  - {name: gpt-4o-mini, provider: openai, context_window: 128000, capabilities: [chat, tools, json, vision], price: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}}
routes:
  - {name: chat, candidates: [llama-3.1-8b, gpt-4o-mini], objective: least_latency, require: {capabilities: [chat], zones: [local, remote]}, retry: {same_endpoint: 1, backoff: 250ms, max_wait: 5s}, fallback: {max_attempts: 3, continue_on_cut: true}, hedge: {after: 800ms}}
keys:
  - {name: team-a, sha256: "e03cfe75fdd9365890b0fa07c25fe4f562be298cf3d1485465658f7ca1b665bd", tenant: a, allow: [chat], zones: [local], limits: {rpm: 600, tpm: 200000}, budget: {usd_per_day: 20}}
audit: {path: ./flowork-audit.db}
)yaml";

// Two providers in different zones and one model on each; tests append the
// rest of a config.
constexpr char kCatalog[] = R"yaml(
providers:
  - {name: local-vllm, kind: openai, base_url: "http://127.0.0.1:8000/v1", zone: local}
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", zone: remote}
models:
  - {name: llama-3.1-8b, provider: local-vllm, capabilities: [chat, tools, json, prefill]}
  - {name: gpt-4o-mini, provider: openai, capabilities: [chat, tools, json, vision]}
)yaml";

constexpr char kHashA[] = "e03cfe75fdd9365890b0fa07c25fe4f562be298cf3d1485465658f7ca1b665bd";
constexpr char kHashB[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
constexpr char kHashC[] = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";

v1::RouterConfig Parse(const std::string& yaml) {
  v1::RouterConfig config;
  absl::Status parsed = core::ParseConfigText(yaml, "test.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return config;
}

// The problem lines of `config`, empty when it is valid.
std::vector<std::string> Problems(const v1::RouterConfig& config) {
  absl::Status status = ValidateRouterConfig(config);
  if (status.ok()) return {};
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return absl::StrSplit(status.message(), '\n');
}

std::vector<std::string> Problems(const std::string& yaml) { return Problems(Parse(yaml)); }

// kCatalog followed by `rest`.
std::vector<std::string> CatalogProblems(const std::string& rest) {
  return Problems(absl::StrCat(kCatalog, rest));
}

TEST(RouterConfigValidationTest, AcceptsTheDocumentedExample) {
  EXPECT_THAT(Problems(kDocumentedExample), IsEmpty());
}

TEST(RouterConfigValidationTest, AcceptsAnEmptyConfig) {
  EXPECT_TRUE(ValidateRouterConfig(v1::RouterConfig()).ok());
}

// --- providers ---

TEST(RouterConfigValidationTest, RejectsProviderWithoutName) {
  EXPECT_THAT(Problems(R"yaml(
providers: [{kind: openai, base_url: "http://127.0.0.1:8000"}]
)yaml"),
              ElementsAre("providers[0].name: must not be empty"));
}

TEST(RouterConfigValidationTest, RejectsDuplicateProviderName) {
  EXPECT_THAT(Problems(R"yaml(
providers:
  - {name: a, kind: openai, base_url: "http://127.0.0.1:8000"}
  - {name: a, kind: ollama, base_url: "http://127.0.0.1:11434"}
)yaml"),
              ElementsAre("providers[1].name: duplicate provider \"a\" (also providers[0])"));
}

TEST(RouterConfigValidationTest, RejectsProviderWithoutKind) {
  EXPECT_THAT(Problems(R"yaml(
providers: [{name: a, base_url: "http://127.0.0.1:8000"}]
)yaml"),
              ElementsAre("providers[0].kind: must be set: openai, ollama, anthropic or mock"));
}

TEST(RouterConfigValidationTest, RejectsProviderKindOutOfRange) {
  v1::RouterConfig config = Parse(kCatalog);
  config.mutable_providers(0)->set_kind(static_cast<v1::Provider::Kind>(42));
  EXPECT_THAT(Problems(config), ElementsAre("providers[0].kind: unknown value 42"));
}

TEST(RouterConfigValidationTest, RejectsBaseUrlsThatAreNotHttpWithAHost) {
  EXPECT_THAT(
      Problems(R"yaml(
providers:
  - {name: a, kind: openai}
  - {name: b, kind: openai, base_url: "ftp://example.com/v1"}
  - {name: c, kind: openai, base_url: "127.0.0.1:8000/v1"}
  - {name: d, kind: openai, base_url: "http:///v1"}
  - {name: e, kind: openai, base_url: "http://host:99999/v1"}
  - {name: f, kind: openai, base_url: "http://host:/v1"}
  - {name: g, kind: openai, base_url: "https://user:pw@host/v1"}
  - {name: h, kind: openai, base_url: "http://ho st/v1"}
  - {name: i, kind: openai, base_url: "http://host/v1?x=1"}
  - {name: j, kind: openai, base_url: "http://ho$t/v1"}
)yaml"),
      ElementsAre(
          "providers[0].base_url: must not be empty",
          "providers[1].base_url: \"ftp://example.com/v1\" is not an http:// or https:// URL",
          "providers[2].base_url: \"127.0.0.1:8000/v1\" is not an http:// or https:// URL",
          "providers[3].base_url: \"http:///v1\" has no host",
          "providers[4].base_url: \"http://host:99999/v1\" has a bad port \"99999\"",
          "providers[5].base_url: \"http://host:/v1\" has a bad port \"\"",
          "providers[6].base_url: \"https://user:pw@host/v1\" must not carry credentials; use "
          "api_key_env or api_key_file",
          "providers[7].base_url: \"http://ho st/v1\" contains whitespace",
          "providers[8].base_url: \"http://host/v1?x=1\" must not have a query or fragment",
          "providers[9].base_url: \"http://ho$t/v1\" has a bad host \"ho$t\""));
}

TEST(RouterConfigValidationTest, AcceptsBaseUrlsWithPortPathOrIpv6Host) {
  EXPECT_THAT(Problems(R"yaml(
providers:
  - {name: a, kind: openai, base_url: "http://localhost"}
  - {name: b, kind: ollama, base_url: "HTTP://127.0.0.1:11434/"}
  - {name: c, kind: anthropic, base_url: "https://api.anthropic.com"}
  - {name: d, kind: mock, base_url: "http://[::1]:8080/v1"}
  - {name: e, kind: openai, base_url: "https://gpu-box.internal:443/openai/v1"}
)yaml"),
              IsEmpty());
}

TEST(RouterConfigValidationTest, RejectsBothApiKeyEnvAndApiKeyFile) {
  EXPECT_THAT(Problems(R"yaml(
providers:
  - {name: a, kind: openai, base_url: "http://h", api_key_env: KEY, api_key_file: /run/key}
)yaml"),
              ElementsAre("providers[0].api_key_file: set api_key_env or api_key_file, not both"));
}

TEST(RouterConfigValidationTest, RejectsZeroTimeouts) {
  EXPECT_THAT(Problems(R"yaml(
providers:
  - {name: a, kind: openai, base_url: "http://h", timeouts: {connect: 0s, idle: 1s, total: 0ms}}
)yaml"),
              ElementsAre("providers[0].timeouts.connect: must be positive",
                          "providers[0].timeouts.total: must be positive"));
}

TEST(RouterConfigValidationTest, RejectsCircuitSettingsOutOfRange) {
  EXPECT_THAT(Problems(R"yaml(
providers:
  - {name: a, kind: openai, base_url: "http://h", circuit: {error_ratio: 1.5, window_requests: 100, open_for: 0s}}
  - {name: b, kind: openai, base_url: "http://h", circuit: {error_ratio: -0.1}}
  - {name: c, kind: openai, base_url: "http://h", circuit: {error_ratio: 1, window_requests: 64, open_for: 10s}}
)yaml"),
              ElementsAre("providers[0].circuit.error_ratio: must be in (0, 1], got 1.5",
                          "providers[0].circuit.window_requests: must be at most 64",
                          "providers[0].circuit.open_for: must be positive",
                          "providers[1].circuit.error_ratio: must be in (0, 1], got -0.1"));
}

// --- models ---

TEST(RouterConfigValidationTest, RejectsUnknownProviderReference) {
  EXPECT_THAT(CatalogProblems(R"yaml(
  - {name: extra, provider: x}
  - {name: orphan}
)yaml"),
              ElementsAre("models[2].provider: unknown provider \"x\"",
                          "models[3].provider: must not be empty"));
}

TEST(RouterConfigValidationTest, RejectsModelWithoutNameOrWithDuplicateName) {
  EXPECT_THAT(CatalogProblems(R"yaml(
  - {provider: openai}
  - {name: gpt-4o-mini, provider: openai}
)yaml"),
              ElementsAre("models[2].name: must not be empty",
                          "models[3].name: duplicate model \"gpt-4o-mini\" (also models[1])"));
}

TEST(RouterConfigValidationTest, RejectsUnknownCapability) {
  EXPECT_THAT(Problems(R"yaml(
providers: [{name: p, kind: mock, base_url: "http://127.0.0.1:9000"}]
models: [{name: m, provider: p, capabilities: [chat, completion, telepathy, embeddings]}]
)yaml"),
              ElementsAre("models[0].capabilities[2]: unknown capability \"telepathy\""));
}

TEST(RouterConfigValidationTest, RejectsNegativePrice) {
  EXPECT_THAT(Problems(R"yaml(
providers: [{name: p, kind: mock, base_url: "http://127.0.0.1:9000"}]
models: [{name: m, provider: p, price: {input_per_mtok: 0, output_per_mtok: -1, cached_input_per_mtok: -0.5}}]
)yaml"),
              ElementsAre("models[0].price.output_per_mtok: must not be negative, got -1",
                          "models[0].price.cached_input_per_mtok: must not be negative, got -0.5"));
}

// --- routes ---

TEST(RouterConfigValidationTest, RejectsRouteNamedLikeAModelOrAnotherRoute) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: gpt-4o-mini, candidates: [llama-3.1-8b]}
  - {name: chat, candidates: [llama-3.1-8b]}
  - {name: chat, candidates: [gpt-4o-mini]}
  - {candidates: [gpt-4o-mini]}
)yaml"),
              ElementsAre("routes[0].name: \"gpt-4o-mini\" is already a model name (models[1])",
                          "routes[2].name: duplicate route \"chat\" (also routes[1])",
                          "routes[3].name: must not be empty"));
}

TEST(RouterConfigValidationTest, RejectsRouteWithoutCandidates) {
  EXPECT_THAT(CatalogProblems("routes: [{name: chat}]\n"),
              ElementsAre("routes[0].candidates: must not be empty"));
}

TEST(RouterConfigValidationTest, RejectsUnknownCandidate) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: a, candidates: [llama-3.1-8b]}
  - {name: b, candidates: [a]}
  - {name: c, candidates: [gpt-x, llama-3.1-8b]}
)yaml"),
              ElementsAre("routes[2].candidates[0]: unknown model or route \"gpt-x\""));
}

TEST(RouterConfigValidationTest, AcceptsNestedRoutes) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [fast, gpt-4o-mini]}
  - {name: fast, candidates: [local]}
  - {name: local, candidates: [llama-3.1-8b]}
)yaml"),
              IsEmpty());
}

TEST(RouterConfigValidationTest, RejectsCycleThroughNestedRoutes) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [gpt-4o-mini, fast]}
  - {name: fast, candidates: [llama-3.1-8b, chat]}
)yaml"),
              ElementsAre("routes[0].candidates[1]: cycle chat -> fast -> chat"));
}

TEST(RouterConfigValidationTest, RejectsLongerCycleOnceFromItsFirstRoute) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: entry, candidates: [b]}
  - {name: a, candidates: [b]}
  - {name: b, candidates: [c]}
  - {name: c, candidates: [a, gpt-4o-mini]}
)yaml"),
              ElementsAre("routes[1].candidates[0]: cycle a -> b -> c -> a"));
}

TEST(RouterConfigValidationTest, ReportsACycleWithoutFollowOnProblems) {
  EXPECT_THAT(CatalogProblems(absl::StrCat(R"yaml(
routes:
  - {name: chat, candidates: [fast], require: {capabilities: [vision]}}
  - {name: fast, candidates: [llama-3.1-8b, chat], require: {zones: [eu]}}
  - {name: outer, candidates: [fast, llama-3.1-8b]}
keys:
  - {name: k, sha256: ")yaml",
                                           kHashA, R"yaml(", allow: [outer], zones: [eu]}
)yaml")),
              ElementsAre("routes[0].candidates[0]: cycle chat -> fast -> chat"));
}

TEST(RouterConfigValidationTest, RejectsRouteThatNamesItself) {
  EXPECT_THAT(CatalogProblems("routes: [{name: chat, candidates: [llama-3.1-8b, chat]}]\n"),
              ElementsAre("routes[0].candidates[1]: cycle chat -> chat"));
}

TEST(RouterConfigValidationTest, RejectsCandidatesRepeatedDirectlyOrThroughNestedRoutes) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [llama-3.1-8b, fast, llama-3.1-8b]}
  - {name: fast, candidates: [llama-3.1-8b]}
  - {name: both, candidates: [fast, llama-3.1-8b]}
  - {name: mix, candidates: [gpt-4o-mini, llama-3.1-8b]}
  - {name: all, candidates: [llama-3.1-8b, gpt-4o-mini, mix]}
)yaml"),
              ElementsAre("routes[0].candidates[1]: route \"fast\" repeats candidate llama-3.1-8b",
                          "routes[0].candidates[2]: duplicate candidate \"llama-3.1-8b\"",
                          "routes[2].candidates[1]: model \"llama-3.1-8b\" is already a candidate "
                          "through an earlier route",
                          "routes[4].candidates[2]: route \"mix\" repeats candidates gpt-4o-mini, "
                          "llama-3.1-8b"));
}

TEST(RouterConfigValidationTest, RejectsBadWeights) {
  EXPECT_THAT(
      CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [llama-3.1-8b, gpt-4o-mini], objective: weighted, weights: {llama-3.1-8b: 0, gpt-x: 2, a: 1}}
  - {name: ok, candidates: [llama-3.1-8b, gpt-4o-mini], objective: weighted, weights: {llama-3.1-8b: 3, gpt-4o-mini: 1}}
  - {name: unweighted, candidates: [llama-3.1-8b, gpt-4o-mini], weights: {llama-3.1-8b: 3}}
)yaml"),
      ElementsAre("routes[0].weights[\"llama-3.1-8b\"]: must be positive",
                  "routes[0].weights[\"a\"]: not a candidate of this route",
                  "routes[0].weights[\"gpt-x\"]: not a candidate of this route",
                  "routes[0].weights: objective weighted needs a weight for every candidate; "
                  "missing \"gpt-4o-mini\""));
}

TEST(RouterConfigValidationTest, RejectsObjectiveOutOfRange) {
  v1::RouterConfig config =
      Parse(absl::StrCat(kCatalog, "routes: [{name: r, candidates: [llama-3.1-8b]}]\n"));
  config.mutable_routes(0)->set_objective(static_cast<v1::Route::Objective>(99));
  EXPECT_THAT(Problems(config), ElementsAre("routes[0].objective: unknown value 99"));
}

TEST(RouterConfigValidationTest, RejectsUnknownRequiredCapabilityWithoutBlamingEveryModel) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [llama-3.1-8b], require: {capabilities: [chat, telepathy]}}
)yaml"),
              ElementsAre("routes[0].require.capabilities[1]: unknown capability \"telepathy\""));
}

TEST(RouterConfigValidationTest, RejectsNonPositiveCostCeilingAndEmptyZone) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: chat, candidates: [llama-3.1-8b], require: {zones: [local, ""], max_cost_usd: 0}}
  - {name: cheap, candidates: [llama-3.1-8b], require: {max_cost_usd: 0.01}}
)yaml"),
              ElementsAre("routes[0].require.zones[1]: must not be empty",
                          "routes[0].require.max_cost_usd: must be positive, got 0"));
}

TEST(RouterConfigValidationTest, RejectsRequirementNoCandidateCanSatisfy) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: see-local, candidates: [llama-3.1-8b, gpt-4o-mini], require: {capabilities: [chat, vision], zones: [local]}}
  - {name: see, candidates: [llama-3.1-8b, gpt-4o-mini], require: {capabilities: [vision]}}
)yaml"),
              ElementsAre("routes[0].require: no candidate can satisfy it (llama-3.1-8b: missing "
                          "capability vision; gpt-4o-mini: zone remote not in [local])"));
}

TEST(RouterConfigValidationTest, RequirementAppliesToModelsOfNestedRoutes) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: vision, candidates: [inner], require: {capabilities: [vision]}}
  - {name: inner, candidates: [llama-3.1-8b]}
)yaml"),
              ElementsAre("routes[0].require: no candidate can satisfy it (llama-3.1-8b: missing "
                          "capability vision)"));
}

TEST(RouterConfigValidationTest, ProviderWithoutZoneNeverSatisfiesAZoneRequirement) {
  EXPECT_THAT(Problems(R"yaml(
providers: [{name: p, kind: mock, base_url: "http://127.0.0.1:9000"}]
models: [{name: m, provider: p, capabilities: [chat]}]
routes: [{name: r, candidates: [m], require: {zones: [local]}}]
)yaml"),
              ElementsAre("routes[0].require: no candidate can satisfy it (m: zone (none) not in "
                          "[local])"));
}

TEST(RouterConfigValidationTest, RejectsHedgeWithoutPositiveDelay) {
  EXPECT_THAT(CatalogProblems(R"yaml(
routes:
  - {name: a, candidates: [llama-3.1-8b], hedge: {}}
  - {name: b, candidates: [llama-3.1-8b], hedge: {after: 0s}}
  - {name: c, candidates: [llama-3.1-8b], hedge: {after: 1ms}}
)yaml"),
              ElementsAre("routes[0].hedge.after: must be positive",
                          "routes[1].hedge.after: must be positive"));
}

TEST(RouterConfigValidationTest, RejectsNegativeRetryDurations) {
  // The file loader refuses negative durations; the admin API builds the
  // message directly.
  v1::RouterConfig config = Parse(absl::StrCat(
      kCatalog, "routes: [{name: r, candidates: [llama-3.1-8b], retry: {backoff: 0s}}]\n"));
  EXPECT_THAT(Problems(config), IsEmpty());
  config.mutable_routes(0)->mutable_retry()->mutable_backoff()->set_nanos(-1);
  config.mutable_routes(0)->mutable_retry()->mutable_max_wait()->set_seconds(-5);
  EXPECT_THAT(Problems(config), ElementsAre("routes[0].retry.backoff: must not be negative",
                                            "routes[0].retry.max_wait: must not be negative"));
}

// --- keys ---

TEST(RouterConfigValidationTest, RejectsKeyWithoutNameOrWithDuplicateName) {
  EXPECT_THAT(CatalogProblems(absl::StrCat(R"yaml(
keys:
  - {sha256: ")yaml",
                                           kHashA, R"yaml("}
  - {name: k, sha256: ")yaml",
                                           kHashB, R"yaml("}
  - {name: k, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
)yaml")),
              ElementsAre("keys[0].name: must not be empty",
                          "keys[2].name: duplicate key \"k\" (also keys[1])"));
}

TEST(RouterConfigValidationTest, RejectsMalformedSha256) {
  const std::string upper = "E03CFE75FDD9365890B0FA07C25FE4F562BE298CF3D1485465658F7CA1B665BD";
  EXPECT_THAT(
      CatalogProblems(absl::StrCat("keys:\n  - {name: a, sha256: \"", upper,
                                   "\"}\n  - {name: b, sha256: abc}\n  - {name: c}\n")),
      ElementsAre("keys[0].sha256: must be 64 lower-case hex characters (the SHA-256 of the key)",
                  "keys[1].sha256: must be 64 lower-case hex characters (the SHA-256 of the key)",
                  "keys[2].sha256: must be 64 lower-case hex characters (the SHA-256 of the key)"));
}

TEST(RouterConfigValidationTest, RejectsSha256SharedByTwoKeys) {
  EXPECT_THAT(CatalogProblems(absl::StrCat("keys:\n  - {name: a, sha256: \"", kHashA,
                                           "\"}\n  - {name: b, sha256: \"", kHashA, "\"}\n")),
              ElementsAre("keys[1].sha256: same hash as keys[0]"));
}

TEST(RouterConfigValidationTest, RejectsAllowEntryThatNamesNothing) {
  EXPECT_THAT(CatalogProblems(absl::StrCat("routes: [{name: chat, candidates: [llama-3.1-8b]}]\n",
                                           "keys: [{name: a, sha256: \"", kHashA,
                                           "\", allow: [chat, gpt-x, gpt-4o-mini]}]\n")),
              ElementsAre("keys[0].allow[1]: unknown model or route \"gpt-x\""));
}

TEST(RouterConfigValidationTest, RejectsKeyZonesThatAllowNoCandidateOfAnAllowedTarget) {
  EXPECT_THAT(CatalogProblems(
                  absl::StrCat(R"yaml(
routes:
  - {name: chat, candidates: [llama-3.1-8b, gpt-4o-mini]}
  - {name: see, candidates: [llama-3.1-8b, gpt-4o-mini], require: {capabilities: [vision]}}
keys:
  - {name: eu, sha256: ")yaml",
                               kHashA, R"yaml(", allow: [chat, gpt-4o-mini], zones: [eu]}
  - {name: local, sha256: ")yaml",
                               kHashB, R"yaml(", allow: [chat, see, llama-3.1-8b], zones: [local]}
)yaml")),
              ElementsAre("keys[0].zones: [eu] allow no candidate of chat, gpt-4o-mini",
                          "keys[1].zones: [local] allow no candidate of see"));
}

TEST(RouterConfigValidationTest, KeyWithoutAllowListIsRejectedOnlyWhenNothingIsLeft) {
  EXPECT_THAT(CatalogProblems(absl::StrCat(R"yaml(
keys:
  - {name: local, sha256: ")yaml",
                                           kHashA, R"yaml(", zones: [local]}
  - {name: eu, sha256: ")yaml",
                                           kHashB, R"yaml(", zones: [eu, us]}
)yaml")),
              ElementsAre("keys[1].zones: [eu, us] allow no candidate of any model or route"));
}

TEST(RouterConfigValidationTest, RejectsZeroLimitsAndNonPositiveBudgets) {
  EXPECT_THAT(
      CatalogProblems(absl::StrCat(
          "keys: [{name: a, sha256: \"", kHashA,
          "\", limits: {rpm: 0, tpm: 0}, budget: {usd_per_day: 0, usd_per_month: -3}}]\n")),
      ElementsAre("keys[0].limits.rpm: must be positive", "keys[0].limits.tpm: must be positive",
                  "keys[0].budget.usd_per_day: must be positive, got 0",
                  "keys[0].budget.usd_per_month: must be positive, got -3"));
}

TEST(RouterConfigValidationTest, RejectsTenantWithoutNameOrWithDuplicateName) {
  EXPECT_THAT(Problems(R"yaml(
tenants:
  - {name: acme}
  - {name: ""}
  - {name: acme}
)yaml"),
              ElementsAre("tenants[1].name: must not be empty",
                          "tenants[2].name: duplicate tenant \"acme\" (also tenants[0])"));
}

TEST(RouterConfigValidationTest, RejectsZeroTenantLimitsAndNonPositiveTenantBudgets) {
  EXPECT_THAT(Problems(R"yaml(
tenants:
  - {name: acme, limits: {rpm: 0, tpm: 0}, budget: {usd_per_day: -1, usd_per_month: 0}}
  - {name: ok, limits: {rpm: 60, tpm: 1000}, budget: {usd_per_day: 1, usd_per_month: 20}}
)yaml"),
              ElementsAre("tenants[0].limits.rpm: must be positive",
                          "tenants[0].limits.tpm: must be positive",
                          "tenants[0].budget.usd_per_day: must be positive, got -1",
                          "tenants[0].budget.usd_per_month: must be positive, got 0"));
}

TEST(RouterConfigValidationTest, KeyTenantMustBeDeclaredOnceTenantsAreDeclared) {
  const std::string keys = absl::StrCat(
      "keys:\n  - {name: a, sha256: \"", kHashA, "\", tenant: acme}\n  - {name: b, sha256: \"",
      kHashB, "\", tenant: acne}\n  - {name: c, sha256: \"", kHashC, "\"}\n");
  // Without declared tenants the names only group keys.
  EXPECT_THAT(CatalogProblems(keys), IsEmpty());
  EXPECT_THAT(CatalogProblems(absl::StrCat("tenants: [{name: acme}]\n", keys)),
              ElementsAre("keys[1].tenant: unknown tenant \"acne\""));
}

// --- auth, listen, log ---

TEST(RouterConfigValidationTest, RejectsAuthNoneOnNonLoopbackListener) {
  EXPECT_THAT(Problems(R"yaml(
listen: {http: "0.0.0.0:2402", grpc: "192.168.1.5:2403"}
auth: {mode: none}
)yaml"),
              ElementsAre("auth.mode: none is refused on a non-loopback listener (listen.http "
                          "\"0.0.0.0:2402\")",
                          "auth.mode: none is refused on a non-loopback listener (listen.grpc "
                          "\"192.168.1.5:2403\")"));
  EXPECT_THAT(Problems("listen: {http: \"0.0.0.0:2402\"}\nauth: {mode: keys}\n"), IsEmpty());
}

TEST(RouterConfigValidationTest, AcceptsAuthNoneOnLoopbackOrDefaultListeners) {
  EXPECT_THAT(Problems("auth: {mode: none}\n"), IsEmpty());
  EXPECT_THAT(Problems("listen: {http: \"localhost:0\", grpc: \"[::1]:0\"}\nauth: {mode: none}\n"),
              IsEmpty());
  EXPECT_THAT(Problems("listen: {http: \"127.0.0.2:2402\"}\nauth: {mode: none}\n"), IsEmpty());
}

TEST(RouterConfigValidationTest, RejectsUnknownLogLevel) {
  EXPECT_THAT(Problems("log: {level: verbose}\n"),
              ElementsAre("log.level: unknown level \"verbose\"; use debug, info, warning or "
                          "error"));
}

// --- everything at once ---

TEST(RouterConfigValidationTest, ListsEveryProblemInConfigOrder) {
  EXPECT_THAT(
      Problems(R"yaml(
listen: {http: "0.0.0.0:2402"}
auth: {mode: none}
providers:
  - {name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1", zone: local}
  - {name: local, base_url: "gopher://x"}
models:
  - {name: small, provider: local, capabilities: [chat, telepathy]}
  - {name: big, provider: x, capabilities: [chat]}
routes:
  - {name: chat, candidates: [small, fast]}
  - {name: fast, candidates: [chat, gpt-x]}
  - {name: small, candidates: [small]}
keys:
  - {name: k, sha256: nope, allow: [chat], limits: {rpm: 0}}
log: {level: loud}
)yaml"),
      ElementsAre(
          "auth.mode: none is refused on a non-loopback listener (listen.http \"0.0.0.0:2402\")",
          "providers[1].name: duplicate provider \"local\" (also providers[0])",
          "providers[1].kind: must be set: openai, ollama, anthropic or mock",
          "providers[1].base_url: \"gopher://x\" is not an http:// or https:// URL",
          "models[0].capabilities[1]: unknown capability \"telepathy\"",
          "models[1].provider: unknown provider \"x\"",
          "routes[0].candidates[1]: cycle chat -> fast -> chat",
          "routes[1].candidates[1]: unknown model or route \"gpt-x\"",
          "routes[2].name: \"small\" is already a model name (models[0])",
          "keys[0].sha256: must be 64 lower-case hex characters (the SHA-256 of the key)",
          "keys[0].limits.rpm: must be positive",
          "log.level: unknown level \"loud\"; use debug, info, warning or error"));
}

}  // namespace
}  // namespace flowork::router
