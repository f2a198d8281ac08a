// The agent runtime end to end: one-step tasks (the agent finishes at once)
// submitted while others run, on the in-memory store and on SQLite.
//   BM_AgentRuntime_SubmitToStep: from Submit returning until the agent's
//     step runs (dispatch: two state writes and the queue), p50/p99.
//   BM_AgentRuntime_DurableSubmitComplete: tasks/s from Submit to SUCCEEDED
//     with `in_flight` tasks at a time, on a SQLite file (WAL, group commit).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/sqlite_task_store.h"

namespace flowork::agent {
namespace {

// Finishes at once; notes when each task's step ran.
class Finisher final : public Agent {
 public:
  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    const absl::Time now = absl::Now();
    int64_t submitted = 0;
    if (auto it = context.task.labels().find("t");
        it != context.task.labels().end() && absl::SimpleAtoi(it->second, &submitted)) {
      absl::MutexLock lock(&mu_);
      stepped_.push_back(now - absl::FromUnixNanos(submitted));
    }
    v1::Effect effect;
    effect.mutable_finish();
    return effect;
  }
  std::vector<absl::Duration> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(stepped_);
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::Duration> stepped_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<AgentRuntime> MakeRuntime(TaskStore& store, std::shared_ptr<Agent> agent) {
  AgentRuntimeOptions options;
  options.threads = 2;
  options.dispatch.max_running = 1024;
  auto runtime = AgentRuntime::Create(options, store);
  if (!runtime.ok()) std::abort();
  v1::AgentSpec spec;
  spec.set_name("finisher");
  if (!(*runtime)->RegisterAgent(spec, std::move(agent)).ok()) std::abort();
  if (!(*runtime)->Start().ok()) std::abort();
  return *std::move(runtime);
}

void WaitAllFinal(TaskStore& store, const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    for (;;) {
      auto task = store.Get(id);
      if (task.ok() && task->state() == v1::TASK_STATE_SUCCEEDED) break;
      absl::SleepFor(absl::Microseconds(50));
    }
  }
}

void BM_AgentRuntime_SubmitToStep(benchmark::State& state) {
  std::unique_ptr<TaskStore> store = CreateInMemoryTaskStore();
  auto agent = std::make_shared<Finisher>();
  std::unique_ptr<AgentRuntime> runtime = MakeRuntime(*store, agent);
  std::vector<std::string> ids;
  for (auto _ : state) {
    v1::Task task;
    task.set_agent("finisher");
    (*task.mutable_labels())["t"] = absl::StrCat(absl::ToUnixNanos(absl::Now()));
    auto submitted = runtime->Submit(std::move(task));
    if (!submitted.ok()) std::abort();
    ids.push_back(submitted->task.id());
    // One at a time: latency, not queueing.
    WaitAllFinal(*store, {ids.back()});
  }
  std::vector<absl::Duration> latencies = agent->Take();
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    state.counters["p50_us"] = absl::ToDoubleMicroseconds(latencies[latencies.size() / 2]);
    state.counters["p99_us"] = absl::ToDoubleMicroseconds(latencies[latencies.size() * 99 / 100]);
  }
}
BENCHMARK(BM_AgentRuntime_SubmitToStep)->UseRealTime();

void BM_AgentRuntime_DurableSubmitComplete(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  char dir[] = "/tmp/flowork-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::abort();
  const std::string path = absl::StrCat(dir, "/tasks.db");
  auto store = CreateSqliteTaskStore({.path = path});
  if (!store.ok()) std::abort();
  std::unique_ptr<AgentRuntime> runtime = MakeRuntime(**store, std::make_shared<Finisher>());
  int64_t done = 0;
  for (auto _ : state) {
    std::vector<std::string> ids;
    for (int i = 0; i < in_flight; ++i) {
      v1::Task task;
      task.set_agent("finisher");
      auto submitted = runtime->Submit(std::move(task));
      if (!submitted.ok()) std::abort();
      ids.push_back(submitted->task.id());
    }
    WaitAllFinal(**store, ids);
    done += in_flight;
  }
  state.counters["tasks_per_s"] =
      benchmark::Counter(static_cast<double>(done), benchmark::Counter::kIsRate);
  runtime.reset();
  store->reset();
  std::system(absl::StrCat("rm -rf ", dir).c_str());
}
BENCHMARK(BM_AgentRuntime_DurableSubmitComplete)->Arg(64)->Arg(256)->UseRealTime();

}  // namespace
}  // namespace flowork::agent
