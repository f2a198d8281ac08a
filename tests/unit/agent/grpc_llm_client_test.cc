// The gRPC LlmClient against a router served in process (RouterStack +
// RouterService on 127.0.0.1:0) in front of flowork-mockllm: tool calls and
// usage back as OpenAI JSON, 429 with retry-after, deadlines, cancellation,
// keys, and an LLM agent's task run through it.
#include "flowork/agent/grpc/grpc_llm_client.h"

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "boost/json.hpp"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/core/config_loader.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "flowork/router/grpc/router_service.h"
#include "flowork/router/key_ring.h"
#include "flowork/router/router_stack.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr char kLookupTool[] =
    R"([{"type":"function","function":{"name":"lookup","description":"Looks a city up.",)"
    R"("parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}])";

std::string ChatBody(const std::string& text, bool tools = false) {
  return absl::StrCat(R"({"messages":[{"role":"system","content":"be brief"},)",
                      R"({"role":"user","content":")", text, R"("}])",
                      tools ? absl::StrCat(R"(,"tools":)", kLookupTool) : "", "}");
}

class GrpcLlmClientTest : public ::testing::Test {
 protected:
  // A router ("chat" -> m1 on the mock) served over gRPC; `auth` and `keys`
  // are YAML for those sections.
  void Serve(mockllm::MockKnobs knobs = {}, const std::string& auth = "{mode: none}",
             const std::string& keys = "") {
    mockllm::MockLlmOptions mock_options;
    mock_options.knobs = std::move(knobs);
    auto mock = mockllm::MockLlmServer::Create(mock_options);
    ASSERT_TRUE(mock.ok()) << mock.status();
    mock_ = *std::move(mock);
    const std::string yaml = absl::StrCat(
        "auth: ", auth, "\naudit: {disabled: true}\nproviders:\n",
        "  - {name: mock, kind: openai, base_url: \"http://127.0.0.1:", mock_->port(),
        "/v1\", zone: local}\nmodels:\n",
        "  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: [chat, tools]}\n",
        "routes:\n  - {name: chat, candidates: [m1], retry: {same_endpoint: 0}}\n", keys);
    router::v1::RouterConfig config;
    absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
    ASSERT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
    auto stack = router::RouterStack::Create(config, {.default_key_store = ""});
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = *std::move(stack);
    service_ = std::make_unique<router::RouterServiceImpl>(stack_->policy(), stack_->gateway());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    Connect();
  }

  void Connect(const std::string& api_key = "") {
    auto client =
        CreateGrpcLlmClient({.target = absl::StrCat("127.0.0.1:", port_), .api_key = api_key});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // Runs one call to its end (bounded); `on_started` gets the call.
  absl::StatusOr<LlmResponse> Call(LlmRequest request,
                                   const std::function<void(LlmCall&)>& on_started = nullptr) {
    if (request.model.empty()) request.model = "chat";
    absl::Notification done;
    absl::StatusOr<LlmResponse> result = absl::UnknownError("no answer");
    std::shared_ptr<LlmCall> call =
        client_->Complete(std::move(request), [&](absl::StatusOr<LlmResponse> answer) {
          result = std::move(answer);
          done.Notify();
        });
    if (on_started) on_started(*call);
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20))) << "no answer in time";
    return done.HasBeenNotified() ? result : absl::UnknownError("no answer in time");
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::unique_ptr<mockllm::MockLlmServer> mock_;
  std::unique_ptr<router::RouterStack> stack_;
  std::unique_ptr<router::RouterServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<LlmClient> client_;
};

TEST_F(GrpcLlmClientTest, ToolCallsComeBackAsAnOpenAiCompletionWithUsageAndEndpoint) {
  Serve();
  absl::StatusOr<LlmResponse> response = Call({.body = ChatBody("call:lookup Paris", true)});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->endpoint, "m1@mock");
  EXPECT_EQ(response->model, "mock-1");
  EXPECT_GT(response->usage.prompt_tokens, 0);
  EXPECT_GT(response->usage.completion_tokens, 0);
  json::value body = json::parse(response->body);
  EXPECT_EQ(body.at("object"), "chat.completion");
  const json::object& choice = body.at("choices").at(0).as_object();
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  const json::object& message = choice.at("message").as_object();
  EXPECT_EQ(message.at("role"), "assistant");
  const json::object& call = message.at("tool_calls").at(0).as_object();
  EXPECT_FALSE(call.at("id").as_string().empty());
  EXPECT_EQ(call.at("type"), "function");
  EXPECT_EQ(call.at("function").at("name"), "lookup");
  EXPECT_EQ(json::parse(call.at("function").at("arguments").as_string()).at("query"), "Paris");
  EXPECT_EQ(body.at("usage").at("prompt_tokens").to_number<int64_t>(),
            response->usage.prompt_tokens);
  EXPECT_EQ(mock_->calls("/v1/chat/completions"), 1);
}

TEST_F(GrpcLlmClientTest, ATextAnswerCarriesItsUsage) {
  Serve({.tokens = 4});
  absl::StatusOr<LlmResponse> response = Call({.body = ChatBody("hi")});
  ASSERT_TRUE(response.ok()) << response.status();
  json::value body = json::parse(response->body);
  EXPECT_EQ(body.at("choices").at(0).at("message").at("content"), "Mock answer to: hi.");
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(response->usage.completion_tokens, 4);
  EXPECT_EQ(body.at("usage").at("total_tokens").to_number<int64_t>(),
            response->usage.prompt_tokens + 4);
}

TEST_F(GrpcLlmClientTest, OnTextStreamsPiecesThroughStreamChatAndAssemblesTheCompletion) {
  Serve({.chunks = 5});
  std::vector<std::string> pieces;
  absl::Mutex mu;
  LlmRequest request{.body = ChatBody("hi")};
  request.on_text = [&](std::string_view text) {
    absl::MutexLock lock(&mu);
    pieces.emplace_back(text);
  };
  absl::StatusOr<LlmResponse> response = Call(std::move(request));
  ASSERT_TRUE(response.ok()) << response.status();
  json::value body = json::parse(response->body);
  const std::string content(body.at("choices").at(0).at("message").at("content").as_string());
  EXPECT_THAT(content, HasSubstr("Mock answer to: hi"));
  absl::MutexLock lock(&mu);
  EXPECT_GE(pieces.size(), 2u);
  std::string joined;
  for (const std::string& piece : pieces) joined += piece;
  EXPECT_EQ(joined, content);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(response->endpoint, "m1@mock");
  EXPECT_GT(response->usage.prompt_tokens, 0);
  EXPECT_GT(response->usage.completion_tokens, 0);
}

TEST_F(GrpcLlmClientTest, AStreamedAnswerAssemblesItsToolCalls) {
  Serve({.chunks = 3});
  LlmRequest request{.body = ChatBody("call:lookup Paris", true)};
  request.on_text = [](std::string_view) {};
  absl::StatusOr<LlmResponse> response = Call(std::move(request));
  ASSERT_TRUE(response.ok()) << response.status();
  json::value body = json::parse(response->body);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "tool_calls");
  const json::object& call =
      body.at("choices").at(0).at("message").at("tool_calls").at(0).as_object();
  EXPECT_FALSE(call.at("id").as_string().empty());
  EXPECT_EQ(call.at("function").at("name"), "lookup");
  EXPECT_EQ(json::parse(call.at("function").at("arguments").as_string()).at("query"), "Paris");
  EXPECT_GT(response->usage.completion_tokens, 0);
  EXPECT_EQ(body.at("usage").at("prompt_tokens").to_number<int64_t>(),
            response->usage.prompt_tokens);
}

TEST_F(GrpcLlmClientTest, AStreamedCallHonoursDeadlineAndCancel) {
  Serve({.hang = true});
  LlmRequest late{.body = ChatBody("hi"), .deadline = absl::Now() + absl::Milliseconds(300)};
  late.on_text = [](std::string_view) {};
  EXPECT_EQ(Call(std::move(late)).status().code(), absl::StatusCode::kDeadlineExceeded);
  LlmRequest cancelled{.body = ChatBody("hi")};
  cancelled.on_text = [](std::string_view) {};
  absl::StatusOr<LlmResponse> response =
      Call(std::move(cancelled), [](LlmCall& call) { call.Cancel(); });
  EXPECT_EQ(response.status().code(), absl::StatusCode::kCancelled) << response.status();
}

TEST_F(GrpcLlmClientTest, RateLimitedIsResourceExhaustedWithRetryAfter) {
  Serve({.status = 429, .retry_after_seconds = 7});
  absl::StatusOr<LlmResponse> response = Call({.body = ChatBody("hi")});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted) << response.status();
  ASSERT_TRUE(LlmRetryAfter(response.status()).has_value());
  EXPECT_EQ(*LlmRetryAfter(response.status()), absl::Seconds(7));
}

TEST_F(GrpcLlmClientTest, TheRequestDeadlineEndsTheCall) {
  Serve({.hang = true});
  const absl::Time start = absl::Now();
  absl::StatusOr<LlmResponse> response =
      Call({.body = ChatBody("hi"), .deadline = absl::Now() + absl::Milliseconds(300)});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(GrpcLlmClientTest, CancelEndsTheCallAndTheRoutersUpstreamCall) {
  Serve({.hang = true});
  absl::StatusOr<LlmResponse> response = Call({.body = ChatBody("hi")}, [&](LlmCall& call) {
    // Cancel once the router holds the upstream call.
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (mock_->calls("/v1/chat/completions") == 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));  // Polling a counter; nothing to wait on.
    }
    call.Cancel();
  });
  EXPECT_EQ(response.status().code(), absl::StatusCode::kCancelled) << response.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (stack_->policy().stats().Find("m1@mock")->Read(absl::Now()).in_flight != 0 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));  // Polling a counter; nothing to wait on.
  }
  EXPECT_EQ(stack_->policy().stats().Find("m1@mock")->Read(absl::Now()).in_flight, 0);
}

TEST_F(GrpcLlmClientTest, KeysGoAsBearerMetadata) {
  Serve({}, "{mode: keys}",
        absl::StrCat("keys:\n  - {name: team-a, sha256: \"", router::KeyRing::Sha256Hex("alpha"),
                     "\", tenant: a, allow: [chat]}\n"));
  EXPECT_EQ(Call({.body = ChatBody("hi")}).status().code(), absl::StatusCode::kPermissionDenied);
  Connect("alpha");
  EXPECT_TRUE(Call({.body = ChatBody("hi")}).ok());
  EXPECT_EQ(Call({.model = "m1", .body = ChatBody("hi")}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(GrpcLlmClientTest, UnknownModelsBadBodiesAndNoRouterMapToTheContract) {
  Serve();
  EXPECT_EQ(Call({.model = "gpt-nope", .body = ChatBody("hi")}).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<LlmResponse> bad = Call({.body = R"({"messages":[{"role":"robot"}]})"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("messages[0].role"));
  EXPECT_EQ(mock_->calls(), 0);
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  EXPECT_EQ(Call({.body = ChatBody("hi")}).status().code(), absl::StatusCode::kUnavailable);
}

// Answers tool calls with "weather in <query>: sunny".
class WeatherTools final : public EffectHandler {
 public:
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall>,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    v1::EffectResult result;
    for (const v1::ToolCall& call : effect.tools().calls()) {
      v1::ToolResult* r = result.mutable_tools()->add_results();
      r->set_id(call.id());
      const auto& args = call.arguments().struct_value().fields();
      const std::string query = args.count("query") ? args.at("query").string_value() : "";
      r->mutable_output()->set_string_value(absl::StrCat("weather in ", query, ": sunny"));
    }
    std::move(done)(std::move(result));
  }
};

TEST_F(GrpcLlmClientTest, AnLlmAgentRunsItsToolLoopThroughTheRouterOverGrpc) {
  Serve();
  std::unique_ptr<EffectHandler> models = CreateModelEffectHandler(*client_);
  WeatherTools tools;
  std::unique_ptr<TaskStore> store = CreateInMemoryTaskStore();
  AgentRuntimeOptions options;
  options.models = models.get();
  options.tools = &tools;
  options.threads = 2;
  auto runtime = AgentRuntime::Create(options, *store);
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  v1::AgentSpec spec;
  spec.set_name("assistant");
  spec.set_kind(v1::AgentSpec::KIND_LLM);
  spec.set_model("chat");
  spec.set_system_prompt("You answer questions about the weather.");
  auto agent = CreateLlmAgent(spec, {.tools_json = kLookupTool});
  ASSERT_TRUE(agent.ok()) << agent.status();
  ASSERT_TRUE((*runtime)->RegisterAgent(spec, *agent).ok());
  ASSERT_TRUE((*runtime)->Start().ok());
  v1::Task task;
  task.set_agent("assistant");
  task.mutable_input()->set_string_value("call:lookup Paris");
  auto submitted = (*runtime)->Submit(task);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string id = submitted->task.id();
  absl::StatusOr<v1::Task> final_task = store->Get(id);
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    final_task = store->Get(id);
    if (final_task.ok() && (final_task->state() == v1::TASK_STATE_SUCCEEDED ||
                            final_task->state() == v1::TASK_STATE_FAILED)) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));  // Polling the store; the test has no event feed.
  }
  (*runtime)->Shutdown();
  ASSERT_TRUE(final_task.ok()) << final_task.status();
  ASSERT_EQ(final_task->state(), v1::TASK_STATE_SUCCEEDED) << final_task->error();
  EXPECT_THAT(final_task->output().string_value(), HasSubstr("weather in Paris"));
  EXPECT_EQ(mock_->calls("/v1/chat/completions"), 2);
}

}  // namespace
}  // namespace flowork::agent
