#include "flowork/router/policy.h"

#include <map>

#include "absl/strings/str_cat.h"

#include "flowork/core/config_loader.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"yaml(
providers:
  - {name: local-a, kind: openai, base_url: "http://127.0.0.1:8001/v1", zone: local, max_concurrency: 10}
  - {name: local-b, kind: openai, base_url: "http://127.0.0.1:8002/v1", zone: local, max_concurrency: 10}
  - {name: cloud, kind: openai, base_url: "https://api.example.com/v1", zone: remote, max_concurrency: 100}
models:
  - {name: small, provider: local-a, context_window: 8192, capabilities: [chat, prefill],
     price: {input_per_mtok: 0, output_per_mtok: 0}}
  - {name: medium, provider: local-b, context_window: 32768, capabilities: [chat, tools, json],
     price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
  - {name: big, provider: cloud, context_window: 128000, capabilities: [chat, tools, json, vision],
     price: {input_per_mtok: 2.5, output_per_mtok: 10}}
routes:
  - {name: chat, candidates: [small, medium, big], require: {capabilities: [chat]}}
  - {name: local-only, candidates: [small, medium, big], require: {zones: [local]}}
  - {name: cheap, candidates: [small, medium, big], require: {max_cost_usd: 0.01}}
  - {name: weighted, candidates: [small, medium], objective: weighted, weights: {small: 3, medium: 1}}
  - {name: fast, candidates: [small, medium, big], objective: least_latency}
  - {name: idle, candidates: [small, medium, big], objective: least_busy}
  - {name: thrifty, candidates: [big, medium, small], objective: lowest_cost}
  - {name: rr, candidates: [small, medium, big], objective: round_robin}
  - {name: sticky, candidates: [small, medium, big], objective: affinity}
  - {name: pair, candidates: [small, medium]}
  - {name: nested, candidates: [big, pair]}
)yaml";

v1::RouterConfig Config(const std::string& yaml = kConfig) {
  v1::RouterConfig config;
  absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return config;
}

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto engine = PolicyEngine::Create(Config(), clock_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  RequestView Request(const std::string& model, uint64_t seed = 1) {
    RequestView request;
    request.model = model;
    request.seed = seed;
    return request;
  }

  // "small", "medium", ... of the plan's attempts.
  std::vector<std::string> Order(const RequestView& request) {
    absl::StatusOr<AttemptPlan> plan = engine_->Plan(request);
    EXPECT_TRUE(plan.ok()) << plan.status();
    std::vector<std::string> names;
    if (plan.ok()) {
      for (const Endpoint& e : plan->attempts) names.push_back(e.model->name());
    }
    return names;
  }

  // The verdict on `model` in the plan for `request`.
  std::string Verdict(const RequestView& request, const std::string& model) {
    absl::StatusOr<AttemptPlan> plan = engine_->Explain(request);
    EXPECT_TRUE(plan.ok()) << plan.status();
    for (const CandidateDecision& d : plan->decisions) {
      if (d.endpoint.model->name() == model) return d.Explain();
    }
    return "(not a candidate)";
  }

  EndpointState& State(const std::string& id) { return *engine_->stats().Find(id); }

  testing::FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  std::unique_ptr<PolicyEngine> engine_;
};

TEST_F(PolicyTest, PriorityKeepsConfigurationOrder) {
  EXPECT_THAT(Order(Request("chat")), ElementsAre("small", "medium", "big"));
}

TEST_F(PolicyTest, AModelNameIsARouteOfOne) {
  EXPECT_THAT(Order(Request("medium")), ElementsAre("medium"));
}

TEST_F(PolicyTest, UnknownNameIsNotFound) {
  absl::StatusOr<AttemptPlan> plan = engine_->Plan(Request("gpt-x"));
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(plan.status().message(), "no model or route named \"gpt-x\"");
}

TEST_F(PolicyTest, NamesItsRoutesAndModelsOnly) {
  const std::shared_ptr<const Policy> policy = engine_->Current();
  EXPECT_TRUE(policy->Names("chat"));    // A route.
  EXPECT_TRUE(policy->Names("medium"));  // A model.
  EXPECT_FALSE(policy->Names("gpt-x"));
  EXPECT_FALSE(policy->Names(""));
}

TEST_F(PolicyTest, NestedRoutesFlattenInCandidateOrder) {
  EXPECT_THAT(Order(Request("nested")), ElementsAre("big", "small", "medium"));
}

TEST_F(PolicyTest, DropsCandidatesMissingARequestedCapability) {
  RequestView request = Request("chat");
  request.required_capabilities = {"vision"};
  EXPECT_THAT(Order(request), ElementsAre("big"));
  EXPECT_EQ(Verdict(request, "small"), "missing capability vision");
  request.required_capabilities = {"telepathy"};
  EXPECT_EQ(Verdict(request, "big"), "missing capability telepathy");
}

TEST_F(PolicyTest, DropsCandidatesWhoseContextIsTooSmall) {
  RequestView request = Request("chat");
  request.estimated_prompt_tokens = 8000;
  request.max_tokens = 1000;
  EXPECT_THAT(Order(request), ElementsAre("medium", "big"));
  EXPECT_EQ(Verdict(request, "small"), "context 8192 < needed 9000");
}

TEST_F(PolicyTest, RouteZonesAreRequired) {
  EXPECT_THAT(Order(Request("local-only")), ElementsAre("small", "medium"));
  EXPECT_EQ(Verdict(Request("local-only"), "big"), "zone remote not allowed by route local-only");
}

TEST_F(PolicyTest, KeyZonesKeepDataLocalEvenWhenEverythingLocalIsDown) {
  RequestView request = Request("chat");
  request.key_zones = {"local"};
  request.key_name = "team-a";
  EXPECT_THAT(Order(request), ElementsAre("small", "medium"));
  EXPECT_EQ(Verdict(request, "big"), "zone remote not allowed for key team-a");
  for (const char* id : {"small@local-a", "medium@local-b"}) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(State(id).BeginAttempt());
      State(id).OnFailure(FailureKind::kConnect);
    }
  }
  absl::StatusOr<AttemptPlan> plan = engine_->Plan(request);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(), HasSubstr("big: zone remote not allowed for key team-a"));
  EXPECT_THAT(plan.status().message(), HasSubstr("small: circuit open until"));
}

TEST_F(PolicyTest, ZoneHeaderNarrowsButNeverWidensTheKey) {
  RequestView request = Request("chat");
  request.header_zones = {"local"};
  EXPECT_THAT(Order(request), ElementsAre("small", "medium"));
  EXPECT_EQ(Verdict(request, "big"), "zone remote not allowed by x-flowork-zone");
  request.key_zones = {"local"};
  request.header_zones = {"remote", "local"};
  EXPECT_THAT(Order(request), ElementsAre("small", "medium"));
}

TEST_F(PolicyTest, DropsCandidatesOverTheCostCeiling) {
  RequestView request = Request("cheap");
  request.estimated_prompt_tokens = 2000;
  request.max_tokens = 1000;
  // big: 2000 * 2.5e-6 + 1000 * 10e-6 = 0.015 > 0.01.
  EXPECT_THAT(Order(request), ElementsAre("small", "medium"));
  EXPECT_EQ(Verdict(request, "big"), "estimated cost $0.015 > ceiling $0.01");
}

TEST_F(PolicyTest, DropsOpenCircuitsThenOffersOneProbe) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(State("small@local-a").BeginAttempt());
    State("small@local-a").OnFailure(FailureKind::kServerError);
  }
  EXPECT_THAT(Order(Request("chat")), ElementsAre("medium", "big"));
  EXPECT_EQ(Verdict(Request("chat"), "small"), "circuit open until 2027-01-15T08:00:10.000Z");
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(Order(Request("chat")), ElementsAre("small", "medium", "big"));
  ASSERT_TRUE(State("small@local-a").BeginAttempt());  // The probe.
  EXPECT_EQ(Verdict(Request("chat"), "small"), "circuit half-open, probe in flight");
}

TEST_F(PolicyTest, HonoursRetryAfterCooldown) {
  ASSERT_TRUE(State("small@local-a").BeginAttempt());
  State("small@local-a").OnFailure(FailureKind::kRateLimited, absl::Seconds(5));
  EXPECT_THAT(Order(Request("chat")), ElementsAre("medium", "big"));
  EXPECT_EQ(Verdict(Request("chat"), "small"),
            "cooling down until 2027-01-15T08:00:05.000Z (Retry-After)");
  clock_.Advance(absl::Seconds(5));
  EXPECT_THAT(Order(Request("chat")), ElementsAre("small", "medium", "big"));
}

TEST_F(PolicyTest, WeightedSharesMatchWeightsWithinOnePercentOver10kPicks) {
  std::map<std::string, int> firsts;
  for (uint64_t seed = 1; seed <= 10'000; ++seed) ++firsts[Order(Request("weighted", seed))[0]];
  EXPECT_NEAR(firsts["small"] / 10'000.0, 0.75, 0.01);
  EXPECT_NEAR(firsts["medium"] / 10'000.0, 0.25, 0.01);
}

TEST_F(PolicyTest, LeastLatencyPrefersFastEndpointsButNeverHerdsOntoTheSlowest) {
  auto record = [&](const std::string& id, int ms) {
    ASSERT_TRUE(State(id).BeginAttempt());
    State(id).OnSuccess(absl::Milliseconds(ms));
  };
  record("small@local-a", 300);
  record("medium@local-b", 50);
  record("big@cloud", 900);
  std::map<std::string, int> firsts;
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    std::vector<std::string> order = Order(Request("fast", seed));
    ++firsts[order[0]];
    // After the first pick, the rest are by score.
    if (order[0] == "medium") {
      EXPECT_THAT(order, ElementsAre("medium", "small", "big"));
    }
  }
  // Power of two choices over 3: the fastest wins 2 of 3 draws, the middle 1
  // of 3, the slowest never.
  EXPECT_NEAR(firsts["medium"] / 3000.0, 2.0 / 3, 0.05);
  EXPECT_NEAR(firsts["small"] / 3000.0, 1.0 / 3, 0.05);
  EXPECT_EQ(firsts["big"], 0);
}

TEST_F(PolicyTest, LeastLatencyRanksStreamsByTimeToFirstToken) {
  ASSERT_TRUE(State("small@local-a").BeginAttempt());
  State("small@local-a").OnSuccess(absl::Milliseconds(900), absl::Milliseconds(10));
  ASSERT_TRUE(State("medium@local-b").BeginAttempt());
  State("medium@local-b").OnSuccess(absl::Milliseconds(100), absl::Milliseconds(80));
  ASSERT_TRUE(State("big@cloud").BeginAttempt());
  State("big@cloud").OnSuccess(absl::Milliseconds(950), absl::Milliseconds(500));
  RequestView request = Request("fast");
  request.stream = true;
  EXPECT_EQ(Order(request).back(), "big");
  request.stream = false;
  for (uint64_t seed = 1; seed < 50; ++seed) {
    request.seed = seed;
    EXPECT_EQ(Order(request).back(), "big");
    EXPECT_NE(Order(request)[0], "big");
  }
}

TEST_F(PolicyTest, LeastBusyRanksByInFlightOverCapacity) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(State("small@local-a").BeginAttempt());   // 5/10
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(State("medium@local-b").BeginAttempt());  // 2/10
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(State("big@cloud").BeginAttempt());      // 30/100
  EXPECT_THAT(Order(Request("idle")), ElementsAre("medium", "big", "small"));
}

TEST_F(PolicyTest, LowestCostRanksByEstimatedCost) {
  RequestView request = Request("thrifty");
  request.estimated_prompt_tokens = 1000;
  request.max_tokens = 100;
  EXPECT_THAT(Order(request), ElementsAre("small", "medium", "big"));
}

TEST_F(PolicyTest, RoundRobinRotatesEvenly) {
  std::map<std::string, int> firsts;
  for (uint64_t seed = 0; seed < 300; ++seed) ++firsts[Order(Request("rr", seed))[0]];
  EXPECT_EQ(firsts["small"], 100);
  EXPECT_EQ(firsts["medium"], 100);
  EXPECT_EQ(firsts["big"], 100);
  EXPECT_THAT(Order(Request("rr", 1)), ElementsAre("medium", "big", "small"));
}

TEST_F(PolicyTest, AffinityKeepsASessionOnOneEndpointAndFallsBackWhenItIsDown) {
  RequestView request = Request("sticky");
  request.affinity_key = "session-42";
  const std::string home = Order(request)[0];
  for (uint64_t seed = 2; seed < 20; ++seed) {
    request.seed = seed;
    EXPECT_EQ(Order(request)[0], home);
  }
  const std::string id = home + (home == "small"    ? "@local-a"
                                 : home == "medium" ? "@local-b"
                                                    : "@cloud");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(State(id).BeginAttempt());
    State(id).OnFailure(FailureKind::kConnect);
  }
  std::vector<std::string> fallback = Order(request);
  ASSERT_EQ(fallback.size(), 2u);
  EXPECT_NE(fallback[0], home);
}

TEST(PolicyAffinityTest, RemovingAnEndpointMovesOnlyItsOwnKeys) {
  testing::FakeClock clock;
  auto engine = PolicyEngine::Create(Config(), clock);
  ASSERT_TRUE(engine.ok());
  auto home_of = [&](const std::string& key) {
    RequestView request;
    request.model = "sticky";
    request.affinity_key = key;
    request.seed = 1;
    return (*engine)->Plan(request)->attempts[0].model->name();
  };
  std::map<std::string, std::string> before;
  std::map<std::string, int> counts;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("session-", i);
    before[key] = home_of(key);
    ++counts[before[key]];
  }
  for (const auto& [name, count] : counts) EXPECT_GT(count, 250) << name;  // Spread evenly.

  std::string yaml = kConfig;
  yaml.replace(yaml.find("{name: sticky, candidates: [small, medium, big]"),
               std::string("{name: sticky, candidates: [small, medium, big]").size(),
               "{name: sticky, candidates: [small, big]");
  ASSERT_TRUE((*engine)->ApplyConfig(Config(yaml)).ok());
  int moved = 0;
  for (const auto& [key, home] : before) {
    const std::string now = home_of(key);
    if (home != "medium") {
      EXPECT_EQ(now, home) << key;
    } else {
      ++moved;
    }
  }
  EXPECT_EQ(moved, counts["medium"]);
}

TEST_F(PolicyTest, SameSnapshotStatsAndSeedGiveTheSamePlan) {
  ASSERT_TRUE(State("small@local-a").BeginAttempt());
  State("small@local-a").OnSuccess(absl::Milliseconds(40));
  for (uint64_t seed : {1, 7, 99, 12345}) {
    absl::StatusOr<AttemptPlan> a = engine_->Plan(Request("fast", seed));
    absl::StatusOr<AttemptPlan> b = engine_->Plan(Request("fast", seed));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->Explain(), b->Explain());
    EXPECT_EQ(a->seed, seed);
  }
}

TEST_F(PolicyTest, EngineAssignsIncreasingSeedsWhenTheRequestHasNone) {
  RequestView request;
  request.model = "chat";
  uint64_t first = engine_->Plan(request)->seed;
  EXPECT_EQ(engine_->Plan(request)->seed, first + 1);
}

TEST_F(PolicyTest, ReloadCarriesStatsOfEndpointsThatStillExist) {
  ASSERT_TRUE(State("small@local-a").BeginAttempt());
  State("small@local-a").OnSuccess(absl::Milliseconds(123));
  std::shared_ptr<const Policy> old = engine_->Current();
  absl::StatusOr<AttemptPlan> in_flight = engine_->Plan(Request("chat"));
  ASSERT_TRUE(in_flight.ok());

  std::string yaml = kConfig;
  yaml += "  - {name: extra, candidates: [small]}\n";
  ASSERT_TRUE(engine_->ApplyConfig(Config(yaml)).ok());
  EXPECT_NE(engine_->Current(), old);
  EXPECT_DOUBLE_EQ(*State("small@local-a").Read(clock_.Now()).latency_ewma_ms, 123);
  EXPECT_THAT(Order(Request("extra")), ElementsAre("small"));
  // A plan made before the reload still points into its own snapshot.
  EXPECT_EQ(in_flight->attempts[0].model->name(), "small");
}

// A request checked against a snapshot is planned on that snapshot, even
// after a reload swapped in another (here: one without the route).
TEST_F(PolicyTest, PlansOnTheSnapshotGivenEvenAfterAReload) {
  std::shared_ptr<const Policy> checked = engine_->Current();
  std::string yaml = kConfig;
  yaml += "  - {name: extra, candidates: [small]}\n";
  ASSERT_TRUE(engine_->ApplyConfig(Config(yaml)).ok());
  RequestView request;
  request.model = "extra";
  EXPECT_EQ(engine_->Plan(*checked, request).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->Explain(*checked, request).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<AttemptPlan> current = engine_->Plan(request);
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_GT(current->seed, 0u);  // Seeded by the engine, as without a snapshot.
  EXPECT_TRUE(engine_->Plan(*engine_->Current(), request).ok());
}

TEST_F(PolicyTest, InvalidReloadKeepsTheCurrentSnapshot) {
  std::shared_ptr<const Policy> old = engine_->Current();
  v1::RouterConfig bad = Config();
  bad.mutable_routes(0)->add_candidates("ghost");
  EXPECT_FALSE(engine_->ApplyConfig(bad).ok());
  EXPECT_EQ(engine_->Current(), old);
}

TEST_F(PolicyTest, ExplainListsEveryCandidateWithItsVerdict) {
  RequestView request = Request("chat");
  request.required_capabilities = {"tools"};
  absl::StatusOr<AttemptPlan> plan = engine_->Explain(request);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->Explain(),
            "chat (priority, seed 1)\n"
            "  try 1: medium@local-b\n"
            "  try 2: big@cloud\n"
            "  small@local-a: missing capability tools\n"
            "  medium@local-b: kept\n"
            "  big@cloud: kept\n");
}

}  // namespace
}  // namespace flowork::router
