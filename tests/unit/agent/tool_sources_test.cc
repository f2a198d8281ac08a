// MCP servers and agent memory as tools of a ToolRegistry, and an LLM agent
// (against flowork-mockllm) recalling memory through them.
#include "flowork/agent/tool_sources.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/json_schema.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/agent/llm_client.h"
#include "flowork/agent/sqlite_memory_store.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A minimal EffectCall for driving the registry directly.
class TestCall final : public EffectCall {
 public:
  explicit TestCall(v1::Task task) : task_(std::move(task)) {}
  const v1::Task& task() const override { return task_; }
  absl::Time deadline() const override { return absl::Now() + absl::Seconds(30); }
  bool cancelled() const override { return false; }
  void OnCancel(absl::AnyInvocable<void() &&>) override {}
  void Heartbeat() override {}

 private:
  v1::Task task_;
};

v1::ToolResults CallTool(ToolRegistry& registry, const v1::Task& task, const std::string& tool,
                         const std::string& arguments_json) {
  v1::Effect effect;
  v1::ToolCall* call = effect.mutable_tools()->add_calls();
  call->set_id("c1");
  call->set_name(tool);
  *call->mutable_arguments() = *ParseJsonValue(arguments_json);
  absl::Notification done;
  absl::StatusOr<v1::EffectResult> result;
  registry.Perform(effect, std::make_shared<TestCall>(task),
                   [&](absl::StatusOr<v1::EffectResult> r) {
                     result = std::move(r);
                     done.Notify();
                   });
  done.WaitForNotification();
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->tools() : v1::ToolResults();
}

v1::Task TaskOf(const std::string& tenant, const std::string& agent) {
  v1::Task task;
  task.set_id("t");
  task.set_tenant(tenant);
  task.set_agent(agent);
  return task;
}

TEST(ToolSourcesTest, AnMcpServersToolsAreCalledThroughTheRegistry) {
  McpServerOptions options;
  options.command = FLOWORK_PYTHON3;
  options.args = {FLOWORK_MCP_ECHO_SERVER, "--mode", "normal"};
  auto client = McpClient::Start(options);
  ASSERT_TRUE(client.ok()) << client.status();
  auto registry = ToolRegistry::Create({});
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE(RegisterMcpTools(**registry, **client, "fixture").ok());
  (*registry)->SetAgentTools("a", {"fixture_echo", "fixture_fail"});
  v1::ToolResults echoed =
      CallTool(**registry, TaskOf("t1", "a"), "fixture_echo", R"({"text":"hi"})");
  ASSERT_EQ(echoed.results_size(), 1);
  EXPECT_EQ(echoed.results(0).error(), "");
  EXPECT_EQ(echoed.results(0).output().string_value(), "hi");
  v1::ToolResults failed = CallTool(**registry, TaskOf("t1", "a"), "fixture_fail", "{}");
  EXPECT_THAT(failed.results(0).error(), HasSubstr("disk full"));
  // The server's schema is enforced before the call.
  v1::ToolResults bad = CallTool(**registry, TaskOf("t1", "a"), "fixture_echo", "{}");
  EXPECT_THAT(bad.results(0).error(), HasSubstr("text"));
}

TEST(ToolSourcesTest, MemoryToolsAreScopedToTheCallingTasksTenantAndAgent) {
  auto memory = CreateSqliteMemoryStore({.path = ":memory:"});
  ASSERT_TRUE(memory.ok()) << memory.status();
  auto registry = ToolRegistry::Create({});
  ASSERT_TRUE(RegisterMemoryTools(**registry, **memory).ok());
  (*registry)->SetAgentTools("a", {"remember", "recall"});
  EXPECT_EQ(CallTool(**registry, TaskOf("t1", "a"), "remember",
                     R"({"text":"The office in Paris opens at nine."})")
                .results(0)
                .error(),
            "");
  v1::ToolResults mine =
      CallTool(**registry, TaskOf("t1", "a"), "recall", R"({"query":"when does paris open"})");
  EXPECT_THAT(JsonValueToString(mine.results(0).output()), HasSubstr("opens at nine"));
  v1::ToolResults other =
      CallTool(**registry, TaskOf("t2", "a"), "recall", R"({"query":"when does paris open"})");
  EXPECT_THAT(JsonValueToString(other.results(0).output()), Not(HasSubstr("opens at nine")));
}

TEST(ToolSourcesTest, AnLlmAgentRecallsMemoryThroughTheRegistry) {
  auto mock = mockllm::MockLlmServer::Create({});
  ASSERT_TRUE(mock.ok());
  auto http = core::HttpClient::Create({});
  auto llm = CreateHttpLlmClient(
      {.base_url = absl::StrCat("http://127.0.0.1:", (*mock)->port(), "/v1")}, **http);
  std::unique_ptr<EffectHandler> models = CreateModelEffectHandler(**llm);
  auto memory = CreateSqliteMemoryStore({.path = ":memory:"});
  ASSERT_TRUE(memory.ok());
  ASSERT_TRUE(
      (*memory)
          ->Remember({.tenant = "acme", .agent = "assistant"}, "Paris office badge code is 4711")
          .ok());
  auto registry = ToolRegistry::Create({});
  ASSERT_TRUE(RegisterMemoryTools(**registry, **memory).ok());
  (*registry)->SetAgentTools("assistant", {"remember", "recall"});
  std::unique_ptr<TaskStore> store = CreateInMemoryTaskStore();
  AgentRuntimeOptions options;
  options.models = models.get();
  options.tools = registry->get();
  auto runtime = AgentRuntime::Create(options, *store);
  ASSERT_TRUE(runtime.ok());
  v1::AgentSpec spec;
  spec.set_name("assistant");
  spec.set_kind(v1::AgentSpec::KIND_LLM);
  spec.set_model("mock-1");
  auto tools_json = (*registry)->OpenAiToolsJson("assistant");
  ASSERT_TRUE(tools_json.ok());
  auto agent = CreateLlmAgent(spec, {.tools_json = *tools_json});
  ASSERT_TRUE(agent.ok());
  ASSERT_TRUE((*runtime)->RegisterAgent(spec, *agent).ok());
  ASSERT_TRUE((*runtime)->Start().ok());
  v1::Task task;
  task.set_agent("assistant");
  task.set_tenant("acme");
  task.mutable_input()->set_string_value("call:recall paris badge");
  auto submitted = (*runtime)->Submit(task);
  ASSERT_TRUE(submitted.ok());
  absl::StatusOr<v1::Task> done;
  for (int i = 0; i < 2000; ++i) {
    done = store->Get(submitted->task.id());
    if (done.ok() &&
        (done->state() == v1::TASK_STATE_SUCCEEDED || done->state() == v1::TASK_STATE_FAILED)) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(done->state(), v1::TASK_STATE_SUCCEEDED) << done->error();
  // The tool result (the recalled memory) reached the model.
  auto journal = store->Journal(submitted->task.id());
  v1::EffectResult tools;
  tools.ParseFromString((*journal)[1].output());
  EXPECT_THAT(JsonValueToString(tools.tools().results(0).output()), HasSubstr("4711"));
  (*runtime)->Shutdown();
}

}  // namespace
}  // namespace flowork::agent
