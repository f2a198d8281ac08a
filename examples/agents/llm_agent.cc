// A declarative LLM agent with one tool, through flowork-router (or any
// OpenAI-compatible server). With `scripts/run` running (router in front of
// flowork-mockllm), the mock asks for the tool when the question contains
// "call:<tool>":
//
//   llm_agent "call:weather Lisbon"                     # router at 127.0.0.1:2402, model "chat"
//   llm_agent "What should I wear?" http://127.0.0.1:8000/v1 my-model
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/agent/llm_client.h"
#include "flowork/agent/task_state.h"
#include "flowork/agent/tool_registry.h"
#include "flowork/core/http_client.h"

namespace agent = flowork::agent;
namespace v1 = flowork::agent::v1;

int main(int argc, char** argv) {
  const std::string question = argc > 1 ? argv[1] : "call:weather Lisbon";
  const std::string base_url = argc > 2 ? argv[2] : "http://127.0.0.1:2402/v1";
  const std::string model = argc > 3 ? argv[3] : "chat";

  auto http = flowork::core::HttpClient::Create({});
  if (!http.ok()) return std::cerr << http.status() << "\n", 1;
  auto llm = agent::CreateHttpLlmClient({.base_url = base_url}, **http);
  if (!llm.ok()) return std::cerr << llm.status() << "\n", 1;
  std::unique_ptr<agent::EffectHandler> models = agent::CreateModelEffectHandler(**llm);

  auto tools = agent::ToolRegistry::Create({});
  if (!tools.ok()) return std::cerr << tools.status() << "\n", 1;
  absl::Status registered = (*tools)->RegisterNative(
      {.name = "weather",
       .description = "Today's weather in a city.",
       .parameters_json_schema = R"({"type":"object","properties":{"query":{"type":"string"}}})"},
      [](const google::protobuf::Value& arguments,
         agent::ToolContext&) -> absl::StatusOr<google::protobuf::Value> {
        google::protobuf::Value answer;
        const auto& fields = arguments.struct_value().fields();
        answer.set_string_value("sunny, 24 C in " +
                                (fields.count("query") ? fields.at("query").string_value() : "?"));
        return answer;
      });
  if (!registered.ok()) return std::cerr << registered << "\n", 1;
  (*tools)->SetAgentTools("assistant", {"weather"});

  std::unique_ptr<agent::TaskStore> store = agent::CreateInMemoryTaskStore();
  agent::AgentRuntimeOptions options;
  options.models = models.get();
  options.tools = tools->get();
  auto runtime = agent::AgentRuntime::Create(options, *store);
  if (!runtime.ok()) return std::cerr << runtime.status() << "\n", 1;

  v1::AgentSpec spec;
  spec.set_name("assistant");
  spec.set_kind(v1::AgentSpec::KIND_LLM);
  spec.set_model(model);
  spec.set_system_prompt("You answer questions about the weather. Use the weather tool.");
  spec.add_tools("weather");
  spec.mutable_limits()->set_max_steps(8);
  auto tools_json = (*tools)->OpenAiToolsJson("assistant");
  if (!tools_json.ok()) return std::cerr << tools_json.status() << "\n", 1;
  auto assistant = agent::CreateLlmAgent(spec, {.tools_json = *tools_json});
  if (!assistant.ok()) return std::cerr << assistant.status() << "\n", 1;
  if (auto added = (*runtime)->RegisterAgent(spec, *assistant); !added.ok()) {
    return std::cerr << added.status() << "\n", 1;
  }
  if (absl::Status started = (*runtime)->Start(); !started.ok()) {
    return std::cerr << started << "\n", 1;
  }

  v1::Task task;
  task.set_agent("assistant");
  task.mutable_input()->set_string_value(question);
  auto submitted = (*runtime)->Submit(task);
  if (!submitted.ok()) return std::cerr << submitted.status() << "\n", 1;
  for (int i = 0; i < 6000; ++i) {
    auto current = (*runtime)->Get(submitted->task.id());
    if (current.ok() && agent::IsFinal(current->state())) {
      const auto journal = store->Journal(current->id());
      for (const v1::StepRecord& step : journal.value_or(std::vector<v1::StepRecord>{})) {
        std::cout << "step " << step.seq() << ": " << step.kind() << "\n";
      }
      std::cout << v1::TaskState_Name(current->state()) << ": "
                << (current->error().empty() ? current->output().string_value() : current->error())
                << "\n";
      (*runtime)->Shutdown();
      return current->state() == v1::TASK_STATE_SUCCEEDED ? 0 : 1;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::cerr << "the task did not finish in 60 s\n";
  return 1;
}
