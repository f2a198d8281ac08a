// The private SSE assembler the HTTP and in-process LlmClients share: text
// pieces, tool calls by index, usage, errors, and a stream split anywhere.
#include "chat_stream_assembler.h"

#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent::internal {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kStream[] =
    ": keep-alive\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"look\",\"arguments\":\"\"}}"
    "]}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
    "\"id\":\"call_2\",\"function\":{\"name\":\"other\",\"arguments\":\"{}\"}}]}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\"{\\\"q\\\":\"}}]}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
    "\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3,\"total_tokens\":8}}\n\n"
    "data: [DONE]\n\n";

void ExpectAssembled(const std::string& body) {
  json::value completion = json::parse(body);
  EXPECT_EQ(completion.at("object"), "chat.completion");
  EXPECT_EQ(completion.at("id"), "c1");
  EXPECT_EQ(completion.at("model"), "m");
  const json::object& choice = completion.at("choices").at(0).as_object();
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  EXPECT_EQ(choice.at("message").at("content"), "Hello");
  const json::array& calls = choice.at("message").at("tool_calls").as_array();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].at("id"), "call_1");
  EXPECT_EQ(calls[0].at("function").at("name"), "look");
  EXPECT_EQ(calls[0].at("function").at("arguments"), R"({"q":"Paris"})");
  EXPECT_EQ(calls[1].at("id"), "call_2");
  EXPECT_EQ(calls[1].at("function").at("name"), "other");
  EXPECT_EQ(completion.at("usage").at("total_tokens"), 8);
}

TEST(ChatStreamAssemblerTest, AssemblesTextToolCallsAndUsage) {
  std::vector<std::string> pieces;
  ChatStreamAssembler assembler([&](std::string_view text) { pieces.emplace_back(text); });
  assembler.Feed(kStream);
  absl::StatusOr<std::string> body = assembler.Finish();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(pieces, ElementsAre("Hel", "lo"));
  ExpectAssembled(*body);
}

TEST(ChatStreamAssemblerTest, AStreamSplitAtEveryByteBoundaryAssemblesTheSame) {
  const std::string stream = kStream;
  for (size_t split = 0; split <= stream.size(); ++split) {
    std::string text;
    ChatStreamAssembler assembler([&](std::string_view piece) { text.append(piece); });
    assembler.Feed(std::string_view(stream).substr(0, split));
    assembler.Feed(std::string_view(stream).substr(split));
    absl::StatusOr<std::string> body = assembler.Finish();
    ASSERT_TRUE(body.ok()) << "split at " << split << ": " << body.status();
    EXPECT_EQ(text, "Hello") << "split at " << split;
    ExpectAssembled(*body);
  }
  std::string text;
  ChatStreamAssembler bytewise([&](std::string_view piece) { text.append(piece); });
  for (char c : stream) bytewise.Feed(std::string_view(&c, 1));
  absl::StatusOr<std::string> body = bytewise.Finish();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(text, "Hello");
  ExpectAssembled(*body);
}

TEST(ChatStreamAssemblerTest, AStreamWithoutFinishIsUnavailableNotATruncatedAnswer) {
  ChatStreamAssembler assembler(nullptr);
  assembler.Feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n");
  absl::StatusOr<std::string> body = assembler.Finish();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("before the answer was finished"));
}

TEST(ChatStreamAssemblerTest, ErrorEventsAndMalformedChunksAreUnavailableNamingTheCause) {
  ChatStreamAssembler openai(nullptr);
  openai.Feed(
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
      "data: {\"error\":{\"message\":\"upstream overloaded\"}}\n\n");
  EXPECT_EQ(openai.Finish().status().code(), absl::StatusCode::kUnavailable);
  ChatStreamAssembler event(nullptr);
  event.Feed("event: error\ndata: {\"error\":{\"message\":\"upstream overloaded\"}}\n\n");
  absl::StatusOr<std::string> body = event.Finish();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("upstream overloaded"));
  ChatStreamAssembler malformed(nullptr);
  malformed.Feed(
      "data: {not json\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},"
      "\"finish_reason\":\"stop\"}]}\n\n");
  body = malformed.Finish();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("not JSON"));
}

}  // namespace
}  // namespace flowork::agent::internal
