// One step of an agent task's life per process, for agent_lifecycle_test:
//   approval-wait DB LOG          submit a task whose tool needs approval; die at the wait
//   approve DB LOG                a new process: approve what waits; print how the task ended
//   snapshot DB LOG FILE          run a task to its second tool call, suspend, snapshot to FILE
//   restore DB LOG FILE           another store: restore FILE, run it to the end
// Every tool call performed appends "<tool> <argument> <mode>" to LOG.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/agent/task_state.h"

namespace flowork::agent {
namespace {

std::string mode, log_path;
// The snapshot process's "second" call has started (and hangs).
std::atomic<bool> second_started{false};

void Record(const std::string& line) {
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const std::string text = line + "\n";
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::abort();
  }
  ::close(fd);
}

// Tool calls: "deploy" answers; "step" answers unless its argument is
// "second" in the snapshot process, where it hangs (the task is mid-call).
class Tools final : public EffectHandler {
 public:
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    const v1::ToolCall& c = effect.tools().calls(0);
    const std::string argument = c.arguments().string_value();
    Record(absl::StrCat(c.name(), " ", argument, " ", mode));
    if (mode == "snapshot" && argument == "second") {
      auto shared = std::make_shared<decltype(done)>(std::move(done));
      call->OnCancel([shared] { std::move (*shared)(absl::CancelledError("suspended")); });
      second_started = true;
      return;
    }
    v1::EffectResult result;
    v1::ToolResult* r = result.mutable_tools()->add_results();
    r->set_id(c.id());
    r->mutable_output()->set_string_value(absl::StrCat("did ", argument));
    std::move(done)(std::move(result));
  }
};

// One tool call per listed argument, then finish with the last result.
class Steps final : public Agent {
 public:
  Steps(std::string tool, std::vector<std::string> arguments)
      : tool_(std::move(tool)), arguments_(std::move(arguments)) {}
  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    v1::Effect effect;
    if (context.journal.size() < arguments_.size()) {
      v1::ToolCall* call = effect.mutable_tools()->add_calls();
      call->set_id("c");
      call->set_name(tool_);
      call->mutable_arguments()->set_string_value(arguments_[context.journal.size()]);
      return effect;
    }
    v1::EffectResult last;
    last.ParseFromString(context.journal.back().output());
    const v1::ToolResult& r = last.tools().results(0);
    *effect.mutable_finish()->mutable_output() = r.output();
    if (!r.error().empty()) effect.mutable_finish()->mutable_output()->set_string_value(r.error());
    return effect;
  }

 private:
  const std::string tool_;
  const std::vector<std::string> arguments_;
};

class DeployNeedsApproval final : public ApprovalPolicy {
 public:
  std::optional<Rule> Check(const v1::Task&, const v1::ToolCall& call) const override {
    if (call.name() != "deploy") return std::nullopt;
    return Rule{.reason = "deploys to production"};
  }
};

template <typename F>
bool WaitUntil(F done) {
  for (int i = 0; i < 3000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

int Main(int argc, char** argv) {
  if (argc < 4) return 2;
  mode = argv[1];
  log_path = argv[3];
  const std::string file = argc > 4 ? argv[4] : "";
  auto store = CreateSqliteTaskStore({.path = argv[2]});
  if (!store.ok()) return std::cerr << store.status() << "\n", 3;
  Tools tools;
  DeployNeedsApproval approvals;
  AgentRuntimeOptions options;
  options.tools = &tools;
  options.approvals = &approvals;
  auto runtime = AgentRuntime::Create(options, **store);
  if (!runtime.ok()) return 4;
  v1::AgentSpec deployer;
  deployer.set_name("deployer");
  v1::AgentSpec stepper;
  stepper.set_name("stepper");
  if (!(*runtime)
           ->RegisterAgent(deployer,
                           std::make_shared<Steps>("deploy", std::vector<std::string>{"v2"}))
           .ok() ||
      !(*runtime)
           ->RegisterAgent(stepper, std::make_shared<Steps>(
                                        "step", std::vector<std::string>{"first", "second"}))
           .ok() ||
      !(*runtime)->Start().ok()) {
    return 5;
  }
  auto final_state = [&](const std::string& id) {
    auto task = (*store)->Get(id);
    return task.ok() && IsFinal(task->state());
  };
  if (mode == "approval-wait") {
    v1::Task task;
    task.set_agent("deployer");
    task.set_idempotency_key("deploy-v2");
    auto submitted = (*runtime)->Submit(task);
    if (!submitted.ok()) return 6;
    if (!WaitUntil([&] { return !(*runtime)->PendingApprovals().empty(); })) return 7;
    std::cout << submitted->task.id() << std::endl;
    _exit(0);  // Gone while the task waits: no shutdown, nothing flushed but the store.
  }
  if (mode == "approve") {
    if (!WaitUntil([&] { return !(*runtime)->PendingApprovals().empty(); })) return 8;
    const v1::PendingApproval pending = (*runtime)->PendingApprovals()[0];
    if (!(*runtime)
             ->Decide(pending.task_id(), pending.call_id(),
                      {.verdict = v1::VERDICT_APPROVE, .who = "operator"})
             .ok()) {
      return 9;
    }
    if (!WaitUntil([&] { return final_state(pending.task_id()); })) return 10;
    auto task = (*store)->Get(pending.task_id());
    std::cout << v1::TaskState_Name(task->state()) << " " << task->output().string_value()
              << std::endl;
    (*runtime)->Shutdown();
    return 0;
  }
  if (mode == "snapshot") {
    v1::Task task;
    task.set_agent("stepper");
    auto submitted = (*runtime)->Submit(task);
    if (!submitted.ok()) return 11;
    const std::string id = submitted->task.id();
    if (!WaitUntil([&] {
          auto journal = (*store)->Journal(id);
          // WAITING_TOOL is journaled a moment before the call starts: a
          // suspend in between would end the run before the call.
          return journal.ok() && journal->size() == 2 &&
                 (*store)->Get(id)->state() == v1::TASK_STATE_WAITING_TOOL && second_started.load();
        })) {
      return 12;
    }
    if (!(*runtime)->Suspend(id).ok()) return 13;
    if (!WaitUntil([&] { return (*store)->Get(id)->state() == v1::TASK_STATE_SUSPENDED; })) {
      return 14;
    }
    auto snapshot = (*runtime)->Snapshot(id);
    if (!snapshot.ok()) return 15;
    std::ofstream(file, std::ios::binary) << snapshot->SerializeAsString();
    (*runtime)->Shutdown();
    return 0;
  }
  if (mode == "restore") {
    std::ifstream in(file, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    v1::TaskSnapshot snapshot;
    if (!snapshot.ParseFromString(bytes.str())) return 16;
    auto restored = (*runtime)->Restore(snapshot);
    if (!restored.ok()) return std::cerr << restored.status() << "\n", 17;
    if (!WaitUntil([&] { return final_state(restored->id()); })) return 18;
    auto task = (*store)->Get(restored->id());
    std::cout << v1::TaskState_Name(task->state()) << " " << task->output().string_value()
              << std::endl;
    (*runtime)->Shutdown();
    return 0;
  }
  return 2;
}

}  // namespace
}  // namespace flowork::agent

int main(int argc, char** argv) { return flowork::agent::Main(argc, argv); }
