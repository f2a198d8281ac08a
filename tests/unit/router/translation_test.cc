#include "providers/translation.h"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/openai_request.h"

namespace flowork::router {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using StreamFactory = std::function<std::unique_ptr<StreamTranslator>()>;

std::string Cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (std::string_view piece : pieces) out += piece;
  return out;
}

// Feeds `input` whole to one translator and byte by byte to another, checks
// both wrote the same client stream and ended in the same state, and
// returns the stream (Feed output followed by Finish output).
std::string FeedWholeAndByteByByte(const StreamFactory& make, std::string_view input,
                                   std::unique_ptr<StreamTranslator>* whole_out = nullptr) {
  std::unique_ptr<StreamTranslator> whole = make();
  std::string whole_bytes = whole->Feed(input);
  whole_bytes += whole->Finish();

  std::unique_ptr<StreamTranslator> split = make();
  std::string split_bytes;
  for (char c : input) split_bytes += split->Feed(std::string_view(&c, 1));
  split_bytes += split->Finish();

  EXPECT_EQ(whole_bytes, split_bytes) << "whole and byte-by-byte outputs differ";
  EXPECT_EQ(whole->saw_content(), split->saw_content());
  EXPECT_EQ(whole->saw_finish(), split->saw_finish());
  EXPECT_EQ(whole->saw_end(), split->saw_end());
  EXPECT_EQ(whole->malformed_events(), split->malformed_events());
  EXPECT_EQ(whole->text(), split->text());
  EXPECT_EQ(whole->usage().prompt_tokens, split->usage().prompt_tokens);
  EXPECT_EQ(whole->usage().completion_tokens, split->usage().completion_tokens);
  EXPECT_EQ(whole->usage().cached_prompt_tokens, split->usage().cached_prompt_tokens);
  if (whole_out != nullptr) *whole_out = std::move(whole);
  return whole_bytes;
}

// ---- Upstream stream fixtures, shaped as flowork-mockllm writes them --------

std::string OpenAiChunk(std::string_view delta, std::string_view finish_reason = "null") {
  return Cat({R"(data: {"id":"mock-1","object":"chat.completion.chunk","created":1700000000,)",
              R"("model":"m","choices":[{"index":0,"delta":)", delta, R"(,"finish_reason":)",
              finish_reason, "}]}\n\n"});
}

std::string OpenAiUsageChunk(std::string_view usage) {
  return Cat({R"(data: {"id":"mock-1","object":"chat.completion.chunk","created":1700000000,)",
              R"("model":"m","choices":[],"usage":)", usage, "}\n\n"});
}

constexpr std::string_view kOpenAiDone = "data: [DONE]\n\n";
constexpr std::string_view kOpenAiMalformed = "data: {\"choices\":[{\"delta\":{\"content\":\n\n";

std::string AnthropicEvent(std::string_view name, std::string_view data) {
  return Cat({"event: ", name, "\ndata: ", data, "\n\n"});
}

constexpr std::string_view kAnthropicMalformed =
    "event: content_block_delta\ndata: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\n\n";

std::string AnthropicMessageStart(std::string_view usage) {
  return AnthropicEvent(
      "message_start",
      Cat({R"({"type":"message_start","message":{"id":"msg_1","type":"message",)",
           R"("role":"assistant","content":[],"model":"claude","stop_reason":null,)",
           R"("stop_sequence":null,"usage":)", usage, "}}"}));
}

std::string AnthropicTextDelta(int index, std::string_view text) {
  return AnthropicEvent("content_block_delta",
                        Cat({R"({"type":"content_block_delta","index":)", std::to_string(index),
                             R"(,"delta":{"type":"text_delta","text":")", text, R"("}})"}));
}

std::string AnthropicJsonDelta(int index, std::string_view partial_json) {
  return AnthropicEvent(
      "content_block_delta",
      Cat({R"({"type":"content_block_delta","index":)", std::to_string(index),
           R"(,"delta":{"type":"input_json_delta","partial_json":")", partial_json, R"("}})"}));
}

std::string AnthropicBlockStop(int index) {
  return AnthropicEvent("content_block_stop", Cat({R"({"type":"content_block_stop","index":)",
                                                   std::to_string(index), "}"}));
}

std::string AnthropicMessageDelta(std::string_view stop_reason, int output_tokens) {
  return AnthropicEvent("message_delta",
                        Cat({R"({"type":"message_delta","delta":{"stop_reason":")", stop_reason,
                             R"(","stop_sequence":null},"usage":{"output_tokens":)",
                             std::to_string(output_tokens), "}}"}));
}

const std::string kAnthropicMessageStop =
    AnthropicEvent("message_stop", R"({"type":"message_stop"})");

// ---- Expected client streams ------------------------------------------------

// An OpenAI chunk as the translators write it for model "front".
std::string FrontChunk(std::string_view id, std::string_view delta,
                       std::string_view finish_reason = "null", std::string_view created = "0") {
  return Cat({R"(data: {"id":")", id, R"(","object":"chat.completion.chunk","created":)", created,
              R"(,"model":"front","choices":[{"index":0,"delta":)", delta, R"(,"finish_reason":)",
              finish_reason, "}]}\n\n"});
}

std::string FrontUsageChunk(std::string_view id, std::string_view usage,
                            std::string_view created = "0") {
  return Cat({R"(data: {"id":")", id, R"(","object":"chat.completion.chunk","created":)", created,
              R"(,"model":"front","choices":[],"usage":)", usage, "}\n\n"});
}

// ============================================================================
// Requests
// ============================================================================

constexpr std::string_view kOpenAiConversation = R"json({
  "model": "gpt-4o",
  "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
    {"role": "user", "content": [
      {"type": "text", "text": "What is in these pictures?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
      {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]},
    {"role": "assistant", "content": "Two cats."},
    {"role": "user", "content": "Weather in Paris and Rome?", "name": "ann"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
      {"id": "call_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":1.5}"}},
      {"id": "call_2", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
    {"role": "user", "content": "Thanks. Which is warmer?"}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}],
  "tool_choice": "required",
  "stop": "END",
  "max_tokens": 256,
  "temperature": 0,
  "top_p": 0.9,
  "stream": true,
  "stream_options": {"include_usage": true},
  "user": "u-1"
})json";

TEST(OpenAiToAnthropicRequestTest, TranslatesWholeConversation) {
  absl::StatusOr<std::string> out = OpenAiChatRequestToAnthropic(kOpenAiConversation, "claude-x");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      R"({"model":"claude-x","max_tokens":256,)"
      R"("system":"You are terse.\n\nAnswer in English.",)"
      R"("messages":[)"
      R"({"role":"user","content":[{"type":"text","text":"What is in these pictures?"},)"
      R"({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},)"
      R"({"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]},)"
      R"({"role":"assistant","content":"Two cats."},)"
      R"({"role":"user","content":"Weather in Paris and Rome?"},)"
      R"({"role":"assistant","content":[{"type":"text","text":"Checking."},)"
      R"({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris","days":1.5}},)"
      R"({"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},)"
      R"({"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"21C"}]},)"
      R"({"type":"text","text":"Thanks. Which is warmer?"}]}],)"
      R"("tools":[{"name":"get_weather","description":"Current weather",)"
      R"("input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],)"
      R"("tool_choice":{"type":"any"},"stop_sequences":["END"],"temperature":0,"top_p":0.9,)"
      R"("stream":true,"metadata":{"user_id":"u-1"}})");
}

TEST(OpenAiToAnthropicRequestTest, DefaultsMaxTokensAndKeepsPrefillLast) {
  absl::StatusOr<std::string> out =
      OpenAiChatRequestToAnthropic(R"({"model":"a","messages":[{"role":"user","content":"Say hi"},)"
                                   R"({"role":"assistant","content":"Hi"}],"temperature":1.0})",
                                   "claude-x");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"model":"claude-x","max_tokens":4096,"messages":[)"
                  R"({"role":"user","content":"Say hi"},{"role":"assistant","content":"Hi"}],)"
                  R"("temperature":1.0})");
}

TEST(OpenAiToAnthropicRequestTest, NamedToolChoiceAndSerialCalls) {
  absl::StatusOr<std::string> out = OpenAiChatRequestToAnthropic(
      R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":50,"max_tokens":9,)"
      R"("tools":[{"type":"function","function":{"name":"f"}}],)"
      R"("tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false,)"
      R"("stop":["a","b"]})",
      "c");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"model":"c","max_tokens":50,"messages":[{"role":"user","content":"x"}],)"
                  R"("tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],)"
                  R"("tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},)"
                  R"("stop_sequences":["a","b"]})");
}

TEST(OpenAiToAnthropicRequestTest, RejectsBadInputNamingTheField) {
  struct Case {
    std::string_view body;
    std::string_view error;
  };
  const Case cases[] = {
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[)"
       R"({"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]})",
       "messages[1].tool_calls[0].function.arguments: invalid JSON"},
      {R"({"messages":[{"role":"assistant","tool_calls":[)"
       R"({"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]})",
       "messages[0].tool_calls[0].function.arguments: expected a JSON object"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]})",
       "messages[0].tool_calls[0].id: expected a string"},
      {R"({"messages":[{"role":"function","content":"x"}]})",
       R"(messages[0].role: unsupported role "function")"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]})",
       "messages[0].content[0].image_url.url: expected an http(s) URL or a base64 data URL"},
      {R"({"messages":[{"role":"user","content":[{"type":"input_audio"}]}]})",
       R"(messages[0].content[0].type: unsupported content part "input_audio")"},
      {R"({"messages":[{"role":"tool","content":"x"}]})",
       "messages[0].tool_call_id: expected a string"},
      {R"({"messages":[],"stop":5})", "stop: expected a string or an array of strings"},
      {R"({"messages":[],"temperature":"hot"})", "temperature: expected a number"},
      {R"({"messages":[],"max_tokens":-1})", "max_tokens: expected a non-negative integer"},
      {R"({"messages":[],"tools":[{"type":"web_search"}]})",
       R"(tools[0].type: unsupported tool type "web_search")"},
      {R"({"messages":{}})", "messages: expected an array"},
      {R"([1,2])", "body: expected a JSON object"},
      {R"({"messages":)", "body: invalid JSON (incomplete JSON)"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> out = OpenAiChatRequestToAnthropic(c.body, "c");
    EXPECT_EQ(out.status(), absl::InvalidArgumentError(std::string(c.error))) << c.body;
  }
}

constexpr std::string_view kAnthropicConversation = R"json({
  "model": "claude-3-5-sonnet",
  "max_tokens": 512,
  "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Be kind."}],
  "messages": [
    {"role": "user", "content": [
      {"type": "text", "text": "What is this?"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
      {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "hmm", "signature": "s"},
      {"type": "text", "text": "Let me look."},
      {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat", "n": 2}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
      {"type": "text", "text": "And now?"}]},
    {"role": "assistant", "content": "It is"}
  ],
  "tools": [{"name": "lookup", "description": "Looks up", "input_schema": {"type": "object"}}],
  "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
  "stop_sequences": ["STOP"],
  "temperature": 0,
  "top_k": 5,
  "stream": true,
  "metadata": {"user_id": "u-2"}
})json";

TEST(AnthropicToOpenAiRequestTest, TranslatesWholeConversation) {
  absl::StatusOr<std::string> out = AnthropicRequestToOpenAiChat(kAnthropicConversation, "gpt-x");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      R"({"model":"gpt-x","messages":[)"
      R"({"role":"system","content":"You are terse.\n\nBe kind."},)"
      R"({"role":"user","content":[{"type":"text","text":"What is this?"},)"
      R"({"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},)"
      R"({"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]},)"
      R"({"role":"assistant","content":"Let me look.","tool_calls":[{"id":"toolu_1",)"
      R"("type":"function","function":{"name":"lookup","arguments":"{\"q\":\"cat\",\"n\":2}"}}]},)"
      R"({"role":"tool","tool_call_id":"toolu_1","content":"a cat"},)"
      R"({"role":"user","content":[{"type":"text","text":"And now?"}]},)"
      R"({"role":"assistant","content":"It is"}],)"
      R"("max_tokens":512,"stop":["STOP"],"temperature":0,"stream":true,)"
      R"("stream_options":{"include_usage":true},)"
      R"("tools":[{"type":"function","function":{"name":"lookup","description":"Looks up",)"
      R"("parameters":{"type":"object"}}}],)"
      R"("tool_choice":"required","parallel_tool_calls":false,"user":"u-2"})");
}

TEST(AnthropicToOpenAiRequestTest, RejectsBadInputNamingTheField) {
  struct Case {
    std::string_view body;
    std::string_view error;
  };
  const Case cases[] = {
      {R"({"messages":[{"role":"system","content":"x"}]})",
       R"(messages[0].role: expected "user" or "assistant")"},
      {R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"document"}]}]})",
       R"(messages[0].content[1].type: unsupported block type "document")"},
      {R"({"messages":[{"role":"user","content":[{"type":"tool_result"}]}]})",
       "messages[0].content[0].tool_use_id: expected a string"},
      {R"({"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file"}}]}]})",
       R"(messages[0].content[0].source.type: expected "base64" or "url")"},
      {R"({"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":[]}]}]})",
       "messages[0].content[0].input: expected an object"},
      {R"({"messages":[{"role":"user","content":7}]})",
       "messages[0].content: expected a string or an array of content blocks"},
      {R"({"messages":[],"system":7})", "system: expected a string or an array of text blocks"},
      {R"({"messages":[],"tool_choice":{"type":"maybe"}})",
       R"(tool_choice.type: expected "auto", "any", "tool" or "none")"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> out = AnthropicRequestToOpenAiChat(c.body, "g");
    EXPECT_EQ(out.status(), absl::InvalidArgumentError(std::string(c.error))) << c.body;
  }
}

TEST(RoundTripTest, OpenAiToAnthropicAndBackPreservesMeaning) {
  absl::StatusOr<std::string> anthropic =
      OpenAiChatRequestToAnthropic(kOpenAiConversation, "claude-x");
  ASSERT_TRUE(anthropic.ok()) << anthropic.status();
  absl::StatusOr<std::string> back = AnthropicRequestToOpenAiChat(*anthropic, "gpt-4o");
  ASSERT_TRUE(back.ok()) << back.status();
  // System and developer merge into one system message; the user's name and
  // the image detail have no Anthropic counterpart; everything else returns.
  EXPECT_EQ(*back,
            R"({"model":"gpt-4o","messages":[)"
            R"({"role":"system","content":"You are terse.\n\nAnswer in English."},)"
            R"({"role":"user","content":[{"type":"text","text":"What is in these pictures?"},)"
            R"({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},)"
            R"({"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]},)"
            R"({"role":"assistant","content":"Two cats."},)"
            R"({"role":"user","content":"Weather in Paris and Rome?"},)"
            R"({"role":"assistant","content":"Checking.","tool_calls":[)"
            R"({"id":"call_1","type":"function","function":{"name":"get_weather",)"
            R"("arguments":"{\"city\":\"Paris\",\"days\":1.5}"}},)"
            R"({"id":"call_2","type":"function","function":{"name":"get_weather",)"
            R"("arguments":"{\"city\":\"Rome\"}"}}]},)"
            R"({"role":"tool","tool_call_id":"call_1","content":"18C"},)"
            R"({"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"21C"}]},)"
            R"({"role":"user","content":[{"type":"text","text":"Thanks. Which is warmer?"}]}],)"
            R"("max_tokens":256,"stop":["END"],"temperature":0,"top_p":0.9,"stream":true,)"
            R"("stream_options":{"include_usage":true},)"
            R"("tools":[{"type":"function","function":{"name":"get_weather",)"
            R"("description":"Current weather","parameters":{"type":"object",)"
            R"("properties":{"city":{"type":"string"}},"required":["city"]}}}],)"
            R"("tool_choice":"required","user":"u-1"})");
}

TEST(OllamaRequestTest, TranslatesMessagesToolsAndOptions) {
  absl::StatusOr<std::string> out = OpenAiChatRequestToOllama(
      R"json({"model":"gpt","messages":[
        {"role":"developer","content":"Be brief."},
        {"role":"user","content":[{"type":"text","text":"Look"},
          {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function",
          "function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},
        {"role":"tool","tool_call_id":"call_9","content":"found"}],
      "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}],
      "temperature":0,"top_p":0.5,"max_tokens":64,"stop":"END","seed":7,
      "response_format":{"type":"json_object"}})json",
      "llama3");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      R"({"model":"llama3","messages":[{"role":"system","content":"Be brief."},)"
      R"({"role":"user","content":"Look","images":["AAAA"]},)"
      R"({"role":"assistant","content":"","tool_calls":[{"function":{"name":"lookup",)"
      R"("arguments":{"q":"x"}}}]},)"
      R"({"role":"tool","content":"found","tool_name":"lookup"}],)"
      R"("tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}],)"
      R"("stream":false,"format":"json",)"
      R"("options":{"temperature":0,"top_p":0.5,"num_predict":64,"stop":["END"],"seed":7}})");
}

TEST(OllamaRequestTest, AlwaysWritesStream) {
  absl::StatusOr<std::string> out = OpenAiChatRequestToOllama(
      R"({"messages":[{"role":"user","content":"hi"}],"stream":true})", "m");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})");
}

TEST(OllamaRequestTest, RejectsBadInputNamingTheField) {
  EXPECT_EQ(OpenAiChatRequestToOllama(
                R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},)"
                R"({"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]})",
                "m")
                .status(),
            absl::InvalidArgumentError(
                "messages[0].content[1].image_url.url: Ollama accepts only base64 data URLs"));
  EXPECT_EQ(
      OpenAiChatRequestToOllama(
          R"({"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":)"
          R"({"name":"f","arguments":"nope"}}]}]})",
          "m")
          .status(),
      absl::InvalidArgumentError("messages[0].tool_calls[0].function.arguments: invalid JSON"));
  EXPECT_EQ(
      OpenAiChatRequestToOllama(R"({"messages":[{"role":"critic","content":"a"}]})", "m").status(),
      absl::InvalidArgumentError(R"(messages[0].role: unsupported role "critic")"));
}

// ============================================================================
// Responses
// ============================================================================

TEST(AnthropicResponseTest, ToolUseBecomesOpenAiToolCalls) {
  absl::StatusOr<std::string> out = AnthropicResponseToOpenAiChat(
      R"json({"id":"msg_1","type":"message","role":"assistant","model":"claude",
        "content":[{"type":"text","text":"Let me check."},
                   {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":30,
                 "cache_creation_input_tokens":5}})json",
      "front");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            R"({"id":"msg_1","object":"chat.completion","created":0,"model":"front",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.",)"
            R"("tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather",)"
            R"("arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],)"
            R"("usage":{"prompt_tokens":135,"completion_tokens":20,"total_tokens":155,)"
            R"("prompt_tokens_details":{"cached_tokens":30}}})");
}

TEST(AnthropicResponseTest, MapsStopReasons) {
  const std::pair<std::string_view, std::string_view> cases[] = {{"end_turn", "stop"},
                                                                 {"stop_sequence", "stop"},
                                                                 {"max_tokens", "length"},
                                                                 {"tool_use", "tool_calls"}};
  for (const auto& [stop_reason, finish_reason] : cases) {
    absl::StatusOr<std::string> out = AnthropicResponseToOpenAiChat(
        Cat({R"({"id":"m","content":[{"type":"text","text":"Hi"}],"stop_reason":")", stop_reason,
             R"(","usage":{"input_tokens":3,"output_tokens":1}})"}),
        "front");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, Cat({R"({"id":"m","object":"chat.completion","created":0,"model":"front",)",
                         R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},)",
                         R"("finish_reason":")", finish_reason, R"("}],)",
                         R"("usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,)",
                         R"("prompt_tokens_details":{"cached_tokens":0}}})"}));
  }
}

TEST(AnthropicResponseTest, RejectsBodyWithoutContent) {
  EXPECT_EQ(AnthropicResponseToOpenAiChat(R"({"type":"message"})", "f").status(),
            absl::InvalidArgumentError("content: expected an array"));
  EXPECT_EQ(AnthropicResponseToOpenAiChat(R"({"content":[{"type":"tool_use","name":"f"}]})", "f")
                .status(),
            absl::InvalidArgumentError("content[0].id: expected a string"));
}

TEST(OpenAiResponseTest, ToolCallsBecomeAnthropicToolUse) {
  absl::StatusOr<std::string> out = OpenAiChatResponseToAnthropic(
      R"json({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt",
        "choices":[{"index":0,"message":{"role":"assistant","content":"On it.",
          "tool_calls":[{"id":"call_1","type":"function",
            "function":{"name":"get_weather","arguments":"{\"city\":\"Rome\",\"t\":0.25}"}}]},
          "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112,
                 "prompt_tokens_details":{"cached_tokens":40}}})json",
      "claude-front");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            R"({"id":"chatcmpl-1","type":"message","role":"assistant","model":"claude-front",)"
            R"("content":[{"type":"text","text":"On it."},{"type":"tool_use","id":"call_1",)"
            R"("name":"get_weather","input":{"city":"Rome","t":0.25}}],)"
            R"("stop_reason":"tool_use","stop_sequence":null,)"
            R"("usage":{"input_tokens":60,"output_tokens":12,"cache_creation_input_tokens":0,)"
            R"("cache_read_input_tokens":40}})");
}

TEST(OpenAiResponseTest, MapsFinishReasons) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"stop", "end_turn"}, {"length", "max_tokens"}, {"tool_calls", "tool_use"}};
  for (const auto& [finish_reason, stop_reason] : cases) {
    absl::StatusOr<std::string> out = OpenAiChatResponseToAnthropic(
        Cat({R"({"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},)",
             R"("finish_reason":")", finish_reason, R"("}]})"}),
        "cf");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_THAT(*out, HasSubstr(Cat({R"("stop_reason":")", stop_reason, R"(")"})));
  }
}

TEST(OpenAiResponseTest, RejectsBadInputNamingTheField) {
  EXPECT_EQ(OpenAiChatResponseToAnthropic(R"({"choices":[]})", "c").status(),
            absl::InvalidArgumentError("choices: expected a non-empty array"));
  EXPECT_EQ(
      OpenAiChatResponseToAnthropic(R"({"choices":[{"message":{"tool_calls":[{"id":"c","function":)"
                                    R"({"name":"f","arguments":"{\"a\":"}}]}}]})",
                                    "c")
          .status(),
      absl::InvalidArgumentError(
          "choices[0].message.tool_calls[0].function.arguments: invalid JSON"));
}

TEST(OllamaResponseTest, TranslatesFinalObject) {
  absl::StatusOr<std::string> out = OllamaResponseToOpenAiChat(
      R"({"model":"llama3","created_at":"2023-11-14T22:13:20Z",)"
      R"("message":{"role":"assistant","content":"Hello there"},"done_reason":"length",)"
      R"("done":true,"total_duration":0,"prompt_eval_count":7,"eval_count":2})",
      "front");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"id":"chatcmpl-flowork","object":"chat.completion","created":1700000000,)"
                  R"("model":"front","choices":[{"index":0,"message":{"role":"assistant",)"
                  R"("content":"Hello there"},"finish_reason":"length"}],)"
                  R"("usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9,)"
                  R"("prompt_tokens_details":{"cached_tokens":0}}})");
}

TEST(OllamaResponseTest, ToolCallsGetIdsAndStringArguments) {
  absl::StatusOr<std::string> out = OllamaResponseToOpenAiChat(
      R"({"model":"llama3","created_at":"bad","message":{"role":"assistant","content":"",)"
      R"("tool_calls":[{"function":{"name":"lookup","arguments":{"query":"cats"}}}]},)"
      R"("done_reason":"stop","done":true,"prompt_eval_count":3,"eval_count":4})",
      "front");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            R"({"id":"chatcmpl-flowork","object":"chat.completion","created":0,"model":"front",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":null,)"
            R"("tool_calls":[{"id":"call_0","type":"function","function":{"name":"lookup",)"
            R"("arguments":"{\"query\":\"cats\"}"}}]},"finish_reason":"tool_calls"}],)"
            R"("usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,)"
            R"("prompt_tokens_details":{"cached_tokens":0}}})");
  EXPECT_EQ(OllamaResponseToOpenAiChat(R"({"done":true})", "f").status(),
            absl::InvalidArgumentError("message: expected an object"));
}

// ============================================================================
// Errors
// ============================================================================

TEST(ErrorTranslationTest, AnthropicErrorBecomesOpenAiShape) {
  EXPECT_EQ(ErrorToOpenAi(529, R"({"type":"error","error":{"type":"overloaded_error",)"
                               R"("message":"Overloaded"}})"),
            R"({"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}})");
  EXPECT_EQ(ErrorToOpenAi(400, R"({"type":"error","error":{"type":"invalid_request_error",)"
                               R"("message":"max_tokens: too big"}})"),
            R"({"error":{"message":"max_tokens: too big","type":"invalid_request_error",)"
            R"("param":null,"code":null}})");
}

TEST(ErrorTranslationTest, OpenAiErrorKeepsCodeAndParam) {
  EXPECT_EQ(ErrorToOpenAi(400, R"({"error":{"message":"too long","type":"invalid_request_error",)"
                               R"("param":"messages","code":"context_length_exceeded"}})"),
            R"({"error":{"message":"too long","type":"invalid_request_error",)"
            R"("param":"messages","code":"context_length_exceeded"}})");
}

TEST(ErrorTranslationTest, OpenAiErrorBecomesAnthropicShape) {
  EXPECT_EQ(
      ErrorToAnthropic(429, R"({"error":{"message":"Rate limit reached","type":"requests",)"
                            R"("code":"rate_limit_exceeded"}})"),
      R"({"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached"}})");
  EXPECT_EQ(ErrorToAnthropic(401, R"({"error":{"message":"bad key",)"
                                  R"("type":"authentication_error"}})"),
            R"({"type":"error","error":{"type":"authentication_error","message":"bad key"}})");
}

TEST(ErrorTranslationTest, OllamaTextAndEmptyBodies) {
  EXPECT_EQ(ErrorToOpenAi(404, R"({"error":"model \"x\" not found"})"),
            R"({"error":{"message":"model \"x\" not found","type":"not_found_error",)"
            R"("param":null,"code":null}})");
  EXPECT_EQ(
      ErrorToAnthropic(404, R"({"error":"model \"x\" not found"})"),
      R"({"type":"error","error":{"type":"not_found_error","message":"model \"x\" not found"}})");
  EXPECT_EQ(
      ErrorToOpenAi(502, "  Bad Gateway\n"),
      R"({"error":{"message":"Bad Gateway","type":"server_error","param":null,"code":null}})");
  EXPECT_EQ(
      ErrorToAnthropic(503, ""),
      R"({"type":"error","error":{"type":"api_error","message":"upstream answered HTTP 503"}})");
  EXPECT_EQ(ErrorToAnthropic(413, R"({"detail":"too large"})"),
            R"({"type":"error","error":{"type":"request_too_large","message":"too large"}})");
}

// ============================================================================
// OpenAI stream inspector
// ============================================================================

const std::string kOpenAiUsage = R"({"prompt_tokens":50,"completion_tokens":2,"total_tokens":52,)"
                                 R"("prompt_tokens_details":{"cached_tokens":20}})";

std::string OpenAiTextStream() {
  return Cat({OpenAiChunk(R"({"role":"assistant","content":""})"),
              OpenAiChunk(R"({"content":"Hel"})"), OpenAiChunk(R"({"content":"lo"})"),
              OpenAiChunk("{}", R"("stop")"), OpenAiUsageChunk(kOpenAiUsage), kOpenAiDone});
}

TEST(OpenAiStreamInspectorTest, ForwardsEveryByteWhenUsageIsForwarded) {
  std::unique_ptr<StreamTranslator> inspector;
  const std::string input = OpenAiTextStream();
  EXPECT_EQ(
      FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(true); }, input, &inspector),
      input);
  EXPECT_TRUE(inspector->saw_content());
  EXPECT_TRUE(inspector->saw_finish());
  EXPECT_TRUE(inspector->saw_end());
  EXPECT_EQ(inspector->text(), "Hello");
  EXPECT_EQ(inspector->malformed_events(), 0);
  EXPECT_TRUE(inspector->usage().reported);
  EXPECT_EQ(inspector->usage().prompt_tokens, 50u);
  EXPECT_EQ(inspector->usage().completion_tokens, 2u);
  EXPECT_EQ(inspector->usage().cached_prompt_tokens, 20u);
}

TEST(OpenAiStreamInspectorTest, WithholdsUsageChunkButRecordsUsage) {
  std::unique_ptr<StreamTranslator> inspector;
  const std::string out = FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); },
                                                 OpenAiTextStream(), &inspector);
  EXPECT_EQ(out, Cat({OpenAiChunk(R"({"role":"assistant","content":""})"),
                      OpenAiChunk(R"({"content":"Hel"})"), OpenAiChunk(R"({"content":"lo"})"),
                      OpenAiChunk("{}", R"("stop")"), kOpenAiDone}));
  EXPECT_EQ(inspector->usage().prompt_tokens, 50u);
  EXPECT_EQ(inspector->usage().cached_prompt_tokens, 20u);
}

TEST(OpenAiStreamInspectorTest, KeepsRealWorldFramingByteForByte) {
  // CRLF line ends, a comment, an event name, and one event's JSON spread
  // over two data lines.
  const std::string input =
      Cat({": OPENROUTER PROCESSING\r\n\r\n",
           "event: chunk\r\ndata: {\"id\":\"x\",\"choices\":[{\"index\":0,\r\n",
           "data: \"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\r\n\r\n",
           "data:{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}"
           "]}\r\n\r\n",
           "data: [DONE]\r\n\r\n"});
  std::unique_ptr<StreamTranslator> inspector;
  EXPECT_EQ(
      FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); }, input, &inspector),
      input);
  EXPECT_EQ(inspector->text(), "Hi");
  EXPECT_TRUE(inspector->saw_finish());
  EXPECT_TRUE(inspector->saw_end());
  EXPECT_FALSE(inspector->usage().reported);
}

TEST(OpenAiStreamInspectorTest, DropsAndCountsMalformedEvent) {
  std::unique_ptr<StreamTranslator> inspector;
  const std::string out =
      FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(true); },
                             Cat({OpenAiChunk(R"({"content":"a"})"), kOpenAiMalformed,
                                  OpenAiChunk(R"({"content":"b"})"), kOpenAiDone}),
                             &inspector);
  EXPECT_EQ(out, Cat({OpenAiChunk(R"({"content":"a"})"), OpenAiChunk(R"({"content":"b"})"),
                      kOpenAiDone}));
  EXPECT_EQ(inspector->malformed_events(), 1);
  EXPECT_EQ(inspector->text(), "ab");
}

TEST(OpenAiStreamInspectorTest, FinishAddsDoneOnlyAfterFinishReason) {
  std::unique_ptr<StreamTranslator> inspector;
  const std::string finished =
      Cat({OpenAiChunk(R"({"content":"a"})"), OpenAiChunk("{}", R"("stop")")});
  EXPECT_EQ(
      FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); }, finished, &inspector),
      Cat({finished, kOpenAiDone}));
  EXPECT_FALSE(inspector->saw_end());

  const std::string cut = OpenAiChunk(R"({"content":"a"})");
  EXPECT_EQ(FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); }, cut, &inspector),
            cut);
  EXPECT_TRUE(inspector->saw_content());
  EXPECT_FALSE(inspector->saw_finish());
}

TEST(OpenAiStreamInspectorTest, ToolCallDeltaCountsAsContent) {
  std::unique_ptr<StreamTranslator> inspector;
  const std::string input =
      Cat({OpenAiChunk(R"({"role":"assistant","content":null})"),
           OpenAiChunk(R"({"tool_calls":[{"index":0,"id":"call_1","type":"function",)"
                       R"("function":{"name":"f","arguments":""}}]})")});
  FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); },
                         OpenAiChunk(R"({"role":"assistant"})"), &inspector);
  EXPECT_FALSE(inspector->saw_content());
  FeedWholeAndByteByByte([] { return NewOpenAiStreamInspector(false); }, input, &inspector);
  EXPECT_TRUE(inspector->saw_content());
  EXPECT_EQ(inspector->text(), "");
}

TEST(OpenAiStreamInspectorTest, DropsOversizedEventWithoutBufferingIt) {
  std::unique_ptr<StreamTranslator> inspector = NewOpenAiStreamInspector(true);
  const std::string huge = Cat({"data: {\"pad\":\"", std::string(17 << 20, 'x'), "\"}\n\n"});
  const std::string next = OpenAiChunk(R"({"content":"a"})");
  std::string out;
  for (size_t i = 0; i < huge.size(); i += 65536) {
    out += inspector->Feed(std::string_view(huge).substr(i, 65536));
  }
  out += inspector->Feed(next);
  EXPECT_EQ(out, next);
  EXPECT_EQ(inspector->malformed_events(), 1);
  EXPECT_EQ(inspector->text(), "a");
}

// ============================================================================
// Anthropic stream -> OpenAI
// ============================================================================

StreamFactory AnthropicToOpenAi(bool forward_usage) {
  return [forward_usage] { return NewAnthropicToOpenAiStream("front", forward_usage); };
}

TEST(AnthropicStreamTest, TextStreamBecomesOpenAiChunks) {
  const std::string input = Cat(
      {AnthropicMessageStart(R"({"input_tokens":10,"output_tokens":0,)"
                             R"("cache_creation_input_tokens":0,"cache_read_input_tokens":4})"),
       AnthropicEvent(
           "content_block_start",
           R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
       AnthropicEvent("ping", R"({"type": "ping"})"), AnthropicTextDelta(0, "Hel"),
       AnthropicTextDelta(0, "lo"), AnthropicBlockStop(0), AnthropicMessageDelta("end_turn", 2),
       kAnthropicMessageStop});
  std::unique_ptr<StreamTranslator> stream;
  EXPECT_EQ(FeedWholeAndByteByByte(AnthropicToOpenAi(true), input, &stream),
            Cat({FrontChunk("msg_1", R"({"role":"assistant","content":""})"),
                 FrontChunk("msg_1", R"({"content":"Hel"})"),
                 FrontChunk("msg_1", R"({"content":"lo"})"), FrontChunk("msg_1", "{}", R"("stop")"),
                 FrontUsageChunk(
                     "msg_1", R"({"prompt_tokens":14,"completion_tokens":2,)"
                              R"("total_tokens":16,"prompt_tokens_details":{"cached_tokens":4}})"),
                 "data: [DONE]\n\n"}));
  EXPECT_TRUE(stream->saw_content());
  EXPECT_TRUE(stream->saw_finish());
  EXPECT_TRUE(stream->saw_end());
  EXPECT_EQ(stream->text(), "Hello");
  EXPECT_EQ(stream->usage().prompt_tokens, 14u);
  EXPECT_EQ(stream->usage().completion_tokens, 2u);
  EXPECT_EQ(stream->usage().cached_prompt_tokens, 4u);
}

TEST(AnthropicStreamTest, ToolUseStreamsArgumentDeltas) {
  const std::string input = Cat(
      {AnthropicMessageStart(R"({"input_tokens":10,"output_tokens":1})"),
       AnthropicEvent(
           "content_block_start",
           R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
       AnthropicTextDelta(0, "Checking."), AnthropicBlockStop(0),
       AnthropicEvent(
           "content_block_start",
           R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use",)"
           R"("id":"toolu_7","name":"get_weather","input":{}}})"),
       AnthropicJsonDelta(1, ""), AnthropicJsonDelta(1, R"({\"city\": )"),
       AnthropicJsonDelta(1, R"(\"Paris\"})"), AnthropicBlockStop(1),
       AnthropicMessageDelta("tool_use", 9), kAnthropicMessageStop});
  EXPECT_EQ(
      FeedWholeAndByteByByte(AnthropicToOpenAi(false), input),
      Cat({FrontChunk("msg_1", R"({"role":"assistant","content":""})"),
           FrontChunk("msg_1", R"({"content":"Checking."})"),
           FrontChunk("msg_1", R"({"tool_calls":[{"index":0,"id":"toolu_7","type":"function",)"
                               R"("function":{"name":"get_weather","arguments":""}}]})"),
           FrontChunk("msg_1",
                      R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]})"),
           FrontChunk("msg_1",
                      R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})"),
           FrontChunk("msg_1", "{}", R"("tool_calls")"), "data: [DONE]\n\n"}));
}

TEST(AnthropicStreamTest, HandlesCrlfCommentsAndSplitDataLines) {
  const std::string input =
      Cat({": hello\r\n\r\n",
           "event: message_start\r\ndata: "
           "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\r\n",
           "data: \"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\r\n\r\n",
           "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
           "\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\r\n\r\n",
           "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
           "\"max_tokens\"},\"usage\":{\"output_tokens\":1}}\r\n\r\n",
           "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n"});
  EXPECT_EQ(FeedWholeAndByteByByte(AnthropicToOpenAi(false), input),
            Cat({FrontChunk("msg_2", R"({"role":"assistant","content":""})"),
                 FrontChunk("msg_2", R"({"content":"ok"})"),
                 FrontChunk("msg_2", "{}", R"("length")"), "data: [DONE]\n\n"}));
}

TEST(AnthropicStreamTest, ReadsCrOnlyLineEnds) {
  const std::string input =
      Cat({"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\"}}\r\r",
           "data: {\"type\":\"content_block_delta\",\"index\":0,",
           "\"delta\":{\"type\":\"text_delta\",\"text\":\"cr\"}}\r\r",
           "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\r\r"});
  std::unique_ptr<StreamTranslator> stream;
  EXPECT_EQ(FeedWholeAndByteByByte(AnthropicToOpenAi(false), input, &stream),
            Cat({FrontChunk("msg_3", R"({"role":"assistant","content":""})"),
                 FrontChunk("msg_3", R"({"content":"cr"})"), FrontChunk("msg_3", "{}", R"("stop")"),
                 "data: [DONE]\n\n"}));
  EXPECT_FALSE(stream->saw_end());
}

TEST(AnthropicStreamTest, DropsAndCountsMalformedEvent) {
  std::unique_ptr<StreamTranslator> stream;
  const std::string out = FeedWholeAndByteByByte(
      AnthropicToOpenAi(false),
      Cat({AnthropicMessageStart(R"({"input_tokens":1})"), AnthropicTextDelta(0, "a"),
           kAnthropicMalformed, AnthropicTextDelta(0, "b")}),
      &stream);
  EXPECT_EQ(out, Cat({FrontChunk("msg_1", R"({"role":"assistant","content":""})"),
                      FrontChunk("msg_1", R"({"content":"a"})"),
                      FrontChunk("msg_1", R"({"content":"b"})")}));
  EXPECT_EQ(stream->malformed_events(), 1);
  EXPECT_FALSE(stream->saw_finish());
  EXPECT_EQ(stream->text(), "ab");
}

TEST(AnthropicStreamTest, FinishEndsStreamMissingMessageStop) {
  std::unique_ptr<StreamTranslator> stream;
  const std::string out =
      FeedWholeAndByteByByte(AnthropicToOpenAi(true),
                             Cat({AnthropicMessageStart(R"({"input_tokens":5,"output_tokens":1})"),
                                  AnthropicTextDelta(0, "hi"), AnthropicBlockStop(0),
                                  AnthropicMessageDelta("stop_sequence", 1)}),
                             &stream);
  EXPECT_EQ(
      out, Cat({FrontChunk("msg_1", R"({"role":"assistant","content":""})"),
                FrontChunk("msg_1", R"({"content":"hi"})"), FrontChunk("msg_1", "{}", R"("stop")"),
                FrontUsageChunk("msg_1",
                                R"({"prompt_tokens":5,"completion_tokens":1,)"
                                R"("total_tokens":6,"prompt_tokens_details":{"cached_tokens":0}})"),
                "data: [DONE]\n\n"}));
  EXPECT_TRUE(stream->saw_finish());
  EXPECT_FALSE(stream->saw_end());
}

TEST(AnthropicStreamTest, ErrorEventBecomesOpenAiErrorEvent) {
  EXPECT_EQ(FeedWholeAndByteByByte(
                AnthropicToOpenAi(false),
                AnthropicEvent("error", R"({"type":"error","error":{"type":"overloaded_error",)"
                                        R"("message":"Overloaded"}})")),
            "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\","
            "\"param\":null,\"code\":null}}\n\n");
}

// ============================================================================
// OpenAI stream -> Anthropic
// ============================================================================

StreamFactory OpenAiToAnthropic() {
  return [] { return NewOpenAiToAnthropicStream("claude-front"); };
}

std::string Event(std::string_view name, std::string_view data) {
  return AnthropicEvent(name, data);
}

const std::string kMessageStart =
    Event("message_start",
          R"({"type":"message_start","message":{"id":"mock-1","type":"message","role":"assistant",)"
          R"("model":"claude-front","content":[],"stop_reason":null,"stop_sequence":null,)"
          R"("usage":{"input_tokens":0,"output_tokens":0}}})");

TEST(OpenAiToAnthropicStreamTest, TextStreamBecomesAnthropicEvents) {
  std::unique_ptr<StreamTranslator> stream;
  EXPECT_EQ(
      FeedWholeAndByteByByte(OpenAiToAnthropic(), OpenAiTextStream(), &stream),
      Cat({kMessageStart,
           Event(
               "content_block_start",
               R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
           Event(
               "content_block_delta",
               R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})"),
           Event(
               "content_block_delta",
               R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}})"),
           Event("content_block_stop", R"({"type":"content_block_stop","index":0})"),
           Event(
               "message_delta",
               R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},)"
               R"("usage":{"input_tokens":30,"output_tokens":2,"cache_creation_input_tokens":0,)"
               R"("cache_read_input_tokens":20}})"),
           Event("message_stop", R"({"type":"message_stop"})")}));
  EXPECT_EQ(stream->text(), "Hello");
  EXPECT_EQ(stream->usage().prompt_tokens, 50u);
  EXPECT_EQ(stream->usage().cached_prompt_tokens, 20u);
  EXPECT_TRUE(stream->saw_end());
}

TEST(OpenAiToAnthropicStreamTest, ToolCallArgumentsStreamAsInputJsonDeltas) {
  const std::string input =
      Cat({OpenAiChunk(R"({"role":"assistant","content":"Sure."})"),
           OpenAiChunk(R"({"tool_calls":[{"index":0,"id":"call_1","type":"function",)"
                       R"("function":{"name":"get_weather","arguments":""}}]})"),
           OpenAiChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})"),
           OpenAiChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})"),
           OpenAiChunk(R"({"tool_calls":[{"index":1,"id":"call_2","type":"function",)"
                       R"("function":{"name":"get_time","arguments":"{}"}}]})"),
           OpenAiChunk("{}", R"("tool_calls")"), kOpenAiDone});
  EXPECT_EQ(
      FeedWholeAndByteByByte(OpenAiToAnthropic(), input),
      Cat({kMessageStart,
           Event(
               "content_block_start",
               R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
           Event(
               "content_block_delta",
               R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sure."}})"),
           Event("content_block_stop", R"({"type":"content_block_stop","index":0})"),
           Event("content_block_start",
                 R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use",)"
                 R"("id":"call_1","name":"get_weather","input":{}}})"),
           Event("content_block_delta",
                 R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",)"
                 R"("partial_json":"{\"city\":"}})"),
           Event("content_block_delta",
                 R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",)"
                 R"("partial_json":"\"Paris\"}"}})"),
           Event("content_block_stop", R"({"type":"content_block_stop","index":1})"),
           Event("content_block_start",
                 R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use",)"
                 R"("id":"call_2","name":"get_time","input":{}}})"),
           Event("content_block_delta",
                 R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",)"
                 R"("partial_json":"{}"}})"),
           Event("content_block_stop", R"({"type":"content_block_stop","index":2})"),
           Event(
               "message_delta",
               R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},)"
               R"("usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,)"
               R"("cache_read_input_tokens":0}})"),
           Event("message_stop", R"({"type":"message_stop"})")}));
}

TEST(OpenAiToAnthropicStreamTest, FinishAddsMissingClosingEvents) {
  std::unique_ptr<StreamTranslator> stream;
  const std::string out = FeedWholeAndByteByByte(
      OpenAiToAnthropic(),
      Cat({OpenAiChunk(R"({"content":"Hi"})"), kOpenAiMalformed, OpenAiChunk("{}", R"("length")")}),
      &stream);
  EXPECT_EQ(
      out,
      Cat({kMessageStart,
           Event(
               "content_block_start",
               R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
           Event(
               "content_block_delta",
               R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})"),
           Event("content_block_stop", R"({"type":"content_block_stop","index":0})"),
           Event(
               "message_delta",
               R"({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},)"
               R"("usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,)"
               R"("cache_read_input_tokens":0}})"),
           Event("message_stop", R"({"type":"message_stop"})")}));
  EXPECT_EQ(stream->malformed_events(), 1);
  EXPECT_TRUE(stream->saw_finish());
  EXPECT_FALSE(stream->saw_end());
}

TEST(OpenAiToAnthropicStreamTest, CutStreamIsNotFinalized) {
  std::unique_ptr<StreamTranslator> stream;
  const std::string out =
      FeedWholeAndByteByByte(OpenAiToAnthropic(), OpenAiChunk(R"({"content":"Hi"})"), &stream);
  EXPECT_THAT(out, Not(HasSubstr("message_stop")));
  EXPECT_THAT(out, Not(HasSubstr("content_block_stop")));
  EXPECT_TRUE(stream->saw_content());
  EXPECT_FALSE(stream->saw_finish());
}

// ============================================================================
// Ollama stream -> OpenAI
// ============================================================================

StreamFactory OllamaToOpenAi(bool forward_usage) {
  return [forward_usage] { return NewOllamaToOpenAiStream("front", forward_usage); };
}

std::string OllamaLine(std::string_view message, std::string_view tail = R"("done":false)") {
  return Cat({R"({"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":)", message, ",",
              tail, "}\n"});
}

const std::string kOllamaFinal = OllamaLine(
    R"({"role":"assistant","content":""})",
    R"("done_reason":"stop","done":true,"total_duration":0,"load_duration":0,)"
    R"("prompt_eval_count":7,"prompt_eval_duration":0,"eval_count":2,"eval_duration":0)");

TEST(OllamaStreamTest, TextLinesBecomeOpenAiChunks) {
  std::unique_ptr<StreamTranslator> stream;
  const std::string input =
      Cat({OllamaLine(R"({"role":"assistant","content":"Hel"})"),
           OllamaLine(R"({"role":"assistant","content":"lo"})"), kOllamaFinal});
  EXPECT_EQ(FeedWholeAndByteByByte(OllamaToOpenAi(true), input, &stream),
            Cat({FrontChunk("chatcmpl-flowork", R"({"role":"assistant","content":""})", "null",
                            "1700000000"),
                 FrontChunk("chatcmpl-flowork", R"({"content":"Hel"})", "null", "1700000000"),
                 FrontChunk("chatcmpl-flowork", R"({"content":"lo"})", "null", "1700000000"),
                 FrontChunk("chatcmpl-flowork", "{}", R"("stop")", "1700000000"),
                 FrontUsageChunk("chatcmpl-flowork",
                                 R"({"prompt_tokens":7,"completion_tokens":2,"total_tokens":9,)"
                                 R"("prompt_tokens_details":{"cached_tokens":0}})",
                                 "1700000000"),
                 "data: [DONE]\n\n"}));
  EXPECT_EQ(stream->text(), "Hello");
  EXPECT_TRUE(stream->saw_finish());
  EXPECT_TRUE(stream->saw_end());
  EXPECT_EQ(stream->usage().prompt_tokens, 7u);
  EXPECT_EQ(stream->usage().completion_tokens, 2u);
}

TEST(OllamaStreamTest, ToolCallLineBecomesToolCallChunk) {
  const std::string input =
      Cat({OllamaLine(R"({"role":"assistant","content":"","tool_calls":[{"function":)"
                      R"({"name":"lookup","arguments":{"query":"cats"}}}]})"),
           kOllamaFinal});
  EXPECT_EQ(FeedWholeAndByteByByte(OllamaToOpenAi(false), input),
            Cat({FrontChunk("chatcmpl-flowork", R"({"role":"assistant","content":""})", "null",
                            "1700000000"),
                 FrontChunk("chatcmpl-flowork",
                            R"({"tool_calls":[{"index":0,"id":"call_0","type":"function",)"
                            R"("function":{"name":"lookup","arguments":"{\"query\":\"cats\"}"}}]})",
                            "null", "1700000000"),
                 FrontChunk("chatcmpl-flowork", "{}", R"("tool_calls")", "1700000000"),
                 "data: [DONE]\n\n"}));
}

TEST(OllamaStreamTest, DropsMalformedLineAndReadsCrlfAndUnterminatedLastLine) {
  std::unique_ptr<StreamTranslator> stream;
  std::string last = kOllamaFinal;
  last.pop_back();  // The upstream closed without the final newline.
  const std::string input = Cat({"{\"message\":{\"content\":\"a\"}}\r\n",
                                 "{\"model\":\"mock\",\"message\":{\"content\":\n", "\r\n", last});
  EXPECT_EQ(FeedWholeAndByteByByte(OllamaToOpenAi(false), input, &stream),
            Cat({FrontChunk("chatcmpl-flowork", R"({"role":"assistant","content":""})"),
                 FrontChunk("chatcmpl-flowork", R"({"content":"a"})"),
                 FrontChunk("chatcmpl-flowork", "{}", R"("stop")"), "data: [DONE]\n\n"}));
  EXPECT_EQ(stream->malformed_events(), 1);
  EXPECT_TRUE(stream->saw_end());
}

TEST(OllamaStreamTest, ErrorLineBecomesOpenAiErrorEvent) {
  EXPECT_EQ(FeedWholeAndByteByByte(OllamaToOpenAi(false), "{\"error\":\"out of memory\"}\n"),
            "data: {\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
            "\"param\":null,\"code\":null}}\n\n");
}

}  // namespace
}  // namespace flowork::router

namespace flowork::router {
namespace {

TEST(WholeResponseUsageTest, ReadsTheUsageOfEachWireFormat) {
  TokenUsage openai = WholeResponseUsage(
      UpstreamWire::kOpenAi,
      R"({"id":"x","choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 99}"}}],)"
      R"("usage": {"prompt_tokens":12,"completion_tokens":3,)"
      R"("prompt_tokens_details":{"cached_tokens":4}}})");
  EXPECT_TRUE(openai.reported);
  EXPECT_EQ(openai.prompt_tokens, 12u);
  EXPECT_EQ(openai.completion_tokens, 3u);
  EXPECT_EQ(openai.cached_prompt_tokens, 4u);

  TokenUsage anthropic = WholeResponseUsage(
      UpstreamWire::kAnthropic,
      R"({"type":"message","usage":{"input_tokens":7,"output_tokens":2,"cache_read_input_tokens":5}})");
  EXPECT_EQ(anthropic.completion_tokens, 2u);
  EXPECT_EQ(anthropic.cached_prompt_tokens, 5u);

  TokenUsage ollama = WholeResponseUsage(UpstreamWire::kOllama,
                                         R"({"done":true,"prompt_eval_count":9,"eval_count":4})");
  EXPECT_EQ(ollama.prompt_tokens, 9u);
  EXPECT_EQ(ollama.completion_tokens, 4u);

  EXPECT_FALSE(WholeResponseUsage(UpstreamWire::kOpenAi, R"({"choices":[]})").reported);
  EXPECT_FALSE(WholeResponseUsage(UpstreamWire::kOpenAi, "not json \"usage\": {").reported);
}

// Only whole non-negative numbers count; the last of duplicate keys wins; a
// number nested in another field's value is not that field's.
TEST(WholeResponseUsageTest, CountsOnlyTheUsageFieldsOwnWholeNumbers) {
  TokenUsage openai = WholeResponseUsage(
      UpstreamWire::kOpenAi,
      R"({"usage":{"prompt_tokens":"12","completion_tokens":3.0,"prompt_tokens":7,)"
      R"("extra":{"completion_tokens":99},"list":[{"prompt_tokens":98}, 97],)"
      R"("prompt_tokens_details":{"cached_tokens":-1},"total_tokens":10}})");
  EXPECT_TRUE(openai.reported);
  EXPECT_EQ(openai.prompt_tokens, 7u);
  EXPECT_EQ(openai.completion_tokens, 3u);
  EXPECT_EQ(openai.cached_prompt_tokens, 0u);

  TokenUsage overwritten =
      WholeResponseUsage(UpstreamWire::kOpenAi,
                         R"({"usage":{"prompt_tokens":5,"prompt_tokens":"five",)"
                         R"("completion_tokens":[2],"prompt_tokens_details":{"cached_tokens":2},)"
                         R"("prompt_tokens_details":{}}})");
  EXPECT_TRUE(overwritten.reported);
  EXPECT_EQ(overwritten.prompt_tokens, 0u);
  EXPECT_EQ(overwritten.completion_tokens, 0u);
  EXPECT_EQ(overwritten.cached_prompt_tokens, 0u);
  EXPECT_EQ(WholeResponseUsage(UpstreamWire::kOpenAi,
                               R"({"usage":{"prompt_tokens_details":{"cached_tokens":4},)"
                               R"("prompt_tokens_details":null}})")
                .cached_prompt_tokens,
            0u);

  TokenUsage escaped = WholeResponseUsage(
      UpstreamWire::kOpenAi,
      R"({"usage":{"prompt\u005ftokens":5,"a_key_longer_than_any_counted_one_completion_tokens":9}})");
  EXPECT_EQ(escaped.prompt_tokens, 5u);
  EXPECT_EQ(escaped.completion_tokens, 0u);

  TokenUsage anthropic = WholeResponseUsage(
      UpstreamWire::kAnthropic,
      R"({"usage":{"input_tokens":3,"cache_creation_input_tokens":2,"cache_read_input_tokens":1,)"
      R"("output_tokens":1e1}})");
  EXPECT_EQ(anthropic.prompt_tokens, 6u);
  EXPECT_EQ(anthropic.cached_prompt_tokens, 1u);
  EXPECT_EQ(anthropic.completion_tokens, 10u);
}

// The flat shape most servers send: nulls, duplicates, twenty digits, and
// text that is not JSON.
TEST(WholeResponseUsageTest, ReadsTheFlatShapeMostServersSend) {
  auto usage = [](std::string_view object) {
    const std::string body = R"({"id":"x","usage":)" + std::string(object) + "}";
    return WholeResponseUsage(UpstreamWire::kOpenAi, body);
  };
  TokenUsage vllm = usage(R"( { "prompt_tokens" : 12 ,"total_tokens":15,)"
                          R"("completion_tokens":3,"prompt_tokens_details":null} )");
  EXPECT_TRUE(vllm.reported);
  EXPECT_EQ(vllm.prompt_tokens, 12u);
  EXPECT_EQ(vllm.completion_tokens, 3u);
  EXPECT_EQ(vllm.cached_prompt_tokens, 0u);

  // The last of duplicate keys wins, a null included.
  TokenUsage duplicates = usage(
      R"({"prompt_tokens":5,"prompt_tokens":null,"completion_tokens":0,"completion_tokens":4})");
  EXPECT_EQ(duplicates.prompt_tokens, 0u);
  EXPECT_EQ(duplicates.completion_tokens, 4u);

  TokenUsage empty = usage("{}");
  EXPECT_TRUE(empty.reported);
  EXPECT_EQ(empty.prompt_tokens, 0u);

  // Twenty digits: the largest count there is, and one past it (a double
  // to the parser, too large to count).
  EXPECT_EQ(usage(R"({"prompt_tokens":18446744073709551615,"completion_tokens":1})").prompt_tokens,
            UINT64_MAX);
  TokenUsage past = usage(R"({"prompt_tokens":18446744073709551616,"completion_tokens":1})");
  EXPECT_EQ(past.prompt_tokens, 0u);
  EXPECT_EQ(past.completion_tokens, 1u);

  // Not JSON: no usage at all, as before.
  EXPECT_FALSE(usage(R"({"prompt_tokens":01})").reported);
  EXPECT_FALSE(usage(R"({"prompt_tokens":1,})").reported);
  EXPECT_FALSE(usage(R"({"prompt_tokens":1 "completion_tokens":2})").reported);
  EXPECT_FALSE(usage(R"({"prompt_tokens":-})").reported);
}

// The facts of a request, and "model" (only it) replaced byte for byte,
// wherever and however the model is written.
TEST(OpenAiRequestTest, ReadsTheFactsAndSplicesTheModelInPlace) {
  const std::string body =
      R"({ "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}],)"
      R"( "model" :  "bench" , "stream":true,"stream_options":{"include_usage":true},)"
      R"("max_tokens":8,"tools":[{"type":"function"}],"response_format":{"type":"json_object"},"temperature":0})";
  absl::StatusOr<OpenAiRequestFacts> facts = ReadOpenAiRequest(body);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->model, "bench");
  EXPECT_TRUE(facts->stream);
  EXPECT_TRUE(facts->asks_usage);
  EXPECT_TRUE(facts->has_stream_options);
  EXPECT_EQ(facts->max_tokens, 8u);
  EXPECT_TRUE(facts->has_tools);
  EXPECT_TRUE(facts->wants_json);
  EXPECT_TRUE(facts->has_images);
  std::string expected = body;
  expected.replace(expected.find("\"bench\""), 7, "\"up/stream-\\\"x\\\"\"");
  EXPECT_EQ(SpliceModel(body, *facts, R"(up/stream-"x")"), expected);

  // Escapes in the key or in the value: the same splice.
  for (const std::string& written :
       {std::string(R"("mod\u0065l":"bench")"), std::string(R"("model":"ben\u0063h")"),
        std::string(R"("model":"b\/ench\\")")}) {
    const std::string escaped = "{\"a\":[1,{\"model\":2}]," + written + ",\"z\":null}";
    absl::StatusOr<OpenAiRequestFacts> read = ReadOpenAiRequest(escaped);
    ASSERT_TRUE(read.ok()) << escaped << ": " << read.status();
    const std::string spliced = SpliceModel(escaped, *read, "m2");
    EXPECT_THAT(spliced, ::testing::HasSubstr(R"("m2")")) << escaped;
    absl::StatusOr<OpenAiRequestFacts> again = ReadOpenAiRequest(spliced);
    ASSERT_TRUE(again.ok()) << spliced;
    EXPECT_EQ(again->model, "m2") << spliced;
    EXPECT_THAT(spliced, ::testing::StartsWith(R"({"a":[1,{"model":2}],)")) << spliced;
    EXPECT_THAT(spliced, ::testing::EndsWith(R"(,"z":null})")) << spliced;
  }
  EXPECT_EQ(ReadOpenAiRequest(R"({"model":"a","model":"b"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadOpenAiRequest(R"({"model":1})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadOpenAiRequest(R"({"model":"a"} x)").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowork::router
