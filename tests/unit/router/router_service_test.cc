// RouterService's inference RPCs: the codec between the typed messages and
// the OpenAI wire JSON, and the service in process (gRPC server + Gateway +
// HttpClient) in front of flowork-mockllm.
#include "flowork/router/grpc/router_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "chat_codec.h"
#include "flowork/core/config_loader.h"
#include "flowork/core/http_client.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "flowork/router/gateway.h"
#include "flowork/router/key_ring.h"
#include "flowork/router/key_store.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

google::protobuf::Struct ParseStruct(const std::string& json) {
  google::protobuf::Struct out;
  auto status = google::protobuf::util::JsonStringToMessage(json, &out);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return out;
}

const google::protobuf::Value& Field(const google::protobuf::Struct& s, const std::string& key) {
  static const google::protobuf::Value* const kMissing = new google::protobuf::Value();
  auto it = s.fields().find(key);
  EXPECT_NE(it, s.fields().end()) << "no field " << key;
  return it == s.fields().end() ? *kMissing : it->second;
}

v1::ChatMessage Message(v1::Role role, const std::string& text) {
  v1::ChatMessage message;
  message.set_role(role);
  message.add_content()->set_text(text);
  return message;
}

// ---- Codec --------------------------------------------------------------

TEST(ChatCodecTest, RequestCarriesMessagesPartsToolsAndToolCalls) {
  v1::ChatRequest request;
  request.set_model("chat");
  *request.add_messages() = Message(v1::ROLE_SYSTEM, "be brief");
  v1::ChatMessage& user = *request.add_messages();
  user.set_role(v1::ROLE_USER);
  user.add_content()->set_text("what is this?");
  user.add_content()->mutable_image_url()->set_url("data:image/png;base64,AAAA");
  user.set_name("ann");
  v1::ChatMessage& assistant = *request.add_messages();
  assistant.set_role(v1::ROLE_ASSISTANT);
  v1::ToolCall& call = *assistant.add_tool_calls();
  call.set_id("call_1");
  call.set_name("search");
  call.set_arguments(R"({"query":"cats"})");
  v1::ChatMessage tool = Message(v1::ROLE_TOOL, "3 cats");
  tool.set_tool_call_id("call_1");
  *request.add_messages() = tool;
  v1::ToolDefinition& definition = *request.add_tools();
  definition.set_name("search");
  definition.set_description("Searches.");
  *definition.mutable_parameters() = ParseStruct(R"({"type":"object","required":["query"]})");
  request.mutable_tool_choice()->set_function("search");

  absl::StatusOr<std::string> body = codec::OpenAiChatBody(request, /*stream=*/false);
  ASSERT_TRUE(body.ok()) << body.status();
  const google::protobuf::Struct json = ParseStruct(*body);
  EXPECT_EQ(Field(json, "model").string_value(), "chat");
  EXPECT_FALSE(json.fields().contains("stream"));
  const auto& messages = Field(json, "messages").list_value();
  ASSERT_EQ(messages.values_size(), 4);
  const auto& system = messages.values(0).struct_value();
  EXPECT_EQ(Field(system, "role").string_value(), "system");
  EXPECT_EQ(Field(system, "content").string_value(), "be brief");  // One text part: a string.
  const auto& parts = Field(messages.values(1).struct_value(), "content").list_value();
  ASSERT_EQ(parts.values_size(), 2);
  EXPECT_EQ(Field(parts.values(0).struct_value(), "text").string_value(), "what is this?");
  EXPECT_EQ(Field(Field(parts.values(1).struct_value(), "image_url").struct_value(), "url")
                .string_value(),
            "data:image/png;base64,AAAA");
  EXPECT_EQ(Field(messages.values(1).struct_value(), "name").string_value(), "ann");
  const auto& assistant_json = messages.values(2).struct_value();
  EXPECT_EQ(Field(assistant_json, "content").kind_case(), google::protobuf::Value::kNullValue);
  const auto& call_json = Field(assistant_json, "tool_calls").list_value().values(0).struct_value();
  EXPECT_EQ(Field(call_json, "id").string_value(), "call_1");
  EXPECT_EQ(Field(call_json, "type").string_value(), "function");
  EXPECT_EQ(Field(Field(call_json, "function").struct_value(), "arguments").string_value(),
            R"({"query":"cats"})");
  EXPECT_EQ(Field(messages.values(3).struct_value(), "tool_call_id").string_value(), "call_1");
  const auto& tool_json = Field(json, "tools").list_value().values(0).struct_value();
  const auto& function = Field(tool_json, "function").struct_value();
  EXPECT_EQ(Field(function, "name").string_value(), "search");
  EXPECT_EQ(Field(function, "description").string_value(), "Searches.");
  EXPECT_EQ(Field(Field(function, "parameters").struct_value(), "type").string_value(), "object");
  EXPECT_EQ(
      Field(Field(Field(json, "tool_choice").struct_value(), "function").struct_value(), "name")
          .string_value(),
      "search");
}

TEST(ChatCodecTest, SetZerosAreSentAndUnsetFieldsAreNot) {
  v1::ChatRequest request;
  request.set_model("chat");
  *request.add_messages() = Message(v1::ROLE_USER, "hi");
  request.set_temperature(0);
  request.set_seed(0);
  absl::StatusOr<std::string> body = codec::OpenAiChatBody(request, false);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr(R"("temperature":0)"));
  EXPECT_THAT(*body, HasSubstr(R"("seed":0)"));
  EXPECT_THAT(*body, Not(HasSubstr("top_p")));
  EXPECT_THAT(*body, Not(HasSubstr("max_tokens")));
  EXPECT_THAT(*body, Not(HasSubstr("tool_choice")));
  EXPECT_THAT(*body, Not(HasSubstr("response_format")));

  request.set_top_p(0.9);
  request.set_max_tokens(7);
  request.add_stop("END");
  request.mutable_response_format()->set_type(v1::ResponseFormat::TYPE_JSON_SCHEMA);
  *request.mutable_response_format()->mutable_schema() = ParseStruct(R"({"type":"object"})");
  body = codec::OpenAiChatBody(request, /*stream=*/true);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr(R"("top_p":0.9)"));
  EXPECT_THAT(*body, HasSubstr(R"("max_tokens":7)"));
  EXPECT_THAT(*body, HasSubstr(R"("stop":["END"])"));
  EXPECT_THAT(*body, HasSubstr(R"("stream":true,"stream_options":{"include_usage":true})"));
  EXPECT_THAT(*body, HasSubstr(R"("response_format":{"type":"json_schema","json_schema":{"name":)"
                               R"("response","schema":{"type":"object"}}})"));
}

TEST(ChatCodecTest, ExtraIsMergedWithWholeNumbersAsIntegers) {
  v1::ChatRequest request;
  request.set_model("chat");
  *request.add_messages() = Message(v1::ROLE_USER, "hi");
  *request.mutable_extra() =
      ParseStruct(R"({"top_k":40,"presence_penalty":0.5,"vendor":{"mode":"fast","n":[1,2]}})");
  absl::StatusOr<std::string> body = codec::OpenAiChatBody(request, false);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr(R"("top_k":40)"));
  EXPECT_THAT(*body, HasSubstr(R"("presence_penalty":0.5)"));
  EXPECT_THAT(*body, HasSubstr(R"("n":[1,2])"));
  EXPECT_THAT(*body, HasSubstr(R"("mode":"fast")"));
}

TEST(ChatCodecTest, RefusesExtraKeysOfTypedFieldsAndUnsetRoles) {
  v1::ChatRequest request;
  request.set_model("chat");
  *request.add_messages() = Message(v1::ROLE_USER, "hi");
  *request.mutable_extra() = ParseStruct(R"({"messages":[]})");
  absl::StatusOr<std::string> body = codec::OpenAiChatBody(request, false);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(body.status().message(), HasSubstr("extra.messages"));
  *request.mutable_extra() = ParseStruct(R"({"stream":true})");
  EXPECT_THAT(codec::OpenAiChatBody(request, false).status().message(), HasSubstr("extra.stream"));

  request.clear_extra();
  request.add_messages()->add_content()->set_text("no role");
  body = codec::OpenAiChatBody(request, false);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(body.status().message(), HasSubstr("messages[1].role"));
}

TEST(ChatCodecTest, ResponseCarriesTextToolCallsAndUsage) {
  absl::StatusOr<v1::ChatResponse> response = codec::ChatResponseFromOpenAi(R"({
    "id":"chatcmpl-1","object":"chat.completion","model":"up-1",
    "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
      "content":"let me look",
      "tool_calls":[{"id":"call_9","type":"function",
                     "function":{"name":"search","arguments":"{\"query\":\"x\"}"}}]}}],
    "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
             "prompt_tokens_details":{"cached_tokens":4}}})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->id(), "chatcmpl-1");
  EXPECT_EQ(response->model(), "up-1");
  EXPECT_EQ(response->finish_reason(), "tool_calls");
  EXPECT_EQ(response->message().role(), v1::ROLE_ASSISTANT);
  ASSERT_EQ(response->message().content_size(), 1);
  EXPECT_EQ(response->message().content(0).text(), "let me look");
  ASSERT_EQ(response->message().tool_calls_size(), 1);
  EXPECT_EQ(response->message().tool_calls(0).id(), "call_9");
  EXPECT_EQ(response->message().tool_calls(0).name(), "search");
  EXPECT_EQ(response->message().tool_calls(0).arguments(), R"({"query":"x"})");
  EXPECT_EQ(response->usage().prompt_tokens(), 10u);
  EXPECT_EQ(response->usage().completion_tokens(), 5u);
  EXPECT_EQ(response->usage().cached_tokens(), 4u);
  EXPECT_EQ(response->usage().total_tokens(), 15u);

  EXPECT_EQ(codec::ChatResponseFromOpenAi(R"({"choices":[]})").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(codec::ChatResponseFromOpenAi("not json").status().code(), absl::StatusCode::kInternal);
}

TEST(ChatCodecTest, AnOpenAiRequestBecomesTypedAndEncodesBackToTheSameRequest) {
  const std::string body =
      R"({"model":"chat","stream":true,"messages":[)"
      R"({"role":"system","content":"be brief"},)"
      R"({"role":"user","content":[{"type":"text","text":"what?"},)"
      R"({"type":"image_url","image_url":{"url":"data:x","detail":"low"}}]},)"
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1",)"
      R"("type":"function","function":{"name":"search","arguments":"{\"q\":1}"}}]},)"
      R"({"role":"tool","tool_call_id":"c1","content":"3 cats"}],)"
      R"("tools":[{"type":"function","function":{"name":"search",)"
      R"("description":"Searches.","parameters":{"type":"object"}}}],)"
      R"("tool_choice":"required","temperature":0,"max_tokens":40,)"
      R"("stop":"END","seed":7,"top_k":40,"response_format":{"type":)"
      R"("json_schema","json_schema":{"name":"city","schema":{"type":"object"},)"
      R"("strict":true}}})";
  absl::StatusOr<v1::ChatRequest> request = codec::ChatRequestFromOpenAi(body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model(), "chat");
  ASSERT_EQ(request->messages_size(), 4);
  EXPECT_EQ(request->messages(1).content(1).image_url().detail(), "low");
  EXPECT_EQ(request->messages(2).tool_calls(0).arguments(), R"({"q":1})");
  EXPECT_EQ(request->messages(3).tool_call_id(), "c1");
  EXPECT_EQ(request->tools(0).name(), "search");
  EXPECT_EQ(request->tool_choice().mode(), v1::ToolChoice::MODE_REQUIRED);
  EXPECT_TRUE(request->has_temperature());
  EXPECT_EQ(request->max_tokens(), 40u);
  EXPECT_EQ(request->seed(), 7);
  EXPECT_EQ(request->response_format().schema_name(), "city");
  EXPECT_TRUE(request->response_format().strict());
  EXPECT_EQ(request->extra().fields().size(), 1u);  // top_k; "stream" is dropped.
  absl::StatusOr<std::string> again = codec::OpenAiChatBody(*request, /*stream=*/false);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const char* piece :
       {R"("content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":)"
        R"("search","arguments":"{\"q\":1}"}}])",
        R"("tool_choice":"required")", R"("temperature":0)", R"("max_tokens":40)",
        R"("stop":["END"])", R"("top_k":40)", R"("seed":7)", R"("detail":"low")",
        R"("strict":true)"}) {
    EXPECT_THAT(*again, HasSubstr(piece));
  }
  EXPECT_THAT(*again, Not(HasSubstr("stream")));

  EXPECT_EQ(codec::ChatRequestFromOpenAi("[1]").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(codec::ChatRequestFromOpenAi(R"({"messages":[{"role":"robot"}]})").status().message(),
              HasSubstr("messages[0].role"));
  EXPECT_THAT(codec::ChatRequestFromOpenAi(
                  R"({"messages":[{"role":"user","content":[{"type":"input_audio"}]}]})")
                  .status()
                  .message(),
              HasSubstr("messages[0].content[0].type"));
  EXPECT_THAT(codec::ChatRequestFromOpenAi(R"({"temperature":"hot"})").status().message(),
              HasSubstr("temperature"));
}

TEST(ChatCodecTest, ATypedAnswerBecomesAnOpenAiCompletionAndBack) {
  v1::ChatResponse response;
  response.set_id("chatcmpl-1");
  response.set_model("up-1");
  response.set_finish_reason("tool_calls");
  response.mutable_message()->set_role(v1::ROLE_ASSISTANT);
  v1::ToolCall& call = *response.mutable_message()->add_tool_calls();
  call.set_id("call_9");
  call.set_name("search");
  call.set_arguments(R"({"query":"x"})");
  response.mutable_usage()->set_prompt_tokens(10);
  response.mutable_usage()->set_completion_tokens(5);
  response.mutable_usage()->set_cached_tokens(4);
  const std::string body = codec::OpenAiChatCompletion(response);
  EXPECT_THAT(body, HasSubstr(R"("object":"chat.completion")"));
  EXPECT_THAT(body, HasSubstr(R"("content":null)"));
  EXPECT_THAT(body, HasSubstr(R"("total_tokens":15)"));
  absl::StatusOr<v1::ChatResponse> back = codec::ChatResponseFromOpenAi(body);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id(), "chatcmpl-1");
  EXPECT_EQ(back->model(), "up-1");
  EXPECT_EQ(back->finish_reason(), "tool_calls");
  EXPECT_EQ(back->message().tool_calls(0).arguments(), R"({"query":"x"})");
  EXPECT_EQ(back->usage().cached_tokens(), 4u);
  EXPECT_EQ(back->usage().total_tokens(), 15u);

  response.mutable_message()->clear_tool_calls();
  response.mutable_message()->add_content()->set_text("Hel");
  response.mutable_message()->add_content()->set_text("lo");
  EXPECT_THAT(codec::OpenAiChatCompletion(response), HasSubstr(R"("content":"Hello")"));
}

TEST(ChatCodecTest, SseEventsSurviveAnyCutAndBecomeChunks) {
  const std::string stream =
      "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
      "\"assistant\",\"content\":\"Hel\"}}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
      "\"id\":\"call_2\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\"}}]}}]}\r\n\r\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
      "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n"
      "data: [DONE]\n\n";
  for (size_t cut = 1; cut < stream.size(); cut += 7) {
    codec::SseSplitter splitter;
    std::vector<codec::SseSplitter::Event> events = splitter.Feed(stream.substr(0, cut));
    for (auto& event : splitter.Feed(stream.substr(cut))) events.push_back(std::move(event));
    ASSERT_EQ(events.size(), 4u) << "cut at " << cut;
    std::vector<v1::ChatChunk> chunks;
    for (const auto& event : events) {
      auto chunk = codec::ChatChunkFromEvent(event);
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      if (chunk->has_value()) chunks.push_back(**chunk);
    }
    ASSERT_EQ(chunks.size(), 3u);
    EXPECT_EQ(chunks[0].delta().role(), v1::ROLE_ASSISTANT);
    EXPECT_EQ(chunks[0].delta().content(), "Hel");
    ASSERT_EQ(chunks[1].delta().tool_calls_size(), 1);
    EXPECT_EQ(chunks[1].delta().tool_calls(0).index(), 1u);
    EXPECT_EQ(chunks[1].delta().tool_calls(0).id(), "call_2");
    EXPECT_EQ(chunks[1].delta().tool_calls(0).name(), "f");
    EXPECT_EQ(chunks[1].delta().tool_calls(0).arguments(), R"({"a)");
    EXPECT_EQ(chunks[2].finish_reason(), "stop");
    EXPECT_EQ(chunks[2].usage().total_tokens(), 5u);
    EXPECT_FALSE(chunks[0].has_usage());
  }
}

TEST(ChatCodecTest, AnErrorEventIsAnErrorStatus) {
  auto chunk = codec::ChatChunkFromEvent(
      {.name = "", .data = R"({"error":{"message":"upstream broke","code":"upstream_cut"}})"});
  EXPECT_EQ(chunk.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(chunk.status().message(), "upstream broke");
}

TEST(ChatCodecTest, GatewayAnswersMapToStatuses) {
  const std::string error = R"({"error":{"message":"nope","type":"x","code":"some_code"}})";
  const std::vector<std::pair<int, absl::StatusCode>> table = {
      {400, absl::StatusCode::kInvalidArgument},   {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},  {404, absl::StatusCode::kNotFound},
      {429, absl::StatusCode::kResourceExhausted}, {503, absl::StatusCode::kUnavailable},
      {502, absl::StatusCode::kUnavailable},       {504, absl::StatusCode::kDeadlineExceeded},
      {500, absl::StatusCode::kInternal},          {418, absl::StatusCode::kUnknown}};
  for (const auto& [http, code] : table) {
    codec::GatewayFailure failure = codec::FailureFromAnswer(http, {}, error);
    EXPECT_EQ(failure.status.code(), code) << http;
    EXPECT_EQ(failure.status.message(), "nope");
    EXPECT_EQ(failure.error_code, "some_code");
  }
  codec::GatewayFailure limited =
      codec::FailureFromAnswer(429, {{"Retry-After", "7"}}, "<html>busy</html>");
  EXPECT_EQ(limited.retry_after, "7");
  EXPECT_THAT(limited.status.message(), HasSubstr("HTTP 429"));
}

TEST(ChatCodecTest, EmbeddingsGoBothWaysInInputOrder) {
  v1::EmbedRequest request;
  request.set_model("e");
  request.add_input("a");
  request.add_input("b");
  request.set_dimensions(3);
  absl::StatusOr<std::string> body = codec::OpenAiEmbeddingsBody(request);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, R"({"model":"e","input":["a","b"],"dimensions":3})");
  absl::StatusOr<v1::EmbedResponse> response = codec::EmbedResponseFromOpenAi(
      R"({"object":"list","model":"e1","data":[{"index":1,"embedding":[0.5,1]},)"
      R"({"index":0,"embedding":[0.25,0]}],"usage":{"prompt_tokens":2,"total_tokens":2}})");
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->embeddings_size(), 2);
  EXPECT_THAT(response->embeddings(0).values(), ElementsAre(0.25f, 0.0f));
  EXPECT_THAT(response->embeddings(1).values(), ElementsAre(0.5f, 1.0f));
  EXPECT_EQ(response->usage().prompt_tokens(), 2u);
}

// ---- The service in process -------------------------------------------------

std::unique_ptr<mockllm::MockLlmServer> StartMock(mockllm::MockKnobs knobs = {}) {
  mockllm::MockLlmOptions options;
  options.knobs = std::move(knobs);
  auto server = mockllm::MockLlmServer::Create(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

class RouterServiceTest : public ::testing::Test {
 protected:
  // Route "chat" and model "m1" on the mock at `port`; `auth` and `keys`
  // are YAML for those sections.
  void ServeOn(int port, const std::string& auth = "{mode: none}", const std::string& keys = "") {
    const std::string yaml =
        absl::StrCat("auth: ", auth, "\nproviders:\n  - {name: mock, kind: openai, base_url: ",
                     "\"http://127.0.0.1:", port, "/v1\", zone: local}\n", "models:\n",
                     "  - {name: m1, provider: mock, upstream_model: mock-1, ",
                     "capabilities: [chat, tools, embeddings]}\n", "routes:\n",
                     "  - {name: chat, candidates: [m1], retry: {same_endpoint: 0}}\n", keys);
    v1::RouterConfig config;
    absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
    ASSERT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
    auto policy = PolicyEngine::Create(config, core::Clock::Real());
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    auto client = core::HttpClient::Create({});
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
    keys_ = *KeyStore::Open({}, *policy_);
    auto gateway = Gateway::Create(*policy_, *keys_, *client_);
    ASSERT_TRUE(gateway.ok());
    gateway_ = *std::move(gateway);
    service_ = std::make_unique<RouterServiceImpl>(*policy_, *gateway_, keys_.get());
    grpc::ServerBuilder builder;
    int port_bound = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_bound);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_bound, 0);
    stub_ = v1::RouterService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_bound),
                                                           grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  static void Bound(grpc::ClientContext& context, absl::Duration timeout = absl::Seconds(10)) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  static v1::ChatRequest Hi(const std::string& model = "chat") {
    v1::ChatRequest request;
    request.set_model(model);
    *request.add_messages() = Message(v1::ROLE_USER, "hi");
    return request;
  }

  static std::string InitialMetadata(const grpc::ClientContext& context, const std::string& name) {
    auto it = context.GetServerInitialMetadata().find(name);
    return it == context.GetServerInitialMetadata().end()
               ? ""
               : std::string(it->second.data(), it->second.size());
  }

  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<core::HttpClient> client_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<RouterServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::RouterService::Stub> stub_;
};

TEST_F(RouterServiceTest, ChatAnswersThroughTheGateway) {
  auto mock = StartMock({.tokens = 4});
  ServeOn(mock->port());
  grpc::ClientContext context;
  Bound(context);
  context.AddMetadata("x-request-id", "req-grpc-1");
  v1::ChatResponse response;
  grpc::Status status = stub_->Chat(&context, Hi(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.message().role(), v1::ROLE_ASSISTANT);
  ASSERT_EQ(response.message().content_size(), 1);
  EXPECT_EQ(response.message().content(0).text(), "Mock answer to: hi.");
  EXPECT_EQ(response.finish_reason(), "stop");
  EXPECT_EQ(response.endpoint(), "m1@mock");
  EXPECT_EQ(response.usage().prompt_tokens(), 1u);
  EXPECT_EQ(response.usage().completion_tokens(), 4u);
  EXPECT_EQ(response.usage().total_tokens(), 5u);
  EXPECT_EQ(InitialMetadata(context, "x-flowork-endpoint"), "m1@mock");
  EXPECT_EQ(InitialMetadata(context, "x-request-id"), "req-grpc-1");
  EXPECT_EQ(mock->calls("/v1/chat/completions"), 1);
}

TEST_F(RouterServiceTest, ChatReturnsTheModelsToolCalls) {
  auto mock = StartMock();
  ServeOn(mock->port());
  v1::ChatRequest request = Hi();
  request.mutable_messages(0)->mutable_content(0)->set_text("find call:search cats");
  v1::ToolDefinition& tool = *request.add_tools();
  tool.set_name("search");
  *tool.mutable_parameters() = ParseStruct(R"({"type":"object"})");
  grpc::ClientContext context;
  Bound(context);
  v1::ChatResponse response;
  grpc::Status status = stub_->Chat(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.finish_reason(), "tool_calls");
  ASSERT_EQ(response.message().tool_calls_size(), 1);
  EXPECT_EQ(response.message().tool_calls(0).name(), "search");
  EXPECT_EQ(response.message().tool_calls(0).arguments(), R"({"query":"cats"})");
  EXPECT_FALSE(response.message().tool_calls(0).id().empty());
}

TEST_F(RouterServiceTest, StreamChatSendsChunksWithUsageOnTheLast) {
  auto mock = StartMock({.chunks = 4, .tokens = 4});
  ServeOn(mock->port());
  grpc::ClientContext context;
  Bound(context);
  auto reader = stub_->StreamChat(&context, Hi());
  std::vector<v1::ChatChunk> chunks;
  v1::ChatChunk chunk;
  while (reader->Read(&chunk)) chunks.push_back(chunk);
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(chunks.size(), 4u);
  std::string text;
  int with_usage = 0;
  for (const v1::ChatChunk& c : chunks) {
    text += c.delta().content();
    with_usage += c.has_usage() ? 1 : 0;
  }
  EXPECT_EQ(text, "Mock answer to: hi.");
  EXPECT_EQ(chunks.front().endpoint(), "m1@mock");
  EXPECT_EQ(with_usage, 1);
  EXPECT_TRUE(chunks.back().has_usage());
  EXPECT_EQ(chunks.back().usage().completion_tokens(), 4u);
  bool finished = false;
  for (const v1::ChatChunk& c : chunks) finished = finished || c.finish_reason() == "stop";
  EXPECT_TRUE(finished);
  EXPECT_EQ(InitialMetadata(context, "x-flowork-endpoint"), "m1@mock");
}

TEST_F(RouterServiceTest, StreamChatForwardsChunksAsTheyArriveAndCancelsUpstream) {
  // Ten seconds between deltas: the first chunk can only arrive in time if
  // it is forwarded as soon as the upstream sends it.
  auto mock = StartMock({.chunk_interval = absl::Seconds(10), .chunks = 4, .tokens = 4});
  ServeOn(mock->port());
  grpc::ClientContext context;
  Bound(context, absl::Seconds(5));
  auto reader = stub_->StreamChat(&context, Hi());
  v1::ChatChunk chunk;
  std::string text;
  while (text.empty() && reader->Read(&chunk)) text += chunk.delta().content();
  EXPECT_EQ(text, "Mock ");
  EXPECT_EQ(policy_->stats().Find("m1@mock")->Read(absl::Now()).in_flight, 1);
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The gateway's upstream call ends with the RPC, long before the mock would finish.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (policy_->stats().Find("m1@mock")->Read(absl::Now()).in_flight != 0 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));  // Polling a counter; nothing to wait on.
  }
  EXPECT_EQ(policy_->stats().Find("m1@mock")->Read(absl::Now()).in_flight, 0);
}

TEST_F(RouterServiceTest, AStreamCutMidwayEndsWithAnErrorStatus) {
  auto mock = StartMock({.chunks = 4, .tokens = 8, .cut_after = 2});
  ServeOn(mock->port());
  grpc::ClientContext context;
  Bound(context);
  auto reader = stub_->StreamChat(&context, Hi());
  v1::ChatChunk chunk;
  int chunks = 0;
  while (reader->Read(&chunk)) ++chunks;
  grpc::Status status = reader->Finish();
  EXPECT_GE(chunks, 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("m1@mock"));
}

TEST_F(RouterServiceTest, EmbedReturnsOneVectorPerInput) {
  auto mock = StartMock();
  ServeOn(mock->port());
  v1::EmbedRequest request;
  request.set_model("m1");
  request.add_input("one");
  request.add_input("two");
  request.set_dimensions(5);
  grpc::ClientContext context;
  Bound(context);
  v1::EmbedResponse response;
  grpc::Status status = stub_->Embed(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.embeddings_size(), 2);
  EXPECT_EQ(response.embeddings(0).values_size(), 5);
  EXPECT_NE(response.embeddings(0).values(0), response.embeddings(1).values(0));
  EXPECT_EQ(response.endpoint(), "m1@mock");
  EXPECT_EQ(mock->calls("/v1/embeddings"), 1);
}

TEST_F(RouterServiceTest, UnknownModelIsNotFoundAndBadRequestsNeverLeave) {
  auto mock = StartMock();
  ServeOn(mock->port());
  {
    grpc::ClientContext context;
    Bound(context);
    v1::ChatResponse response;
    grpc::Status status = stub_->Chat(&context, Hi("gpt-nope"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("gpt-nope"));
  }
  {
    grpc::ClientContext context;
    Bound(context);
    auto reader = stub_->StreamChat(&context, Hi("gpt-nope"));
    v1::ChatChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::ChatRequest request = Hi();
    *request.mutable_extra() = ParseStruct(R"({"model":"other"})");
    grpc::ClientContext context;
    Bound(context);
    v1::ChatResponse response;
    grpc::Status status = stub_->Chat(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("extra.model"));
  }
  EXPECT_EQ(mock->calls(), 0);
}

TEST_F(RouterServiceTest, KeysComeFromMetadataAsOnTheHttpPath) {
  auto mock = StartMock();
  ServeOn(mock->port(), "{mode: keys}",
          absl::StrCat("keys:\n  - {name: team-a, sha256: \"", KeyRing::Sha256Hex("alpha"),
                       "\", tenant: a, allow: [chat]}\n"));
  auto chat = [&](const std::string& header, const std::string& value,
                  const std::string& model = "chat") {
    grpc::ClientContext context;
    Bound(context);
    if (!header.empty()) context.AddMetadata(header, value);
    v1::ChatResponse response;
    return stub_->Chat(&context, Hi(model), &response).error_code();
  };
  EXPECT_EQ(chat("", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(chat("authorization", "Bearer wrong"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(mock->calls(), 0);
  EXPECT_EQ(chat("authorization", "Bearer alpha"), grpc::StatusCode::OK);
  EXPECT_EQ(chat("x-api-key", "alpha"), grpc::StatusCode::OK);
  EXPECT_EQ(chat("authorization", "Bearer alpha", "m1"), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(RouterServiceTest, ListModelsAndExplainRouteCheckTheKeyToo) {
  auto mock = StartMock();
  ServeOn(mock->port(), "{mode: keys}",
          absl::StrCat("keys:\n  - {name: team-a, sha256: \"", KeyRing::Sha256Hex("alpha"),
                       "\", tenant: a, allow: [chat]}\n"));
  {
    grpc::ClientContext context;
    Bound(context);
    v1::ListModelsResponse response;
    EXPECT_EQ(stub_->ListModels(&context, {}, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    Bound(context);
    context.AddMetadata("authorization", "Bearer alpha");
    v1::ListModelsResponse response;
    ASSERT_TRUE(stub_->ListModels(&context, {}, &response).ok());
    ASSERT_EQ(response.models_size(), 1);  // Only what the key may use: not m1.
    EXPECT_EQ(response.models(0).id(), "chat");
  }
  auto explain = [&](const std::string& model) {
    grpc::ClientContext context;
    Bound(context);
    context.AddMetadata("authorization", "Bearer alpha");
    v1::ExplainRouteRequest request;
    request.set_model(model);
    v1::ExplainRouteResponse response;
    return stub_->ExplainRoute(&context, request, &response).error_code();
  };
  EXPECT_EQ(explain("chat"), grpc::StatusCode::OK);
  EXPECT_EQ(explain("m1"), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(RouterServiceTest, RateLimitedIsResourceExhaustedWithRetryAfter) {
  auto mock = StartMock({.status = 429, .retry_after_seconds = 7});
  ServeOn(mock->port());
  grpc::ClientContext context;
  Bound(context);
  v1::ChatResponse response;
  grpc::Status status = stub_->Chat(&context, Hi(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  auto it = context.GetServerTrailingMetadata().find("retry-after");
  ASSERT_NE(it, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "7");
}

}  // namespace
}  // namespace flowork::router
