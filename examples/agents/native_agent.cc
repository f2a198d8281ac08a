// A native C++ agent on the durable runtime: it looks a city up with a native
// tool, then finishes with what the tool said. Run it twice with the same
// database and the second run finds the task already done (idempotent
// submit); kill it mid-way and the next run resumes without repeating the
// lookup.
//
//   native_agent [DATABASE] [CITY]
#include <iostream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/agent/task_state.h"
#include "flowork/agent/tool_registry.h"

namespace agent = flowork::agent;
namespace v1 = flowork::agent::v1;

// Decides; never acts. Step 1: call the tool. Step 2: finish with its result.
class WeatherAgent final : public agent::Agent {
 public:
  absl::StatusOr<v1::Effect> Step(const agent::StepContext& context) override {
    v1::Effect effect;
    if (context.journal.empty()) {
      v1::ToolCall* call = effect.mutable_tools()->add_calls();
      call->set_id("lookup-1");
      call->set_name("weather");
      (*call->mutable_arguments()->mutable_struct_value()->mutable_fields())["city"] =
          context.task.input();
      return effect;
    }
    v1::EffectResult last;
    last.ParseFromString(context.journal.back().output());
    const v1::ToolResult& result = last.tools().results(0);
    if (!result.error().empty()) {
      effect.mutable_fail()->set_error(result.error());
    } else {
      *effect.mutable_finish()->mutable_output() = result.output();
    }
    return effect;
  }
};

int main(int argc, char** argv) {
  const std::string database = argc > 1 ? argv[1] : "native-agent.db";
  const std::string city = argc > 2 ? argv[2] : "Lisbon";

  auto store = agent::CreateSqliteTaskStore({.path = database});
  if (!store.ok()) return std::cerr << store.status() << "\n", 1;

  auto tools = agent::ToolRegistry::Create({});
  if (!tools.ok()) return std::cerr << tools.status() << "\n", 1;
  absl::Status registered = (*tools)->RegisterNative(
      {.name = "weather",
       .description = "Today's weather in a city.",
       .parameters_json_schema =
           R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})"},
      [](const google::protobuf::Value& arguments,
         agent::ToolContext&) -> absl::StatusOr<google::protobuf::Value> {
        google::protobuf::Value answer;
        answer.set_string_value("sunny in " +
                                arguments.struct_value().fields().at("city").string_value());
        return answer;
      });
  if (!registered.ok()) return std::cerr << registered << "\n", 1;
  (*tools)->SetAgentTools("weather-agent", {"weather"});

  agent::AgentRuntimeOptions options;
  options.tools = tools->get();
  auto runtime = agent::AgentRuntime::Create(options, **store);
  if (!runtime.ok()) return std::cerr << runtime.status() << "\n", 1;
  v1::AgentSpec spec;
  spec.set_name("weather-agent");
  spec.add_tools("weather");
  if (auto added = (*runtime)->RegisterAgent(spec, std::make_shared<WeatherAgent>()); !added.ok()) {
    return std::cerr << added.status() << "\n", 1;
  }
  if (absl::Status started = (*runtime)->Start(); !started.ok()) {
    return std::cerr << started << "\n", 1;
  }

  v1::Task task;
  task.set_agent("weather-agent");
  task.set_tenant("example");
  task.set_idempotency_key("weather-" + city);
  task.mutable_input()->set_string_value(city);
  auto submitted = (*runtime)->Submit(task);
  if (!submitted.ok()) return std::cerr << submitted.status() << "\n", 1;
  std::cout << (submitted->created ? "submitted " : "already submitted ") << submitted->task.id()
            << "\n";

  for (int i = 0; i < 1000; ++i) {
    auto current = (*runtime)->Get(submitted->task.id());
    if (current.ok() && agent::IsFinal(current->state())) {
      std::cout << v1::TaskState_Name(current->state()) << ": "
                << (current->error().empty() ? current->output().string_value() : current->error())
                << "\n";
      (*runtime)->Shutdown();
      return current->state() == v1::TASK_STATE_SUCCEEDED ? 0 : 1;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::cerr << "the task did not finish in 10 s\n";
  return 1;
}
