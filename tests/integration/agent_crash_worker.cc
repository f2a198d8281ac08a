// A process that runs 3-step tasks on a SQLite store until all are done, to be
// killed at random points by agent_crash_test. Each step's tool appends
// "<task id> <seq> <incarnation>" to a side-effect log before answering.
// Usage: agent_crash_worker DB LOG INCARNATION TASKS
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/agent/task_state.h"

namespace flowork::agent {
namespace {

constexpr int kToolSteps = 3;

// Steps 1..3 call tool "effect" with argument "<seq>", then finish.
class Stepper final : public Agent {
 public:
  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    v1::Effect effect;
    if (context.journal.size() >= kToolSteps) {
      effect.mutable_finish()->mutable_output()->set_string_value("done");
      return effect;
    }
    v1::ToolCall* call = effect.mutable_tools()->add_calls();
    call->set_id("c");
    call->set_name("effect");
    call->mutable_arguments()->set_string_value(absl::StrCat(context.journal.size() + 1));
    return effect;
  }
};

// The side effect: a line in the log, then the answer after a little while.
class SideEffects final : public EffectHandler {
 public:
  SideEffects(int fd, std::string incarnation) : fd_(fd), incarnation_(std::move(incarnation)) {}
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    const std::string line =
        absl::StrCat(call->task().id(), " ", effect.tools().calls(0).arguments().string_value(),
                     " ", incarnation_, "\n");
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
    std::thread([done = std::move(done), id = effect.tools().calls(0).id()]() mutable {
      thread_local std::mt19937 rng(std::random_device{}());
      absl::SleepFor(absl::Microseconds(std::uniform_int_distribution<int>(10000, 40000)(rng)));
      v1::EffectResult result;
      result.mutable_tools()->add_results()->set_id(id);
      std::move(done)(std::move(result));
    }).detach();
  }

 private:
  const int fd_;
  const std::string incarnation_;
};

int Main(int argc, char** argv) {
  int tasks = 0;
  if (argc != 5 || !absl::SimpleAtoi(argv[4], &tasks)) {
    std::cerr << "usage: agent_crash_worker DB LOG INCARNATION TASKS\n";
    return 2;
  }
  const int log = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log < 0) return 3;
  auto store = CreateSqliteTaskStore({.path = argv[1]});
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 4;
  }
  SideEffects tools(log, argv[3]);
  AgentRuntimeOptions options;
  options.tools = &tools;
  options.threads = 2;
  // Few at a time, so a run takes long enough to be killed many times.
  options.dispatch.max_running = 8;
  auto runtime = AgentRuntime::Create(options, **store);
  if (!runtime.ok()) return 5;
  v1::AgentSpec spec;
  spec.set_name("stepper");
  if (!(*runtime)->RegisterAgent(spec, std::make_shared<Stepper>()).ok()) return 6;
  if (!(*runtime)->Start().ok()) return 7;
  std::vector<std::string> ids;
  for (int i = 0; i < tasks; ++i) {
    // The same keys every time: a restart submits nothing new.
    v1::Task task;
    task.set_agent("stepper");
    task.set_tenant("crash");
    task.set_idempotency_key(absl::StrCat("task-", i));
    auto submitted = (*runtime)->Submit(task);
    if (!submitted.ok()) {
      std::cerr << submitted.status() << "\n";
      return 8;
    }
    ids.push_back(submitted->task.id());
  }
  for (;;) {
    bool all_final = true;
    for (const std::string& id : ids) {
      auto task = (*store)->Get(id);
      if (!task.ok() || !IsFinal(task->state())) {
        all_final = false;
        break;
      }
    }
    if (all_final) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  (*runtime)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace flowork::agent

int main(int argc, char** argv) { return flowork::agent::Main(argc, argv); }
