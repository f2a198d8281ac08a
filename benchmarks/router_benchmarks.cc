// The routing decision on the request path: Policy::Plan over a route of N
// candidates with live stats; and the usage governor's admission.
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "flowork/core/clock.h"
#include "flowork/router/policy.h"
#include "flowork/router/usage_governor.h"

namespace {

using flowork::router::PolicyEngine;
using flowork::router::RequestView;
namespace v1 = flowork::router::v1;

// N models over N/4 providers (two zones), one route over all of them.
v1::RouterConfig ConfigWith(int candidates, v1::Route::Objective objective) {
  v1::RouterConfig config;
  const int providers = std::max(1, candidates / 4);
  for (int p = 0; p < providers; ++p) {
    v1::Provider& provider = *config.add_providers();
    provider.set_name(absl::StrCat("provider-", p));
    provider.set_kind(v1::Provider::KIND_OPENAI);
    provider.set_base_url(absl::StrCat("http://127.0.0.1:", 9000 + p, "/v1"));
    provider.set_zone(p % 2 == 0 ? "local" : "remote");
  }
  v1::Route& route = *config.add_routes();
  route.set_name("chat");
  route.set_objective(objective);
  route.mutable_require()->add_capabilities("chat");
  for (int m = 0; m < candidates; ++m) {
    v1::Model& model = *config.add_models();
    model.set_name(absl::StrCat("model-", m));
    model.set_provider(absl::StrCat("provider-", m % providers));
    model.set_context_window(m % 3 == 0 ? 8192 : 131072);
    model.add_capabilities("chat");
    if (m % 2 == 0) model.add_capabilities("tools");
    model.mutable_price()->set_input_per_mtok(0.1 * m);
    model.mutable_price()->set_output_per_mtok(0.3 * m);
    route.add_candidates(model.name());
  }
  return config;
}

void BM_Policy_Plan(benchmark::State& state) {
  const int candidates = static_cast<int>(state.range(0));
  auto engine = PolicyEngine::Create(ConfigWith(candidates, v1::Route::OBJECTIVE_LEAST_LATENCY),
                                     flowork::core::Clock::Real());
  if (!engine.ok()) return state.SkipWithError(std::string(engine.status().message()).c_str());
  // Give every endpoint some history so scores differ.
  for (int m = 0; m < candidates; ++m) {
    auto endpoint = (*engine)->stats().Find(
        absl::StrCat("model-", m, "@provider-", m % std::max(1, candidates / 4)));
    if (endpoint && endpoint->BeginAttempt()) endpoint->OnSuccess(absl::Milliseconds(20 + m % 17));
  }
  RequestView request;
  request.model = "chat";
  request.estimated_prompt_tokens = 900;
  request.max_tokens = 256;
  request.required_capabilities = {"tools"};
  request.key_zones = {"local", "remote"};
  uint64_t seed = 1;
  for (auto _ : state) {
    request.seed = seed++;
    auto plan = (*engine)->Plan(request);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_Policy_Plan)->Arg(4)->Arg(32)->Arg(256);

// One Admit + Settle per iteration: each thread its own key with rpm, tpm and
// budgets; with range(0) == 1 all keys also share one tenant with limits and
// budgets (the contended case). Limits are high enough never to refuse.
void BM_UsageGovernor_AdmitSettle(benchmark::State& state) {
  static const std::unique_ptr<flowork::router::UsageGovernor> governor =
      flowork::router::NewInMemoryUsageGovernor(flowork::core::Clock::Real());
  v1::Limits limits;
  limits.set_rpm(4'000'000'000);
  limits.set_tpm(uint64_t{1} << 50);
  v1::Budget budget;
  budget.set_usd_per_day(1e12);
  budget.set_usd_per_month(1e13);
  flowork::router::UsageSubject subject;
  subject.key = absl::StrCat("key-", state.thread_index());
  subject.key_limits = &limits;
  subject.key_budget = &budget;
  if (state.range(0) == 1) {
    subject.tenant = "tenant";
    subject.tenant_limits = &limits;
    subject.tenant_budget = &budget;
  }
  for (auto _ : state) {
    auto reservation = governor->Admit(subject, 1000);
    if (!reservation.ok()) return state.SkipWithError("refused");
    governor->Settle(*std::move(reservation), {800, 0.0001});
  }
}
BENCHMARK(BM_UsageGovernor_AdmitSettle)
    ->ArgName("tenant")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(4)
    ->UseRealTime();

}  // namespace
