#include "flowork/mockllm/mock_llm_server.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/json.hpp"
#include "flowork/testing/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "raw_http_client.h"

namespace flowork::mockllm {
namespace {

namespace json = boost::json;
using ::flowork::testing::ClientResponse;
using ::flowork::testing::HttpCall;
using rawhttp::kWait;
using rawhttp::PostRequest;
using rawhttp::RawHttpClient;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kChat[] = "/v1/chat/completions";
constexpr char kHiChat[] = R"({"model":"mock-1","messages":[{"role":"user","content":"hi"}]})";
constexpr char kHiChatStream[] =
    R"({"model":"mock-1","stream":true,"messages":[{"role":"user","content":"hi"}]})";
// The answer to "hi" in 4 tokens, and to "hello world" in 8 tokens as 4 deltas.
constexpr char kHiAnswer[] = "Mock answer to: hi.";
const std::vector<std::string> kHelloDeltas = {"Mock answer ", "to: hello ", "world. Mock ",
                                               "answer to:"};
constexpr char kHelloAnswer[] = "Mock answer to: hello world. Mock answer to:";

std::unique_ptr<MockLlmServer> StartMock(MockKnobs knobs = {},
                                         std::vector<std::string> models = {"mock-1"}) {
  MockLlmOptions options;
  options.knobs = std::move(knobs);
  options.models = std::move(models);
  absl::StatusOr<std::unique_ptr<MockLlmServer>> server = MockLlmServer::Create(options);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  return *std::move(server);
}

// Answers of 4 tokens in 2 deltas: small enough to spell out byte for byte.
MockKnobs SmallAnswers() {
  MockKnobs knobs;
  knobs.tokens = 4;
  knobs.chunks = 2;
  return knobs;
}

MockKnobs HelloAnswers() {
  MockKnobs knobs;
  knobs.tokens = 8;
  knobs.chunks = 4;
  return knobs;
}

ClientResponse Post(const MockLlmServer& server, const std::string& path, const std::string& body,
                    Headers headers = {}) {
  absl::StatusOr<ClientResponse> response =
      HttpCall(server.port(), "POST", path, body, std::move(headers));
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? *std::move(response) : ClientResponse{};
}

ClientResponse Get(const MockLlmServer& server, const std::string& path) {
  absl::StatusOr<ClientResponse> response = HttpCall(server.port(), "GET", path);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? *std::move(response) : ClientResponse{};
}

json::value ParseJson(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return value;
}

// The payloads of the "data: " lines of an SSE body, in order.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> data;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (absl::ConsumePrefix(&line, "data: ")) data.emplace_back(line);
  }
  return data;
}

// The text of OpenAI chat chunks' content deltas, joined.
std::string OpenAiStreamText(const std::vector<std::string>& data) {
  std::string text;
  for (const std::string& payload : data) {
    if (payload == "[DONE]") continue;
    json::value chunk = ParseJson(payload);
    const json::array& choices = chunk.at("choices").as_array();
    if (choices.empty()) continue;
    if (const json::value* content = choices[0].at("delta").as_object().if_contains("content");
        content != nullptr && content->is_string()) {
      text += content->as_string();
    }
  }
  return text;
}

std::string OpenAiChunk(std::string_view delta, std::string_view finish_reason) {
  return absl::StrCat(
      "data: "
      R"({"id":"mock-1","object":"chat.completion.chunk","created":1700000000,"model":"mock-1",)"
      R"("choices":[{"index":0,"delta":)",
      std::string(delta), R"(,"finish_reason":)", std::string(finish_reason), "}]}\n\n");
}

// Waits (bounded) until the server has received `count` requests for `path`.
bool WaitForCalls(const MockLlmServer& server, const std::string& path, int64_t count) {
  const absl::Time deadline = absl::Now() + kWait;
  while (server.calls(path) < count) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// --- Wire formats -----------------------------------------------------------

TEST(MockLlmTest, AnswersOpenAiChatWholeWithUsage) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response = Post(*server, kChat, kHiChat);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("Content-Type"), "application/json");
  EXPECT_EQ(
      response.body,
      R"({"id":"mock-1","object":"chat.completion","created":1700000000,"model":"mock-1",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Mock answer to: hi."},)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,)"
      R"("total_tokens":5,"prompt_tokens_details":{"cached_tokens":0}}})");
}

TEST(MockLlmTest, StreamsOpenAiChatAsSseChunksThenDone) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response = Post(*server, kChat, kHiChatStream);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(response.body, absl::StrCat(OpenAiChunk(R"({"role":"assistant","content":""})", "null"),
                                        OpenAiChunk(R"({"content":"Mock answer "})", "null"),
                                        OpenAiChunk(R"({"content":"to: hi."})", "null"),
                                        OpenAiChunk("{}", R"("stop")"), "data: [DONE]\n\n"));
}

TEST(MockLlmTest, StreamsOpenAiUsageChunkWhenIncludeUsageIsSet) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response =
      Post(*server, kChat,
           R"({"stream":true,"stream_options":{"include_usage":true},"messages":[)"
           R"({"role":"system","content":"be brief"},{"role":"user","content":"hi"}]})");
  std::vector<std::string> data = SseData(response.body);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_EQ(data[data.size() - 2],
            R"({"id":"mock-1","object":"chat.completion.chunk","created":1700000000,)"
            R"("model":"mock-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,)"
            R"("total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}})");
}

TEST(MockLlmTest, AnswersOpenAiCompletionsWholeAndStreamed) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse whole = Post(*server, "/v1/completions", R"({"prompt":"hi"})");
  EXPECT_EQ(whole.body,
            R"({"id":"mock-1","object":"text_completion","created":1700000000,"model":"mock-1",)"
            R"("choices":[{"text":"Mock answer to: hi.","index":0,"logprobs":null,)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,)"
            R"("total_tokens":5,"prompt_tokens_details":{"cached_tokens":0}}})");

  ClientResponse streamed = Post(*server, "/v1/completions", R"({"prompt":"hi","stream":true})");
  std::vector<std::string> data = SseData(streamed.body);
  ASSERT_EQ(data.size(), 4u);
  std::string text;
  for (int i = 0; i < 2; ++i)
    text += json::value_to<std::string>(ParseJson(data[i]).at("choices").at(0).at("text"));
  EXPECT_EQ(text, kHiAnswer);
  EXPECT_EQ(ParseJson(data[2]).at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(data[3], "[DONE]");
}

TEST(MockLlmTest, AnswersAnthropicMessagesWholeWithUsage) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response = Post(*server, "/v1/messages",
                                 R"({"model":"claude-mock","max_tokens":100,"system":"be brief",)"
                                 R"("messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body,
            R"({"id":"mock-1","type":"message","role":"assistant","content":[{"type":"text",)"
            R"("text":"Mock answer to: hi."}],"model":"claude-mock","stop_reason":"end_turn",)"
            R"("stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4,)"
            R"("cache_creation_input_tokens":0,"cache_read_input_tokens":0}})");
}

TEST(MockLlmTest, StreamsAnthropicMessagesAsNamedEvents) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response =
      Post(*server, "/v1/messages",
           R"({"model":"claude-mock","max_tokens":100,"stream":true,"system":"be brief",)"
           R"("messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})");
  EXPECT_EQ(response.Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(
      response.body,
      "event: message_start\n"
      R"(data: {"type":"message_start","message":{"id":"mock-1","type":"message",)"
      R"("role":"assistant","content":[],"model":"claude-mock","stop_reason":null,)"
      R"("stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":0,)"
      R"("cache_creation_input_tokens":0,"cache_read_input_tokens":0}}})"
      "\n\n"
      "event: content_block_start\n"
      R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,)"
      R"("delta":{"type":"text_delta","text":"Mock answer "}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"to: hi."}})"
      "\n\n"
      "event: content_block_stop\n"
      R"(data: {"type":"content_block_stop","index":0})"
      "\n\n"
      "event: message_delta\n"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},)"
      R"("usage":{"output_tokens":4}})"
      "\n\n"
      "event: message_stop\n"
      R"(data: {"type":"message_stop"})"
      "\n\n");
}

TEST(MockLlmTest, StreamsOllamaChatAsNdjsonByDefault) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response =
      Post(*server, "/api/chat",
           R"({"model":"llama-mock","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(response.Header("Content-Type"), "application/x-ndjson");
  EXPECT_EQ(response.body, R"({"model":"llama-mock","created_at":"2023-11-14T22:13:20Z","message":)"
                           R"({"role":"assistant","content":"Mock answer "},"done":false})"
                           "\n"
                           R"({"model":"llama-mock","created_at":"2023-11-14T22:13:20Z","message":)"
                           R"({"role":"assistant","content":"to: hi."},"done":false})"
                           "\n"
                           R"({"model":"llama-mock","created_at":"2023-11-14T22:13:20Z","message":)"
                           R"({"role":"assistant","content":""},"done_reason":"stop","done":true,)"
                           R"("total_duration":0,"load_duration":0,"prompt_eval_count":1,)"
                           R"("prompt_eval_duration":0,"eval_count":4,"eval_duration":0})"
                           "\n");
}

TEST(MockLlmTest, AnswersOllamaChatWithOneObjectWhenStreamIsFalse) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response =
      Post(*server, "/api/chat",
           R"({"model":"llama-mock","stream":false,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(response.Header("Content-Type"), "application/json");
  EXPECT_EQ(response.body,
            R"({"model":"llama-mock","created_at":"2023-11-14T22:13:20Z","message":)"
            R"({"role":"assistant","content":"Mock answer to: hi."},"done_reason":"stop",)"
            R"("done":true,"total_duration":0,"load_duration":0,"prompt_eval_count":1,)"
            R"("prompt_eval_duration":0,"eval_count":4,"eval_duration":0})");
}

TEST(MockLlmTest, SameRequestGetsSameBytesApartFromTheId) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  const std::string body =
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hello world"}]})";
  std::string first = Post(*server, kChat, body).body;
  std::string second = Post(*server, kChat, body).body;
  EXPECT_NE(first, second);
  EXPECT_EQ(absl::StrReplaceAll(first, {{"mock-1", "mock-N"}}),
            absl::StrReplaceAll(second, {{"mock-2", "mock-N"}}));
  EXPECT_EQ(OpenAiStreamText(SseData(first)), kHelloAnswer);
}

TEST(MockLlmTest, MaxTokensTruncatesTheAnswerWithFinishReasonLength) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  json::value openai =
      ParseJson(Post(*server, kChat,
                     R"({"max_tokens":3,"messages":[{"role":"user","content":"hello world"}]})")
                    .body);
  EXPECT_EQ(openai.at("choices").at(0).at("message").at("content"), "Mock answer to: ");
  EXPECT_EQ(openai.at("choices").at(0).at("finish_reason"), "length");
  EXPECT_EQ(openai.at("usage").at("completion_tokens"), 3);

  json::value anthropic =
      ParseJson(Post(*server, "/v1/messages",
                     R"({"max_tokens":2,"messages":[{"role":"user","content":"hello world"}]})")
                    .body);
  EXPECT_EQ(anthropic.at("content").at(0).at("text"), "Mock answer ");
  EXPECT_EQ(anthropic.at("stop_reason"), "max_tokens");
}

TEST(MockLlmTest, EmbeddingsAreDeterministicUnitVectorsOfTheAskedSize) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  const std::string first = Post(*server, "/v1/embeddings", R"({"input":"hello"})").body;
  EXPECT_EQ(first, Post(*server, "/v1/embeddings", R"({"input":"hello"})").body);
  json::value single = ParseJson(first);
  const json::array& vector = single.at("data").at(0).at("embedding").as_array();
  EXPECT_EQ(vector.size(), 8u);  // The default.
  EXPECT_EQ(single.at("usage").at("prompt_tokens"), 1);

  json::value pair = ParseJson(
      Post(*server, "/v1/embeddings", R"({"input":["hello","world"],"dimensions":16})").body);
  const json::array& data = pair.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[1].at("index"), 1);
  const json::array& hello = data[0].at("embedding").as_array();
  ASSERT_EQ(hello.size(), 16u);
  EXPECT_NE(hello, data[1].at("embedding").as_array());
  double norm = 0;
  for (const json::value& v : hello) norm += v.to_number<double>() * v.to_number<double>();
  EXPECT_NEAR(norm, 1.0, 1e-4);

  json::value ollama = ParseJson(Post(*server, "/api/embed", R"({"input":["hello"]})").body);
  EXPECT_EQ(ollama.at("embeddings").at(0).as_array(), vector);

  json::value base64 = ParseJson(
      Post(*server, "/v1/embeddings", R"({"input":"hello","encoding_format":"base64"})").body);
  std::string bytes;
  ASSERT_TRUE(absl::Base64Unescape(
      json::value_to<std::string>(base64.at("data").at(0).at("embedding")), &bytes));
  ASSERT_EQ(bytes.size(), 8 * sizeof(float));
  float first_value;
  std::memcpy(&first_value, bytes.data(), sizeof(float));
  EXPECT_NEAR(first_value, vector[0].to_number<double>(), 1e-6);
}

TEST(MockLlmTest, ListsTheConfiguredModels) {
  auto server = StartMock({}, {"alpha", "beta"});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(
      Get(*server, "/v1/models").body,
      R"({"object":"list","data":[)"
      R"({"id":"alpha","object":"model","created":1700000000,"owned_by":"flowork-mockllm"},)"
      R"({"id":"beta","object":"model","created":1700000000,"owned_by":"flowork-mockllm"}]})");
  json::value tags = ParseJson(Get(*server, "/api/tags").body);
  EXPECT_EQ(tags.at("models").at(1).at("name"), "beta");
  // A request without a model is answered as the first one.
  EXPECT_EQ(ParseJson(Post(*server, kChat, R"({"messages":[{"role":"user","content":"x"}]})").body)
                .at("model"),
            "alpha");
}

// --- Errors -----------------------------------------------------------------

TEST(MockLlmTest, AnswersBadJsonWithEachApisErrorShape) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  ClientResponse openai = Post(*server, kChat, "{nope");
  EXPECT_EQ(openai.status, 400);
  EXPECT_EQ(openai.body, R"({"error":{"message":"invalid JSON body: syntax error",)"
                         R"("type":"invalid_request_error","param":null,"code":null}})");
  ClientResponse anthropic = Post(*server, "/v1/messages", "{nope");
  EXPECT_EQ(anthropic.status, 400);
  EXPECT_EQ(anthropic.body, R"({"type":"error","error":{"type":"invalid_request_error",)"
                            R"("message":"invalid JSON body: syntax error"}})");
  ClientResponse ollama = Post(*server, "/api/chat", "{nope");
  EXPECT_EQ(ollama.status, 400);
  EXPECT_EQ(ollama.body, R"({"error":"invalid JSON body: syntax error"})");
}

TEST(MockLlmTest, AnswersUnknownPathsWith404) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  ClientResponse response = Get(*server, "/v1/nothing");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(ParseJson(response.body).at("error").at("type"), "not_found_error");
  EXPECT_EQ(Get(*server, "/api/nothing").body, R"({"error":"no route for GET /api/nothing"})");
  EXPECT_EQ(Get(*server, kChat).status, 404);  // Wrong method.
}

TEST(MockLlmTest, AnswersInvalidRequestsWith400NamingTheField) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  ClientResponse no_messages = Post(*server, kChat, R"({"model":"m"})");
  EXPECT_EQ(no_messages.status, 400);
  EXPECT_THAT(no_messages.body, HasSubstr("messages: expected a non-empty array"));
  ClientResponse no_max_tokens =
      Post(*server, "/v1/messages", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(no_max_tokens.status, 400);
  EXPECT_THAT(no_max_tokens.body, HasSubstr("max_tokens: required"));
  ClientResponse bad_role =
      Post(*server, kChat, R"({"messages":[{"role":"robot","content":"x"}]})");
  EXPECT_THAT(bad_role.body, HasSubstr(R"(messages[0].role: unknown role \"robot\")"));
}

TEST(MockLlmTest, AnswersBadKnobHeadersWith400NamingTheHeader) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  ClientResponse typo = Post(*server, kChat, kHiChat, {{"X-Mock-Chunkz", "3"}});
  EXPECT_EQ(typo.status, 400);
  EXPECT_THAT(typo.body, HasSubstr("unknown knob header x-mock-chunkz"));
  ClientResponse not_a_number = Post(*server, kChat, kHiChat, {{"x-mock-tokens", "many"}});
  EXPECT_EQ(not_a_number.status, 400);
  EXPECT_THAT(not_a_number.body, HasSubstr(R"(x-mock-tokens: expected an integer, got \"many\")"));
  ClientResponse out_of_range = Post(*server, kChat, kHiChat, {{"x-mock-chunks", "0"}});
  EXPECT_THAT(out_of_range.body, HasSubstr("x-mock-chunks: must be 1..10000"));
}

TEST(MockLlmTest, CreateRejectsBadOptions) {
  MockLlmOptions no_models;
  no_models.models.clear();
  EXPECT_EQ(MockLlmServer::Create(no_models).status().code(), absl::StatusCode::kInvalidArgument);
  MockLlmOptions bad_knob;
  bad_knob.knobs.chunks = 0;
  absl::Status status = MockLlmServer::Create(bad_knob).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("knobs.chunks"));
  MockLlmOptions bad_address;
  bad_address.address = "nowhere";
  EXPECT_EQ(MockLlmServer::Create(bad_address).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- Fault knobs ------------------------------------------------------------

TEST(MockLlmTest, StatusKnobAnswersApiShapedErrorWithRetryAfter) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  ClientResponse openai = Post(*server, kChat, kHiChat,
                               {{"x-mock-status", "429"},
                                {"x-mock-retry-after", "7"},
                                {"x-mock-error-code", "rate_limit_exceeded"}});
  EXPECT_EQ(openai.status, 429);
  EXPECT_EQ(openai.Header("Retry-After"), "7");
  EXPECT_EQ(openai.body,
            R"j({"error":{"message":"mock: injected HTTP 429 (x-mock-status)",)j"
            R"("type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}})");

  ClientResponse anthropic = Post(*server, "/v1/messages", "{}", {{"x-mock-status", "529"}});
  EXPECT_EQ(anthropic.status, 529);
  EXPECT_EQ(anthropic.Header("Retry-After"), "");
  EXPECT_EQ(anthropic.body, R"({"type":"error","error":{"type":"overloaded_error",)"
                            R"j("message":"mock: injected HTTP 529 (x-mock-status)"}})j");

  ClientResponse ollama = Post(*server, "/api/chat", "{}", {{"x-mock-status", "500"}});
  EXPECT_EQ(ollama.status, 500);
  EXPECT_EQ(ollama.body, R"j({"error":"mock: injected HTTP 500 (x-mock-status)"})j");
}

TEST(MockLlmTest, FailFirstFailsThenRecoversCountedPerKey) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  const Headers fail_two = {
      {"x-mock-fail-first", "2"}, {"x-mock-fail-key", "primary"}, {"x-mock-retry-after", "1"}};
  ClientResponse first = Post(*server, kChat, kHiChat, fail_two);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.Header("Retry-After"), "1");
  EXPECT_EQ(ParseJson(first.body).at("error").at("type"), "server_error");
  EXPECT_EQ(Post(*server, kChat, kHiChat, fail_two).status, 503);
  EXPECT_EQ(Post(*server, kChat, kHiChat, fail_two).status, 200);
  EXPECT_EQ(Post(*server, kChat, kHiChat, fail_two).status, 200);
  // Another key has its own count.
  EXPECT_EQ(
      Post(*server, kChat, kHiChat, {{"x-mock-fail-first", "1"}, {"x-mock-fail-key", "b"}}).status,
      503);
  EXPECT_EQ(Post(*server, kChat, kHiChat, {{"x-mock-fail-first", "1"}}).status, 503);
  EXPECT_EQ(Post(*server, kChat, kHiChat, {{"x-mock-fail-first", "1"}}).status, 200);
}

// What a client reads of a stream until it ends or is cut.
struct ReadStream {
  std::vector<std::string> chunks;  // Data of each chunk, the last one excluded.
  bool complete = false;            // The terminating chunk arrived.
};

ReadStream ReadChunkedStream(RawHttpClient& client) {
  ReadStream stream;
  for (int i = 0; i < 10'000; ++i) {  // Bounded: far more than any test sends.
    std::optional<std::string> chunk = client.ReadChunk();
    if (!chunk.has_value()) return stream;
    if (chunk->empty()) {
      stream.complete = true;
      return stream;
    }
    stream.chunks.push_back(*std::move(chunk));
  }
  return stream;
}

TEST(MockLlmTest, CutAfterEndsTheStreamWithoutItsTerminatingChunk) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  const std::string body =
      R"({"stream":true,"messages":[{"role":"user","content":"hello world"}]})";
  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(PostRequest(kChat, body, {{"x-mock-cut-after", "2"}})));
  std::optional<rawhttp::RawHead> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Transfer-Encoding"), "chunked");
  ReadStream stream = ReadChunkedStream(client);
  EXPECT_FALSE(stream.complete);
  ASSERT_EQ(stream.chunks.size(), 2u);  // The first also carries the role chunk.
  EXPECT_EQ(OpenAiStreamText(SseData(absl::StrJoin(stream.chunks, ""))),
            kHelloDeltas[0] + kHelloDeltas[1]);

  // A whole-response client sees a failure, never a short success.
  EXPECT_FALSE(HttpCall(server->port(), "POST", kChat, body, {{"x-mock-cut-after", "2"}}).ok());
}

TEST(MockLlmTest, CutAfterAllDeltasStillWithholdsTheEnd) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(PostRequest(
      "/v1/messages",
      R"({"max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hello world"}]})",
      {{"x-mock-cut-after", "99"}})));
  ASSERT_TRUE(client.ReadHead().has_value());
  ReadStream stream = ReadChunkedStream(client);
  EXPECT_FALSE(stream.complete);
  EXPECT_EQ(stream.chunks.size(), 4u);
  EXPECT_THAT(stream.chunks.back(), HasSubstr("answer to:"));
  EXPECT_THAT(absl::StrJoin(stream.chunks, ""), ::testing::Not(HasSubstr("message_stop")));
}

TEST(MockLlmTest, MalformedChunkReplacesTheNthDeltaWithInvalidJson) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  ClientResponse response = Post(
      *server, kChat, R"({"stream":true,"messages":[{"role":"user","content":"hello world"}]})",
      {{"x-mock-malformed-chunk", "2"}});
  EXPECT_EQ(response.status, 200);
  std::vector<std::string> data = SseData(response.body);
  std::vector<size_t> invalid;
  std::string text;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == "[DONE]") continue;
    boost::system::error_code ec;
    json::value chunk = json::parse(data[i], ec);
    if (ec) {
      invalid.push_back(i);
      continue;
    }
    if (const json::value* content =
            chunk.at("choices").at(0).at("delta").as_object().if_contains("content")) {
      text += content->as_string();
    }
  }
  // Event 0 is the role chunk, 1 the first delta, 2 the second.
  EXPECT_THAT(invalid, ElementsAre(2u));
  EXPECT_EQ(text, kHelloDeltas[0] + kHelloDeltas[2] + kHelloDeltas[3]);

  std::string ollama =
      Post(*server, "/api/chat", R"({"messages":[{"role":"user","content":"hello world"}]})",
           {{"x-mock-malformed-chunk", "1"}})
          .body;
  std::vector<std::string> lines = absl::StrSplit(ollama, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u);
  boost::system::error_code ec;
  json::parse(lines[0], ec);
  EXPECT_TRUE(ec);
}

TEST(MockLlmTest, HangTimesTheClientOutAndShutdownIsPrompt) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<ClientResponse> response =
      HttpCall(server->port(), "POST", kChat, kHiChat, {{"x-mock-hang", "true"}},
               /*timeout_ms=*/200);
  EXPECT_FALSE(response.ok());  // Timed out (which error depends on which timer fired first).
  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(30));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(MockLlmTest, HangIsDroppedWithA500WhenTheServerShutsDown) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(PostRequest(kChat, kHiChat, {{"x-mock-hang", "1"}})));
  ASSERT_TRUE(WaitForCalls(*server, kChat, 1));
  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(30));  // Would wait it all out for a kept hang.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  std::optional<rawhttp::RawHead> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 500);
}

// --- Prefill ----------------------------------------------------------------

TEST(MockLlmTest, PrefillGetsTheRestOfACutStream) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(
      PostRequest(kChat, R"({"stream":true,"messages":[{"role":"user","content":"hello world"}]})",
                  {{"x-mock-cut-after", "2"}})));
  ASSERT_TRUE(client.ReadHead().has_value());
  ReadStream cut = ReadChunkedStream(client);
  ASSERT_FALSE(cut.complete);
  const std::string delivered = OpenAiStreamText(SseData(absl::StrJoin(cut.chunks, "")));
  ASSERT_FALSE(delivered.empty());

  json::array messages{json::object{{"role", "user"}, {"content", "hello world"}},
                       json::object{{"role", "assistant"}, {"content", delivered}}};
  ClientResponse rest =
      Post(*server, kChat, json::serialize(json::object{{"stream", true}, {"messages", messages}}));
  EXPECT_EQ(delivered + OpenAiStreamText(SseData(rest.body)), kHelloAnswer);

  // The same through Anthropic's final assistant message, mid-token.
  json::value anthropic =
      ParseJson(Post(*server, "/v1/messages",
                     R"({"max_tokens":100,"messages":[{"role":"user","content":"hello world"},)"
                     R"({"role":"assistant","content":"Mock ans"}]})")
                    .body);
  EXPECT_EQ(anthropic.at("content").at(0).at("text"), "wer to: hello world. Mock answer to:");
  EXPECT_EQ(anthropic.at("usage").at("output_tokens"), 7);
}

TEST(MockLlmTest, PrefillThatIsNotAPrefixGetsTheWholeAnswer) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  json::value response =
      ParseJson(Post(*server, "/api/chat",
                     R"({"stream":false,"messages":[{"role":"user","content":"hello world"},)"
                     R"({"role":"assistant","content":"Something else"}]})")
                    .body);
  EXPECT_EQ(response.at("message").at("content"), kHelloAnswer);
}

TEST(MockLlmTest, RefusePrefillAnswers400) {
  MockKnobs knobs;
  knobs.refuse_prefill = true;
  auto server = StartMock(knobs);
  ASSERT_NE(server, nullptr);
  ClientResponse refused =
      Post(*server, "/v1/messages",
           R"({"max_tokens":100,"messages":[{"role":"user","content":"hello world"},)"
           R"({"role":"assistant","content":"Mock"}]})");
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.body, R"({"type":"error","error":{"type":"invalid_request_error",)"
                          R"("message":"prefill not supported"}})");
  // Without a prefill the same server answers; the header turns refusal off.
  EXPECT_EQ(Post(*server, kChat, kHiChat).status, 200);
  EXPECT_EQ(Post(*server, kChat,
                 R"({"messages":[{"role":"user","content":"hi"},)"
                 R"({"role":"assistant","content":"Mock"}]})",
                 {{"x-mock-refuse-prefill", "false"}})
                .status,
            200);
}

// --- Tool calls -------------------------------------------------------------

constexpr char kOpenAiToolRequest[] =
    R"({"tools":[{"type":"function","function":{"name":"search"}}],)"
    R"("messages":[{"role":"user","content":"please call:search cats"}]})";

TEST(MockLlmTest, AnswersOpenAiToolCallWhole) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  json::value response = ParseJson(Post(*server, kChat, kOpenAiToolRequest).body);
  const json::value& choice = response.at("choices").at(0);
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  EXPECT_TRUE(choice.at("message").at("content").is_null());
  EXPECT_EQ(choice.at("message").at("tool_calls"),
            ParseJson(R"([{"id":"call_1","type":"function",)"
                      R"("function":{"name":"search","arguments":"{\"query\":\"cats\"}"}}])"));
  // Without tools the same message gets a text answer.
  json::value plain = ParseJson(
      Post(*server, kChat, R"({"messages":[{"role":"user","content":"please call:search cats"}]})")
          .body);
  EXPECT_EQ(plain.at("choices").at(0).at("finish_reason"), "stop");
}

TEST(MockLlmTest, StreamsOpenAiToolCallArgumentsInSeveralDeltas) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  json::object request = ParseJson(kOpenAiToolRequest).as_object();
  request["stream"] = true;
  std::vector<std::string> data = SseData(Post(*server, kChat, json::serialize(request)).body);
  ASSERT_EQ(data.size(), 7u);  // Opening, 4 argument deltas, finish, [DONE].
  json::value opening = ParseJson(data[0]).at("choices").at(0).at("delta");
  EXPECT_EQ(opening.at("tool_calls").at(0).at("id"), "call_1");
  EXPECT_EQ(opening.at("tool_calls").at(0).at("function").at("name"), "search");
  std::string arguments;
  for (int i = 1; i <= 4; ++i) {
    json::value delta = ParseJson(data[i]).at("choices").at(0).at("delta");
    arguments += delta.at("tool_calls").at(0).at("function").at("arguments").as_string();
  }
  EXPECT_EQ(arguments, R"({"query":"cats"})");
  EXPECT_EQ(ParseJson(data[5]).at("choices").at(0).at("finish_reason"), "tool_calls");
}

TEST(MockLlmTest, AnswersAnthropicToolUseWholeAndStreamed) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  const std::string request = R"({"max_tokens":100,"tools":[{"name":"search","input_schema":{}}],)"
                              R"("messages":[{"role":"user","content":"call:search cats"}]})";
  json::value whole = ParseJson(Post(*server, "/v1/messages", request).body);
  EXPECT_EQ(whole.at("stop_reason"), "tool_use");
  EXPECT_EQ(whole.at("content"), ParseJson(R"([{"type":"tool_use","id":"toolu_1","name":"search",)"
                                           R"("input":{"query":"cats"}}])"));

  json::object streamed_request = ParseJson(request).as_object();
  streamed_request["stream"] = true;
  std::vector<std::string> data =
      SseData(Post(*server, "/v1/messages", json::serialize(streamed_request)).body);
  std::string partial_json;
  int deltas = 0;
  std::string stop_reason;
  for (const std::string& payload : data) {
    json::value event = ParseJson(payload);
    if (event.at("type") == "content_block_delta") {
      EXPECT_EQ(event.at("delta").at("type"), "input_json_delta");
      partial_json += event.at("delta").at("partial_json").as_string();
      ++deltas;
    } else if (event.at("type") == "message_delta") {
      stop_reason = json::value_to<std::string>(event.at("delta").at("stop_reason"));
    }
  }
  EXPECT_EQ(partial_json, R"({"query":"cats"})");
  EXPECT_EQ(deltas, 4);
  EXPECT_EQ(stop_reason, "tool_use");
}

TEST(MockLlmTest, AnswersOllamaToolCallWithArgumentsObject) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  json::value response = ParseJson(
      Post(*server, "/api/chat",
           R"({"stream":false,"tools":[{"type":"function","function":{"name":"search"}}],)"
           R"("messages":[{"role":"user","content":"call:search cats"}]})")
          .body);
  EXPECT_EQ(response.at("message").at("tool_calls"),
            ParseJson(R"([{"function":{"name":"search","arguments":{"query":"cats"}}}])"));
}

TEST(MockLlmTest, ToolResultGetsATextAnswerAboutIt) {
  MockKnobs knobs;
  knobs.tokens = 6;
  auto server = StartMock(knobs);
  ASSERT_NE(server, nullptr);
  json::value response = ParseJson(
      Post(*server, kChat,
           R"({"tools":[{"type":"function","function":{"name":"search"}}],"messages":[)"
           R"({"role":"user","content":"call:search cats"},)"
           R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)"
           R"("function":{"name":"search","arguments":"{}"}}]},)"
           R"({"role":"tool","tool_call_id":"call_1","content":"found 3 cats"}]})")
          .body);
  EXPECT_EQ(response.at("choices").at(0).at("message").at("content"),
            "Mock answer to: found 3 cats.");
  EXPECT_EQ(response.at("choices").at(0).at("finish_reason"), "stop");
}

// --- Parallel and multi-step tool calls -------------------------------------

constexpr char kOpenAiTools[] = R"("tools":[{"type":"function","function":{"name":"weather"}}])";
constexpr char kTwoCallsMessage[] = "call:weather Paris call:weather Rome";

// One streamed OpenAI tool call put back together from its deltas.
struct StreamedCall {
  std::string id;
  std::string type;
  std::string name;
  std::string arguments;
  int deltas = 0;  // Chunks that carried part of this call.
};

// The tool calls of an OpenAI chat stream by index. Fails the test when an
// index goes back to an earlier call or a call's id comes twice.
std::vector<StreamedCall> OpenAiStreamedCalls(const std::vector<std::string>& data) {
  std::vector<StreamedCall> calls;
  for (const std::string& payload : data) {
    if (payload == "[DONE]") continue;
    const json::value chunk = ParseJson(payload);
    const json::object& delta = chunk.at("choices").at(0).at("delta").as_object();
    const json::value* tool_calls = delta.if_contains("tool_calls");
    if (tool_calls == nullptr) continue;
    for (const json::value& part : tool_calls->as_array()) {
      const auto index = json::value_to<size_t>(part.at("index"));
      if (index == calls.size()) calls.emplace_back();
      if (index + 1 != calls.size()) {
        ADD_FAILURE() << "call index " << index << " after call " << calls.size() - 1;
        return calls;
      }
      StreamedCall& call = calls[index];
      if (const json::value* id = part.as_object().if_contains("id")) {
        EXPECT_TRUE(call.id.empty()) << "call " << index << " named twice";
        call.id = json::value_to<std::string>(*id);
        call.type = json::value_to<std::string>(part.at("type"));
        call.name = json::value_to<std::string>(part.at("function").at("name"));
      }
      call.arguments += part.at("function").at("arguments").as_string();
      ++call.deltas;
    }
  }
  return calls;
}

TEST(MockLlmTest, TwoMarkersGetTwoOpenAiToolCallsEachWithItsQuery) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  json::value response =
      ParseJson(Post(*server, kChat,
                     absl::StrCat("{", kOpenAiTools, R"(,"messages":[{"role":"user","content":")",
                                  kTwoCallsMessage, R"("}]})"))
                    .body);
  const json::value& choice = response.at("choices").at(0);
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  EXPECT_EQ(choice.at("message").at("tool_calls"),
            ParseJson(R"([{"id":"call_1","type":"function",)"
                      R"("function":{"name":"weather","arguments":"{\"query\":\"Paris\"}"}},)"
                      R"({"id":"call_2","type":"function",)"
                      R"("function":{"name":"weather","arguments":"{\"query\":\"Rome\"}"}}])"));
  EXPECT_EQ(response.at("usage").at("completion_tokens"), 2);  // One word per arguments JSON.
}

TEST(MockLlmTest, StreamsParallelOpenAiToolCallsOneAfterAnother) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  std::vector<std::string> data =
      SseData(Post(*server, kChat,
                   absl::StrCat("{", kOpenAiTools, R"(,"stream":true,"messages":[{"role":"user",)",
                                R"("content":")", kTwoCallsMessage, R"("}]})"),
                   {{"x-mock-chunks", "3"}})
                  .body);
  ASSERT_EQ(data.size(), 9u);  // Opening, 3 argument deltas per call, finish, [DONE].
  std::vector<StreamedCall> calls = OpenAiStreamedCalls(data);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].id, "call_1");
  EXPECT_EQ(calls[1].id, "call_2");
  for (const StreamedCall& call : calls) {
    EXPECT_EQ(call.type, "function");
    EXPECT_EQ(call.name, "weather");
  }
  EXPECT_EQ(calls[0].arguments, R"({"query":"Paris"})");
  EXPECT_EQ(calls[1].arguments, R"({"query":"Rome"})");
  EXPECT_EQ(calls[0].deltas, 4);  // The opening (arguments "") and 3 deltas.
  EXPECT_EQ(calls[1].deltas, 3);  // The first of them names the call.
  EXPECT_EQ(ParseJson(data[7]).at("choices").at(0).at("finish_reason"), "tool_calls");
}

TEST(MockLlmTest, TwoMarkersGetTwoAnthropicToolUseBlocksWholeAndStreamed) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  const std::string request =
      absl::StrCat(R"({"max_tokens":100,"tools":[{"name":"weather","input_schema":{}}],)",
                   R"("messages":[{"role":"user","content":")", kTwoCallsMessage, R"("}]})");
  json::value whole = ParseJson(Post(*server, "/v1/messages", request).body);
  EXPECT_EQ(whole.at("stop_reason"), "tool_use");
  EXPECT_EQ(whole.at("content"), ParseJson(R"([{"type":"tool_use","id":"toolu_1","name":"weather",)"
                                           R"("input":{"query":"Paris"}},)"
                                           R"({"type":"tool_use","id":"toolu_2","name":"weather",)"
                                           R"("input":{"query":"Rome"}}])"));

  json::object streamed_request = ParseJson(request).as_object();
  streamed_request["stream"] = true;
  std::vector<std::string> data =
      SseData(Post(*server, "/v1/messages", json::serialize(streamed_request)).body);
  // Blocks open and close one at a time, indexes counting up; each delta
  // belongs to the open block.
  std::vector<std::string> ids;
  std::vector<std::string> inputs;
  std::optional<int64_t> open;
  std::string stop_reason;
  for (const std::string& payload : data) {
    json::value event = ParseJson(payload);
    const json::value& type = event.at("type");
    if (type == "content_block_start") {
      EXPECT_FALSE(open.has_value());
      EXPECT_EQ(event.at("index"), ids.size());
      open = event.at("index").to_number<int64_t>();
      EXPECT_EQ(event.at("content_block").at("type"), "tool_use");
      EXPECT_EQ(event.at("content_block").at("name"), "weather");
      ids.push_back(json::value_to<std::string>(event.at("content_block").at("id")));
      inputs.emplace_back();
    } else if (type == "content_block_delta") {
      ASSERT_TRUE(open.has_value());
      EXPECT_EQ(event.at("index"), *open);
      EXPECT_EQ(event.at("delta").at("type"), "input_json_delta");
      inputs.back() += event.at("delta").at("partial_json").as_string();
    } else if (type == "content_block_stop") {
      ASSERT_TRUE(open.has_value());
      EXPECT_EQ(event.at("index"), *open);
      open.reset();
    } else if (type == "message_delta") {
      stop_reason = json::value_to<std::string>(event.at("delta").at("stop_reason"));
    }
  }
  EXPECT_FALSE(open.has_value());
  EXPECT_THAT(ids, ElementsAre("toolu_3", "toolu_4"));  // Counting on from the whole answer.
  EXPECT_THAT(inputs, ElementsAre(R"({"query":"Paris"})", R"({"query":"Rome"})"));
  EXPECT_EQ(stop_reason, "tool_use");
}

TEST(MockLlmTest, TwoMarkersGetTwoOllamaToolCalls) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  const std::string request =
      absl::StrCat(R"({"stream":false,)", kOpenAiTools,
                   R"(,"messages":[{"role":"user","content":")", kTwoCallsMessage, R"("}]})");
  const json::value expected =
      ParseJson(R"([{"function":{"name":"weather","arguments":{"query":"Paris"}}},)"
                R"({"function":{"name":"weather","arguments":{"query":"Rome"}}}])");
  json::value whole = ParseJson(Post(*server, "/api/chat", request).body);
  EXPECT_EQ(whole.at("message").at("tool_calls"), expected);

  // Streamed, both calls come whole in one line.
  json::object streamed_request = ParseJson(request).as_object();
  streamed_request["stream"] = true;
  std::vector<std::string> lines = absl::StrSplit(
      Post(*server, "/api/chat", json::serialize(streamed_request)).body, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(ParseJson(lines[0]).at("message").at("tool_calls"), expected);
  EXPECT_EQ(ParseJson(lines[1]).at("done"), true);
}

// A conversation with `tools` and the given messages (a JSON array's items).
std::string OpenAiToolConversation(absl::string_view messages) {
  return absl::StrCat(R"({"tools":[{"type":"function","function":{"name":"search"}}],)",
                      R"("messages":[)", messages, "]}");
}

// An assistant message calling "search" with id `id`.
std::string AssistantCalls(absl::string_view id) {
  return absl::StrCat(R"({"role":"assistant","content":null,"tool_calls":[{"id":")", id,
                      R"(","type":"function","function":{"name":"search","arguments":"{}"}}]})");
}

TEST(MockLlmTest, ToolResultWithAMarkerGetsAnotherToolCall) {
  MockKnobs knobs;
  knobs.tokens = 5;
  auto server = StartMock(knobs);
  ASSERT_NE(server, nullptr);
  // A scripted loop: the tool's output asks for the next call, until it
  // returns plain text.
  const std::string ask = R"({"role":"user","content":"call:search cats"})";
  json::value first = ParseJson(Post(*server, kChat, OpenAiToolConversation(ask)).body);
  EXPECT_EQ(first.at("choices").at(0).at("message").at("tool_calls").at(0).at("id"), "call_1");

  const std::string step = absl::StrCat(
      ask, ",", AssistantCalls("call_1"),
      R"(,{"role":"tool","tool_call_id":"call_1","content":"page 1 call:fetch page 2"})");
  json::value second = ParseJson(Post(*server, kChat, OpenAiToolConversation(step)).body);
  EXPECT_EQ(second.at("choices").at(0).at("finish_reason"), "tool_calls");
  EXPECT_EQ(second.at("choices").at(0).at("message").at("tool_calls"),
            ParseJson(R"([{"id":"call_2","type":"function",)"
                      R"("function":{"name":"fetch","arguments":"{\"query\":\"page 2\"}"}}])"));

  const std::string done =
      absl::StrCat(step, ",", AssistantCalls("call_2"),
                   R"(,{"role":"tool","tool_call_id":"call_2","content":"3 cats"})");
  json::value third = ParseJson(Post(*server, kChat, OpenAiToolConversation(done)).body);
  EXPECT_EQ(third.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(third.at("choices").at(0).at("message").at("content"), "Mock answer to: 3 cats.");

  // Anthropic: a user message of tool_result blocks is the tool result.
  json::value anthropic = ParseJson(
      Post(*server, "/v1/messages",
           R"({"max_tokens":100,"tools":[{"name":"search","input_schema":{}}],"messages":[)"
           R"({"role":"user","content":"call:search cats"},)"
           R"({"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"search",)"
           R"("input":{"query":"cats"}}]},)"
           R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1",)"
           R"("content":"call:fetch page 2"}]}]})")
          .body);
  EXPECT_EQ(anthropic.at("stop_reason"), "tool_use");
  EXPECT_EQ(anthropic.at("content"),
            ParseJson(R"([{"type":"tool_use","id":"toolu_3","name":"fetch",)"
                      R"("input":{"query":"page 2"}}])"));
}

TEST(MockLlmTest, MarkersInAllTrailingToolResultsCountInOrder) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  // Two parallel calls answered: the first result asks for one call, the
  // last (the subject) for two; a result between them asks for none.
  json::value response = ParseJson(
      Post(
          *server, kChat,
          OpenAiToolConversation(
              R"({"role":"user","content":"call:search a call:search b call:search c"},)"
              R"({"role":"assistant","content":null,"tool_calls":[)"
              R"({"id":"call_1","type":"function","function":{"name":"search","arguments":"{}"}},)"
              R"({"id":"call_2","type":"function","function":{"name":"search","arguments":"{}"}},)"
              R"({"id":"call_3","type":"function","function":{"name":"search","arguments":"{}"}}]},)"
              R"({"role":"tool","tool_call_id":"call_1","content":"call:fetch one"},)"
              R"({"role":"tool","tool_call_id":"call_2","content":"nothing here"},)"
              R"({"role":"tool","tool_call_id":"call_3",)"
              R"("content":"call:fetch two call:store three"})"))
          .body);
  EXPECT_EQ(response.at("choices").at(0).at("finish_reason"), "tool_calls");
  std::vector<std::string> calls;
  for (const json::value& call :
       response.at("choices").at(0).at("message").at("tool_calls").as_array()) {
    calls.push_back(absl::StrCat(json::value_to<std::string>(call.at("id")), " ",
                                 json::value_to<std::string>(call.at("function").at("name")), " ",
                                 json::value_to<std::string>(call.at("function").at("arguments"))));
  }
  EXPECT_THAT(calls,
              ElementsAre(R"(call_1 fetch {"query":"one"})", R"(call_2 fetch {"query":"two"})",
                          R"(call_3 store {"query":"three"})"));
}

TEST(MockLlmTest, ToolResultsWithoutMarkersGetATextAnswerAboutTheLast) {
  MockKnobs knobs;
  knobs.tokens = 6;
  auto server = StartMock(knobs);
  ASSERT_NE(server, nullptr);
  // A marker in a tool result before the last assistant turn is history.
  const std::string messages =
      absl::StrCat(R"({"role":"user","content":"call:search cats"},)", AssistantCalls("call_1"),
                   R"(,{"role":"tool","tool_call_id":"call_1","content":"call:search more"},)",
                   AssistantCalls("call_2"),
                   R"(,{"role":"tool","tool_call_id":"call_2","content":"found 3 cats"},)"
                   R"({"role":"tool","tool_call_id":"call_2","content":"found 4 dogs"})");
  json::value response = ParseJson(Post(*server, kChat, OpenAiToolConversation(messages)).body);
  EXPECT_EQ(response.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(response.at("choices").at(0).at("message").at("content"),
            "Mock answer to: found 4 dogs.");

  // Without tools in the request a marker in a tool result is just text.
  json::value no_tools = ParseJson(
      Post(*server, kChat,
           absl::StrCat(
               R"({"messages":[{"role":"user","content":"hi"},)", AssistantCalls("call_1"),
               R"(,{"role":"tool","tool_call_id":"call_1","content":"call:fetch more x"}]})"))
          .body);
  EXPECT_EQ(no_tools.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(no_tools.at("choices").at(0).at("message").at("content"),
            "Mock answer to: call:fetch more x.");
}

// --- Timing knobs -----------------------------------------------------------

TEST(MockLlmTest, FirstChunkIsReadableWhileTheNextIsStillDue) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->port());
  // The second delta is due in an hour: only streaming gets the first out.
  ASSERT_TRUE(
      client.Send(PostRequest(kChat, kHiChatStream, {{"x-mock-chunk-interval-ms", "3600000"}})));
  ASSERT_TRUE(client.ReadHead().has_value());
  std::optional<std::string> first = client.ReadChunk();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(OpenAiStreamText(SseData(*first)), "Mock answer ");
  // Shutdown does not wait for the pending delta; the stream is cut.
  const absl::Time start = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(ReadChunkedStream(client).complete);
}

TEST(MockLlmTest, TtftHoldsTheFirstDeltaButNotTheHeaders) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(PostRequest(kChat, kHiChatStream, {{"x-mock-ttft-ms", "3600000"}})));
  std::optional<rawhttp::RawHead> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  server.reset();
  ReadStream stream = ReadChunkedStream(client);
  EXPECT_FALSE(stream.complete);
  EXPECT_TRUE(stream.chunks.empty());
}

TEST(MockLlmTest, DelayKnobsSetLowerBoundsOnWhenBytesArrive) {
  auto server = StartMock(HelloAnswers());
  ASSERT_NE(server, nullptr);
  const absl::Duration latency = absl::Milliseconds(60);
  const absl::Duration ttft = absl::Milliseconds(40);
  const absl::Duration interval = absl::Milliseconds(30);
  RawHttpClient client(server->port());
  const absl::Time sent = absl::Now();
  ASSERT_TRUE(client.Send(PostRequest(kChat, kHiChatStream,
                                      {{"x-mock-latency-ms", "60"},
                                       {"x-mock-late-first-token-ms", "40"},
                                       {"x-mock-chunk-interval-ms", "30"}})));
  ASSERT_TRUE(client.ReadHead().has_value());
  EXPECT_GE(absl::Now() - sent, latency);
  ASSERT_TRUE(client.ReadChunk().has_value());
  EXPECT_GE(absl::Now() - sent, latency + ttft);
  ReadStream rest = ReadChunkedStream(client);
  EXPECT_TRUE(rest.complete);
  EXPECT_GE(absl::Now() - sent, latency + ttft + 3 * interval);

  // A whole answer comes when its last delta would have.
  const absl::Time asked = absl::Now();
  EXPECT_EQ(
      Post(*server, kChat, kHiChat, {{"x-mock-ttft-ms", "40"}, {"x-mock-chunk-interval-ms", "30"}})
          .status,
      200);
  EXPECT_GE(absl::Now() - asked, ttft + 3 * interval);
}

TEST(MockLlmTest, TrickleSendsTheBytesInSmallPieces) {
  auto server = StartMock(SmallAnswers());
  ASSERT_NE(server, nullptr);
  const std::string whole = Post(*server, kChat, kHiChat).body;           // mock-1
  const std::string streamed = Post(*server, kChat, kHiChatStream).body;  // mock-2

  RawHttpClient client(server->port());
  ASSERT_TRUE(client.Send(PostRequest(kChat, kHiChat, {{"x-mock-trickle-ms", "1"}})));  // mock-3
  std::optional<rawhttp::RawHead> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  ReadStream pieces = ReadChunkedStream(client);
  EXPECT_TRUE(pieces.complete);
  const size_t piece_bytes = kTricklePieceBytes;
  EXPECT_EQ(pieces.chunks.size(), (whole.size() + piece_bytes - 1) / piece_bytes);
  for (const std::string& piece : pieces.chunks) EXPECT_LE(piece.size(), piece_bytes);
  EXPECT_EQ(absl::StrReplaceAll(absl::StrJoin(pieces.chunks, ""), {{"mock-3", "mock-1"}}), whole);

  ASSERT_TRUE(client.Send(PostRequest(kChat, kHiChatStream, {{"x-mock-trickle-ms", "1"}})));
  ASSERT_TRUE(client.ReadHead().has_value());
  ReadStream stream = ReadChunkedStream(client);
  EXPECT_TRUE(stream.complete);
  for (const std::string& piece : stream.chunks) EXPECT_LE(piece.size(), piece_bytes);
  EXPECT_EQ(absl::StrReplaceAll(absl::StrJoin(stream.chunks, ""), {{"mock-4", "mock-2"}}),
            streamed);
}

// --- Counters ---------------------------------------------------------------

TEST(MockLlmTest, CountsCallsPerPath) {
  auto server = StartMock();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->calls(), 0);
  Post(*server, kChat, kHiChat);
  Post(*server, kChat, "{bad", {{"x-mock-status", "503"}});
  Get(*server, "/v1/models?limit=1");
  Get(*server, "/v1/nothing");
  EXPECT_EQ(server->calls(), 4);
  EXPECT_EQ(server->calls(kChat), 2);
  EXPECT_EQ(server->calls("/v1/models"), 1);
  EXPECT_EQ(server->calls("/v1/nothing"), 1);
  EXPECT_EQ(server->calls("/v1/messages"), 0);
}

}  // namespace
}  // namespace flowork::mockllm
