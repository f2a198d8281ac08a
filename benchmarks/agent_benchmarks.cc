// Also: context assembly for an LLM request over a long session, and the
// token estimator's throughput.
//
// The agent scheduler's hot path: DispatchQueue::Pop over a backlog spread
// across 100 tenants, with the Finish and the replacement Push of a steady
// state in every iteration.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "flowork/agent/context_assembler.h"
#include "flowork/agent/dispatch_queue.h"
#include "flowork/agent/token_counter.h"

namespace {

using flowork::agent::DispatchQueue;
using flowork::agent::DispatchQueueOptions;
using flowork::agent::ReadyTask;
namespace v1 = flowork::agent::v1;

constexpr int kTenants = 100;
constexpr int kAgents = 10;
constexpr int kModels = 4;

// Limits and budgets that all apply on every Pop; `tenant_limit` 1 lets the
// blocked variant pin tenants at their maximum.
DispatchQueueOptions Options(int tenant_limit) {
  DispatchQueueOptions options;
  options.max_running = 256;
  options.default_max_running_per_agent = 128;
  options.default_max_running_per_tenant = tenant_limit;
  for (int t = 0; t < kTenants; ++t) options.tenant_weights[absl::StrCat("tenant-", t)] = 1 + t % 4;
  for (int m = 0; m < kModels; ++m) {
    options.model_budgets[absl::StrCat("model-", m)] = {.requests_per_minute = 1'000'000'000,
                                                        .tokens_per_minute = 1'000'000'000'000};
  }
  return options;
}

// 20% interactive, 50% standard, 30% batch; a third with a deadline.
ReadyTask MakeTask(int64_t n, absl::Time now) {
  ReadyTask task;
  task.id = absl::StrCat("task-", n);
  task.tenant = absl::StrCat("tenant-", n % kTenants);
  task.agent = absl::StrCat("agent-", n % kAgents);
  task.model = absl::StrCat("model-", n % kModels);
  const int bucket = static_cast<int>(n % 10);
  task.priority = bucket < 2   ? v1::PRIORITY_INTERACTIVE
                  : bucket < 7 ? v1::PRIORITY_STANDARD
                               : v1::PRIORITY_BATCH;
  if (n % 3 == 0) task.deadline = now + absl::Seconds(60 + n % 600);
  task.ready_since = now;
  task.estimated_tokens = 1'000;
  return task;
}

// Each iteration: Pop (timed alone too, for its percentiles), Finish, Push a
// replacement for the same tenant, so `queued` tasks stay queued. Fake time moves 1 ms per
// iteration, so tasks left waiting age across classes as they would live.
void RunPushPop(benchmark::State& state, int tenant_limit, int blocked_tenants) {
  const int queued = static_cast<int>(state.range(0));
  auto created = DispatchQueue::Create(Options(tenant_limit));
  if (!created.ok()) return state.SkipWithError(std::string(created.status().message()).c_str());
  DispatchQueue& queue = **created;
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  int64_t next = 0;
  // Pin `blocked_tenants` tenants at their limit with a task that never finishes.
  for (int t = 0; t < blocked_tenants; ++t) {
    ReadyTask pin = MakeTask(t, now);
    pin.id = absl::StrCat("pin-", t);
    pin.priority = v1::PRIORITY_INTERACTIVE;
    queue.Push(pin);
  }
  for (int t = 0; t < blocked_tenants; ++t) {
    if (!queue.Pop(now)) return state.SkipWithError("could not pin a tenant");
  }
  for (int i = 0; i < queued; ++i) queue.Push(MakeTask(next++, now));

  std::vector<int64_t> pop_ns;
  pop_ns.reserve(1 << 20);
  for (auto _ : state) {
    now += absl::Milliseconds(1);
    const auto start = std::chrono::steady_clock::now();
    std::optional<ReadyTask> task = queue.Pop(now);
    const auto stop = std::chrono::steady_clock::now();
    if (pop_ns.size() < pop_ns.capacity()) {
      pop_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count());
    }
    if (!task) return state.SkipWithError("nothing dispatchable");
    queue.Finish(*task, task->estimated_tokens);
    // The replacement goes to the same tenant, so pinned tenants never pile up.
    ReadyTask replacement = MakeTask(next++, now);
    replacement.tenant = std::move(task->tenant);
    queue.Push(std::move(replacement));
  }
  if (pop_ns.empty()) return;
  std::sort(pop_ns.begin(), pop_ns.end());
  state.counters["pop_p50_ns"] = static_cast<double>(pop_ns[pop_ns.size() / 2]);
  state.counters["pop_p99_ns"] = static_cast<double>(pop_ns[pop_ns.size() * 99 / 100]);
}

void BM_DispatchQueue_PushPop(benchmark::State& state) { RunPushPop(state, 0, 0); }
BENCHMARK(BM_DispatchQueue_PushPop)->Arg(1'000)->Arg(10'000);

// Half the tenants sit at their concurrency limit: every Pop walks past their
// lanes in each class, the worst case the design allows (O(#blocked lanes)).
void BM_DispatchQueue_PushPopHalfTenantsBlocked(benchmark::State& state) {
  RunPushPop(state, 1, kTenants / 2);
}
BENCHMARK(BM_DispatchQueue_PushPopHalfTenantsBlocked)->Arg(1'000)->Arg(10'000);

// A session of N messages (users asking, every tenth turn a tool call with an
// 80-word result) assembled into a 128k window with a 500-token system prompt
// and a pinned block: most of it is dropped, the newest ~120k tokens are kept.
void BM_ContextAssembler_LongSession(benchmark::State& state) {
  const auto words = [](int n, std::string_view tag) {
    std::string text;
    for (int i = 0; i < n; ++i) {
      if (i > 0) text += ' ';
      text.append(tag).append("ord");
    }
    return text;
  };
  v1::Session session;
  for (int i = 0; i < state.range(0); ++i) {
    if (i % 10 == 3) {
      v1::ChatMessage* call = session.add_messages();
      call->set_role("assistant");
      v1::ToolCall* tool = call->add_tool_calls();
      tool->set_id(absl::StrCat("call_", i));
      tool->set_name("search");
      v1::ChatMessage* result = session.add_messages();
      result->set_role("tool");
      result->set_tool_call_id(tool->id());
      result->set_content(words(80, "t"));
      ++i;
    } else {
      v1::ChatMessage* user = session.add_messages();
      user->set_role("user");
      user->set_content(absl::StrCat("turn ", i, ": ", words(i % 60, "w")));
    }
  }
  flowork::agent::ContextInputs inputs;
  inputs.context_window = 128'000;
  inputs.reserved_output_tokens = 4'000;
  inputs.system_prompt = words(500, "s");
  inputs.pinned_blocks = {{.label = "user", .content = words(300, "p")}};
  inputs.session = &session;
  const flowork::agent::TokenCounter& counter = flowork::agent::TokenCounterFor("gpt-4o");
  int64_t kept = 0;
  for (auto _ : state) {
    flowork::agent::AssembledContext context = flowork::agent::AssembleContext(inputs, counter);
    kept = static_cast<int64_t>(context.kept_messages.size());
    benchmark::DoNotOptimize(context);
  }
  state.counters["kept_messages"] = static_cast<double>(kept);
}
BENCHMARK(BM_ContextAssembler_LongSession)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

// Estimating English prose, in bytes per second.
void BM_TokenCounter_Prose(benchmark::State& state) {
  std::string text;
  while (text.size() < 1 << 20) {
    text.append(
        "The agent keeps the system prompt, its pinned memory and the newest turns, and elides "
        "old tool results (see docs/agents.md) before it drops anything; version 2.4 shipped "
        "on 2024-05-01.\n");
  }
  const flowork::agent::TokenCounter& counter = flowork::agent::TokenCounterFor("gpt-4o");
  for (auto _ : state) benchmark::DoNotOptimize(counter.CountText(text));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_TokenCounter_Prose);

}  // namespace
