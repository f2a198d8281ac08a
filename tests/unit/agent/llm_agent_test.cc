// The declarative LLM agent against flowork-mockllm (in process, over HTTP),
// through the agent runtime: tool loops, limits, structured output, 429s,
// cancellation and the in-process router client.
#include "flowork/agent/llm_agent.h"

#include <atomic>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "boost/json.hpp"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/llm_client.h"
#include "flowork/core/clock.h"
#include "flowork/core/config_loader.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "flowork/router/gateway.h"
#include "flowork/router/policy.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr char kLookupTool[] =
    R"([{"type":"function","function":{"name":"lookup","description":"Looks a city up.",)"
    R"("parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}])";

// Answers tool calls with "weather in <query>: sunny"; counts them.
class WeatherTools final : public EffectHandler {
 public:
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall>,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    v1::EffectResult result;
    for (const v1::ToolCall& call : effect.tools().calls()) {
      calls_.fetch_add(1);
      v1::ToolResult* r = result.mutable_tools()->add_results();
      r->set_id(call.id());
      const auto& args = call.arguments().struct_value().fields();
      const std::string query = args.count("query") ? args.at("query").string_value() : "";
      r->mutable_output()->set_string_value(absl::StrCat("weather in ", query, ": sunny"));
    }
    std::move(done)(std::move(result));
  }
  int calls() const { return calls_.load(); }

 private:
  std::atomic<int> calls_{0};
};

class LlmAgentTest : public ::testing::Test {
 protected:
  void StartMock(mockllm::MockKnobs knobs = {}) {
    mockllm::MockLlmOptions options;
    options.knobs = std::move(knobs);
    auto mock = mockllm::MockLlmServer::Create(options);
    ASSERT_TRUE(mock.ok()) << mock.status();
    mock_ = *std::move(mock);
    auto http = core::HttpClient::Create({});
    ASSERT_TRUE(http.ok());
    http_ = *std::move(http);
    auto llm = CreateHttpLlmClient(
        {.base_url = absl::StrCat("http://127.0.0.1:", mock_->port(), "/v1")}, *http_);
    ASSERT_TRUE(llm.ok());
    llm_ = *std::move(llm);
    StartRuntime();
  }

  void StartRuntime() {
    models_ = CreateModelEffectHandler(*llm_);
    store_ = CreateInMemoryTaskStore();
    AgentRuntimeOptions options;
    options.models = models_.get();
    options.tools = &tools_;
    options.threads = 2;
    options.watchdog_interval = absl::Milliseconds(20);
    auto runtime = AgentRuntime::Create(options, *store_);
    ASSERT_TRUE(runtime.ok());
    runtime_ = *std::move(runtime);
  }

  void Register(v1::AgentSpec spec, LlmAgentOptions options = {.tools_json = kLookupTool}) {
    spec.set_kind(v1::AgentSpec::KIND_LLM);
    if (spec.model().empty()) spec.set_model("mock-1");
    spec.mutable_retry()->mutable_initial_backoff()->set_nanos(10'000'000);
    auto agent = CreateLlmAgent(spec, std::move(options));
    ASSERT_TRUE(agent.ok()) << agent.status();
    ASSERT_TRUE(runtime_->RegisterAgent(spec, *agent).ok());
    ASSERT_TRUE(runtime_->Start().ok());
  }

  std::string Submit(const std::string& input) {
    v1::Task task;
    task.set_agent("assistant");
    task.mutable_input()->set_string_value(input);
    auto submitted = runtime_->Submit(task);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task.id() : "";
  }

  v1::Task WaitFinal(const std::string& id, absl::Duration limit = absl::Seconds(20)) {
    const absl::Time end = absl::Now() + limit;
    absl::StatusOr<v1::Task> task = store_->Get(id);
    while (absl::Now() < end) {
      task = store_->Get(id);
      if (task.ok() &&
          (task->state() == v1::TASK_STATE_SUCCEEDED || task->state() == v1::TASK_STATE_FAILED ||
           task->state() == v1::TASK_STATE_CANCELLED ||
           task->state() == v1::TASK_STATE_TIMED_OUT)) {
        return *task;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "task " << id << " did not end";
    return task.ok() ? *task : v1::Task();
  }

  std::vector<std::string> Kinds(const std::string& id) {
    std::vector<std::string> kinds;
    auto journal = store_->Journal(id);
    if (journal.ok()) {
      for (const v1::StepRecord& step : *journal) kinds.push_back(step.kind());
    }
    return kinds;
  }

  void TearDown() override {
    if (runtime_) runtime_->Shutdown();
  }

  std::unique_ptr<mockllm::MockLlmServer> mock_;
  std::unique_ptr<core::HttpClient> http_;
  std::unique_ptr<LlmClient> llm_;
  std::unique_ptr<EffectHandler> models_;
  WeatherTools tools_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<AgentRuntime> runtime_;
};

v1::AgentSpec Spec() {
  v1::AgentSpec spec;
  spec.set_name("assistant");
  spec.set_system_prompt("You answer questions about the weather.");
  return spec;
}

TEST_F(LlmAgentTest, AToolLoopAsksTheModelRunsTheToolAndFinishesWithTheAnswer) {
  StartMock();
  Register(Spec());
  const std::string id = Submit("call:lookup Paris");
  v1::Task done = WaitFinal(id);
  ASSERT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(Kinds(id), (std::vector<std::string>{"llm", "tools", "llm", "finish"}));
  EXPECT_EQ(tools_.calls(), 1);
  // The model's second answer is about the tool's result.
  EXPECT_THAT(done.output().string_value(), HasSubstr("weather in Paris"));
  EXPECT_EQ(mock_->calls("/v1/chat/completions"), 2);
}

TEST_F(LlmAgentTest, ParallelToolCallsFromOneAnswerRunAsOneStep) {
  StartMock();
  Register(Spec());
  const std::string id = Submit("call:lookup Paris call:lookup Rome");
  v1::Task done = WaitFinal(id);
  ASSERT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(Kinds(id), (std::vector<std::string>{"llm", "tools", "llm", "finish"}));
  EXPECT_EQ(tools_.calls(), 2);
  auto journal = store_->Journal(id);
  v1::EffectResult tools;
  tools.ParseFromString((*journal)[1].output());
  ASSERT_EQ(tools.tools().results_size(), 2);
  EXPECT_EQ(tools.tools().results(0).output().string_value(), "weather in Paris: sunny");
  EXPECT_EQ(tools.tools().results(1).output().string_value(), "weather in Rome: sunny");
}

TEST_F(LlmAgentTest, MaxStepsEndsTheLoopWithItsReason) {
  StartMock();
  v1::AgentSpec spec = Spec();
  spec.mutable_limits()->set_max_steps(2);
  Register(spec);
  v1::Task done = WaitFinal(Submit("call:lookup Paris"));
  EXPECT_EQ(done.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(done.error(), "max_steps reached (2)");
}

TEST_F(LlmAgentTest, MaxTokensEndsTheLoopWithItsReason) {
  StartMock();
  v1::AgentSpec spec = Spec();
  spec.mutable_limits()->set_max_tokens(5);  // The first call alone uses more.
  Register(spec);
  v1::Task done = WaitFinal(Submit("call:lookup Paris"));
  EXPECT_EQ(done.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(done.error(), HasSubstr("max_tokens reached"));
  EXPECT_EQ(tools_.calls(), 0);
}

TEST_F(LlmAgentTest, MaxCostEndsTheLoopWithItsReason) {
  StartMock();
  v1::AgentSpec spec = Spec();
  spec.mutable_limits()->set_max_cost_usd(0.0001);
  Register(spec, {.tools_json = kLookupTool, .input_usd_per_mtok = 10, .output_usd_per_mtok = 30});
  v1::Task done = WaitFinal(Submit("call:lookup Paris"));
  EXPECT_EQ(done.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(done.error(), HasSubstr("max_cost_usd reached"));
}

TEST_F(LlmAgentTest, AnAnswerNotMatchingTheSchemaIsRepairedOnceThenFails) {
  StartMock();
  Register(Spec(), {.output_schema_json = R"({"type":"object","required":["city"]})"});
  const std::string id = Submit("What is the weather?");
  v1::Task done = WaitFinal(id);
  EXPECT_EQ(done.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(done.error(), HasSubstr("does not match the output schema after a repair"));
  EXPECT_EQ(Kinds(id), (std::vector<std::string>{"llm", "llm", "fail"}));
}

TEST_F(LlmAgentTest, ATaskPastItsDeadlineAbortsTheModelCall) {
  mockllm::MockKnobs slow;
  slow.hang = true;
  StartMock(slow);
  v1::AgentSpec spec = Spec();
  spec.mutable_limits()->mutable_task_timeout()->set_nanos(300'000'000);
  Register(spec);
  const absl::Time start = absl::Now();
  v1::Task done = WaitFinal(Submit("hello"));
  EXPECT_EQ(done.state(), v1::TASK_STATE_TIMED_OUT);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(LlmAgentTest, CancelAbortsTheRunningModelCall) {
  mockllm::MockKnobs slow;
  slow.hang = true;
  StartMock(slow);
  Register(Spec());
  const std::string id = Submit("hello");
  for (int i = 0; i < 400 && store_->Get(id)->state() != v1::TASK_STATE_WAITING_LLM; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(runtime_->Cancel(id).ok());
  EXPECT_EQ(WaitFinal(id).state(), v1::TASK_STATE_CANCELLED);
}

TEST_F(LlmAgentTest, AFailingModelCallIsRetriedByTheAgentsRetryPolicy) {
  mockllm::MockKnobs limited;
  limited.fail_first = 1;  // One 503 first...
  StartMock(limited);
  Register(Spec());
  v1::Task done = WaitFinal(Submit("hello"));
  EXPECT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(mock_->calls("/v1/chat/completions"), 2);  // ...then the retry answers.
}

// Long tool outputs that ask for another round, six times.
class ChattyTools final : public EffectHandler {
 public:
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall>,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    v1::EffectResult result;
    for (const v1::ToolCall& call : effect.tools().calls()) {
      const int round = rounds_.fetch_add(1) + 1;
      std::string text;
      for (int i = 0; i < 60; ++i) absl::StrAppend(&text, "observation", round, "_", i, " ");
      if (round < 6) absl::StrAppend(&text, "call:lookup more");
      v1::ToolResult* r = result.mutable_tools()->add_results();
      r->set_id(call.id());
      r->mutable_output()->set_string_value(text);
    }
    std::move(done)(std::move(result));
  }

 private:
  std::atomic<int> rounds_{0};
};

// An LLM agent reaching two mocks through an in-process router: "mock-1"
// answers, "broken" always fails.
class CompactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = *mockllm::MockLlmServer::Create({});
    mockllm::MockLlmOptions failing;
    failing.knobs.status = 500;
    bad_ = *mockllm::MockLlmServer::Create(failing);
    router::v1::RouterConfig config;
    ASSERT_TRUE(
        core::ParseConfigText(
            absl::StrCat("auth: {mode: none}\n"
                         "providers:\n"
                         "  - {name: good, kind: mock, base_url: \"http://127.0.0.1:",
                         good_->port(),
                         "/v1\"}\n"
                         "  - {name: bad, kind: mock, base_url: \"http://127.0.0.1:",
                         bad_->port(),
                         "/v1\"}\n"
                         "models:\n"
                         "  - {name: mock-1, provider: good, capabilities: [chat, tools]}\n"
                         "  - {name: broken, provider: bad, capabilities: [chat, tools]}\n"
                         "routes: [{name: chat, candidates: [mock-1], retry: {same_endpoint: 0}},\n"
                         "         {name: summaries, candidates: [broken], "
                         "retry: {same_endpoint: 0}}]\n"),
            "router.yaml", &config)
            .ok());
    policy_ = *router::PolicyEngine::Create(config, core::Clock::Real());
    http_ = *core::HttpClient::Create({});
    keys_ = *router::KeyStore::Open({}, *policy_);
    gateway_ = *router::Gateway::Create(*policy_, *keys_, *http_);
    llm_ = CreateInProcessLlmClient(*gateway_);
    models_ = CreateModelEffectHandler(*llm_);
    store_ = CreateInMemoryTaskStore();
    AgentRuntimeOptions options;
    options.models = models_.get();
    options.tools = &tools_;
    options.threads = 2;
    runtime_ = *AgentRuntime::Create(options, *store_);
  }
  void TearDown() override { runtime_->Shutdown(); }

  // Runs "call:lookup start" to the end with `options`; returns the journal.
  std::vector<v1::StepRecord> RunLongTask(LlmAgentOptions options) {
    v1::AgentSpec spec;
    spec.set_name("assistant");
    spec.set_kind(v1::AgentSpec::KIND_LLM);
    spec.set_model("chat");
    spec.set_system_prompt("You research.");
    options.tools_json = kLookupTool;
    options.context_window = 900;
    options.reserved_output_tokens = 100;
    EXPECT_TRUE(runtime_->RegisterAgent(spec, *CreateLlmAgent(spec, options)).ok());
    EXPECT_TRUE(runtime_->Start().ok());
    v1::Task task;
    task.set_agent("assistant");
    task.mutable_input()->set_string_value("call:lookup start");
    const std::string id = (*runtime_->Submit(task)).task.id();
    absl::StatusOr<v1::Task> done;
    for (int i = 0; i < 4000; ++i) {
      done = store_->Get(id);
      if (done.ok() &&
          (done->state() == v1::TASK_STATE_SUCCEEDED || done->state() == v1::TASK_STATE_FAILED)) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(done->state(), v1::TASK_STATE_SUCCEEDED) << done->error();
    return *store_->Journal(id);
  }

  std::unique_ptr<mockllm::MockLlmServer> good_, bad_;
  std::unique_ptr<router::PolicyEngine> policy_;
  std::unique_ptr<router::KeyStore> keys_;
  std::unique_ptr<core::HttpClient> http_;
  std::unique_ptr<router::Gateway> gateway_;
  std::unique_ptr<LlmClient> llm_;
  std::unique_ptr<EffectHandler> models_;
  ChattyTools tools_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<AgentRuntime> runtime_;
};

// The model requests of a journal, by purpose.
std::vector<v1::Effect> ModelCalls(const std::vector<v1::StepRecord>& journal,
                                   const std::string& purpose) {
  std::vector<v1::Effect> calls;
  for (const v1::StepRecord& step : journal) {
    v1::Effect effect;
    if (effect.ParseFromString(step.input()) && effect.has_model() &&
        effect.model().purpose() == purpose) {
      calls.push_back(effect);
    }
  }
  return calls;
}

std::string RequestText(const v1::Effect& effect) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(effect.model().request(), &json);
  return json;
}

TEST_F(CompactionTest, ALongSessionIsSummarisedAsAJournaledStep) {
  const std::vector<v1::StepRecord> journal = RunLongTask({});
  const std::vector<v1::Effect> summaries = ModelCalls(journal, "compaction");
  ASSERT_GE(summaries.size(), 1u);
  EXPECT_EQ(summaries[0].model().model(), "chat");
  // Later requests carry the summary instead of the turns it covers.
  const std::vector<v1::Effect> asks = ModelCalls(journal, "");
  EXPECT_THAT(RequestText(asks.back()), HasSubstr("Mock answer to"));
  for (const v1::Effect& ask : asks) {
    EXPECT_LE(RequestText(ask).size(), 900u * 8) << "a request far over the window";
  }
}

TEST_F(CompactionTest, AFailingSummariserFallsBackToTruncationWithAMarker) {
  const std::vector<v1::StepRecord> journal = RunLongTask({.summary_model = "summaries"});
  const std::vector<v1::Effect> summaries = ModelCalls(journal, "compaction");
  ASSERT_EQ(summaries.size(), 1u);  // Tried once, failed, not again.
  EXPECT_EQ(summaries[0].model().model(), "summaries");
  const std::vector<v1::Effect> asks = ModelCalls(journal, "");
  EXPECT_THAT(RequestText(asks.back()), HasSubstr("earlier conversation truncated"));
}

TEST(LlmClientTest, A429CarriesItsRetryAfter) {
  mockllm::MockLlmOptions options;
  options.knobs.status = 429;
  options.knobs.retry_after_seconds = 7;
  auto mock = mockllm::MockLlmServer::Create(options);
  ASSERT_TRUE(mock.ok());
  auto http = core::HttpClient::Create({});
  auto llm = CreateHttpLlmClient(
      {.base_url = absl::StrCat("http://127.0.0.1:", (*mock)->port(), "/v1")}, **http);
  absl::Notification finished;
  absl::Status status;
  (*llm)->Complete({.model = "mock-1", .body = R"({"messages":[]})"},
                   [&](absl::StatusOr<LlmResponse> r) {
                     status = r.status();
                     finished.Notify();
                   });
  finished.WaitForNotification();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(LlmRetryAfter(status), absl::Seconds(7));
}

TEST(LlmClientTest, TheInProcessClientGoesThroughTheRouterWithoutANetworkHop) {
  auto mock = mockllm::MockLlmServer::Create({});
  ASSERT_TRUE(mock.ok());
  router::v1::RouterConfig config;
  ASSERT_TRUE(core::ParseConfigText(
                  absl::StrCat("auth: {mode: none}\n"
                               "providers: [{name: p, kind: mock, base_url: \"http://127.0.0.1:",
                               (*mock)->port(),
                               "/v1\"}]\n"
                               "models: [{name: m, provider: p, upstream_model: mock-1, "
                               "capabilities: [chat]}]\n"
                               "routes: [{name: chat, candidates: [m]}]\n"),
                  "router.yaml", &config)
                  .ok());
  auto policy = router::PolicyEngine::Create(config, core::Clock::Real());
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto http = core::HttpClient::Create({});
  auto keys = router::KeyStore::Open({}, **policy);
  auto gateway = router::Gateway::Create(**policy, **keys, **http);
  ASSERT_TRUE(gateway.ok());
  std::unique_ptr<LlmClient> llm = CreateInProcessLlmClient(**gateway);
  absl::Notification finished;
  absl::StatusOr<LlmResponse> response;
  llm->Complete({.model = "chat", .body = R"({"messages":[{"role":"user","content":"hi"}]})"},
                [&](absl::StatusOr<LlmResponse> r) {
                  response = std::move(r);
                  finished.Notify();
                });
  finished.WaitForNotification();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->endpoint, "m@p");
  EXPECT_EQ(response->model, "mock-1");
  EXPECT_GT(response->usage.prompt_tokens, 0);
  EXPECT_THAT(response->body, HasSubstr("Mock answer to: hi"));
}

// A streamed call: the text pieces (each seen before `done`) and the answer.
struct Streamed {
  std::vector<std::string> pieces;
  absl::StatusOr<LlmResponse> response = absl::UnknownError("no answer");
};

Streamed CallStreaming(LlmClient& llm, LlmRequest request) {
  Streamed out;
  absl::Mutex mu;
  absl::Notification finished;
  request.on_text = [&](std::string_view text) {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(finished.HasBeenNotified()) << "a piece after done";
    out.pieces.emplace_back(text);
  };
  llm.Complete(std::move(request), [&](absl::StatusOr<LlmResponse> r) {
    absl::MutexLock lock(&mu);
    out.response = std::move(r);
    finished.Notify();
  });
  EXPECT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  absl::MutexLock lock(&mu);
  return out;
}

std::string Content(const LlmResponse& response) {
  json::value body = json::parse(response.body);
  return std::string(body.at("choices").at(0).at("message").at("content").as_string());
}

TEST(LlmClientTest, TheHttpClientStreamsTextPiecesAndAssemblesTheCompletion) {
  mockllm::MockLlmOptions options;
  options.knobs.chunks = 5;
  auto mock = mockllm::MockLlmServer::Create(options);
  ASSERT_TRUE(mock.ok());
  auto http = core::HttpClient::Create({});
  auto llm = CreateHttpLlmClient(
      {.base_url = absl::StrCat("http://127.0.0.1:", (*mock)->port(), "/v1")}, **http);
  Streamed text = CallStreaming(
      **llm, {.model = "mock-1", .body = R"({"messages":[{"role":"user","content":"hi"}]})"});
  ASSERT_TRUE(text.response.ok()) << text.response.status();
  EXPECT_GE(text.pieces.size(), 2u);
  EXPECT_EQ(absl::StrJoin(text.pieces, ""), Content(*text.response));
  EXPECT_THAT(Content(*text.response), HasSubstr("Mock answer to: hi"));
  EXPECT_GT(text.response->usage.prompt_tokens, 0);
  EXPECT_GT(text.response->usage.completion_tokens, 0);
  EXPECT_EQ(json::parse(text.response->body).at("choices").at(0).at("finish_reason"), "stop");

  Streamed tools = CallStreaming(
      **llm,
      {.model = "mock-1",
       .body = absl::StrCat(R"({"messages":[{"role":"user","content":"call:lookup Paris"}],)",
                            R"("tools":)", kLookupTool, "}")});
  ASSERT_TRUE(tools.response.ok()) << tools.response.status();
  json::value body = json::parse(tools.response->body);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "tool_calls");
  const json::value& call = body.at("choices").at(0).at("message").at("tool_calls").at(0);
  EXPECT_FALSE(call.at("id").as_string().empty());
  EXPECT_EQ(call.at("function").at("name"), "lookup");
  EXPECT_EQ(json::parse(call.at("function").at("arguments").as_string()).at("query"), "Paris");
  EXPECT_GT(tools.response->usage.completion_tokens, 0);
}

TEST(LlmClientTest, AStreamCutShortIsUnavailableNotATruncatedAnswer) {
  mockllm::MockLlmOptions options;
  options.knobs.chunks = 5;
  options.knobs.cut_after = 2;
  auto mock = mockllm::MockLlmServer::Create(options);
  ASSERT_TRUE(mock.ok());
  auto http = core::HttpClient::Create({});
  auto llm = CreateHttpLlmClient(
      {.base_url = absl::StrCat("http://127.0.0.1:", (*mock)->port(), "/v1")}, **http);
  Streamed cut = CallStreaming(
      **llm, {.model = "mock-1", .body = R"({"messages":[{"role":"user","content":"hi"}]})"});
  EXPECT_EQ(cut.response.status().code(), absl::StatusCode::kUnavailable) << cut.response.status();
}

TEST(LlmClientTest, TheInProcessClientStreamsThroughTheRouter) {
  mockllm::MockLlmOptions options;
  options.knobs.chunks = 5;
  auto mock = mockllm::MockLlmServer::Create(options);
  ASSERT_TRUE(mock.ok());
  router::v1::RouterConfig config;
  ASSERT_TRUE(core::ParseConfigText(
                  absl::StrCat("auth: {mode: none}\n"
                               "providers: [{name: p, kind: openai, base_url: \"http://127.0.0.1:",
                               (*mock)->port(),
                               "/v1\"}]\n"
                               "models: [{name: m, provider: p, upstream_model: mock-1, "
                               "capabilities: [chat, tools]}]\n"
                               "routes: [{name: chat, candidates: [m]}]\n"),
                  "router.yaml", &config)
                  .ok());
  auto policy = router::PolicyEngine::Create(config, core::Clock::Real());
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto http = core::HttpClient::Create({});
  auto keys = router::KeyStore::Open({}, **policy);
  auto gateway = router::Gateway::Create(**policy, **keys, **http);
  ASSERT_TRUE(gateway.ok());
  std::unique_ptr<LlmClient> llm = CreateInProcessLlmClient(**gateway);
  Streamed text = CallStreaming(
      *llm, {.model = "chat", .body = R"({"messages":[{"role":"user","content":"hi"}]})"});
  ASSERT_TRUE(text.response.ok()) << text.response.status();
  EXPECT_GE(text.pieces.size(), 2u);
  EXPECT_EQ(absl::StrJoin(text.pieces, ""), Content(*text.response));
  EXPECT_THAT(Content(*text.response), HasSubstr("Mock answer to: hi"));
  EXPECT_EQ(text.response->endpoint, "m@p");
  EXPECT_GT(text.response->usage.prompt_tokens, 0);
  EXPECT_GT(text.response->usage.completion_tokens, 0);

  Streamed tools = CallStreaming(
      *llm, {.model = "chat",
             .body = absl::StrCat(R"({"messages":[{"role":"user","content":"call:lookup Paris"}],)",
                                  R"("tools":)", kLookupTool, "}")});
  ASSERT_TRUE(tools.response.ok()) << tools.response.status();
  json::value body = json::parse(tools.response->body);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "tool_calls");
  const json::value& call = body.at("choices").at(0).at("message").at("tool_calls").at(0);
  EXPECT_EQ(call.at("function").at("name"), "lookup");
  EXPECT_EQ(json::parse(call.at("function").at("arguments").as_string()).at("query"), "Paris");
  EXPECT_GT(tools.response->usage.completion_tokens, 0);
}

}  // namespace
}  // namespace flowork::agent
