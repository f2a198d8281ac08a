#include "flowork/agent/token_counter.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/effect.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

v1::ChatMessage Message(std::string_view role, std::string_view content,
                        std::string_view name = "") {
  v1::ChatMessage m;
  m.set_role(std::string(role));
  m.set_content(std::string(content));
  m.set_name(std::string(name));
  return m;
}

// Reference tokenizations by cl100k_base (gpt-3.5-turbo, gpt-4): tiktoken's
// README and the OpenAI cookbook ("How to count tokens with tiktoken"), and
// the count that follows from cl100k's pre-tokenizer where every piece is a
// common token. docs/agents.md lists the same table with the estimates.
struct Reference {
  std::string_view text;
  int64_t cl100k;
  // The estimate must lie in [cl100k * low, cl100k * high].
  double low;
  double high;
};

constexpr Reference kProse[] = {
    {"Hello world", 2, 0.9, 1.25},
    {"Hello, world!", 4, 0.9, 1.25},
    {"The quick brown fox jumps over the lazy dog", 9, 0.9, 1.25},
    {"antidisestablishmentarianism", 6, 0.9, 1.25},
};

TEST(TokenCounterTest, EnglishProseIsWithinBoundsOfCl100k) {
  const TokenCounter& gpt = TokenCounterFor("gpt-4");
  for (const Reference& r : kProse) {
    const int64_t estimate = gpt.CountText(r.text);
    EXPECT_GE(estimate, r.cl100k * r.low) << r.text;
    EXPECT_LE(estimate, r.cl100k * r.high) << r.text;
  }
}

TEST(TokenCounterTest, InventedWordsAreTheWeakSpot) {
  // cl100k: t|ik|token| is| great|!  = 6; a word the vocabulary does not know
  // splits more than its length suggests.
  const int64_t estimate = TokenCounterFor("gpt-4").CountText("tiktoken is great!");
  EXPECT_GE(estimate, 6 * 0.8);
  EXPECT_LE(estimate, 6 * 1.25);
}

TEST(TokenCounterTest, NumbersCountDigitGroupsAndTheSpaceBeforeThem) {
  const TokenCounter& gpt = TokenCounterFor("gpt-4");
  EXPECT_EQ(gpt.CountText("1234567890"), 4);  // 123 456 789 0
  EXPECT_EQ(gpt.CountText("2 + 2 = 4"), 7);   // 2, " +", " ", 2, " =", " ", 4
  // SentencePiece vocabularies split every digit.
  EXPECT_GE(TokenCounterFor("llama2:7b").CountText("1234567890"), 10);
}

TEST(TokenCounterTest, CjkIsAboutOneTokenPerCharacter) {
  const int64_t estimate = TokenCounterFor("gpt-4").CountText("お誕生日おめでとう");
  EXPECT_GE(estimate, 9);  // cl100k: 9
  EXPECT_LE(estimate, 9 * 1.25);
}

TEST(TokenCounterTest, CodeIsOvercountedNotUndercounted) {
  // cl100k: def| hello|():\n|   | print|("|Hello|,| world|!")  = 10.
  const int64_t estimate =
      TokenCounterFor("gpt-4").CountText("def hello():\n    print(\"Hello, world!\")");
  EXPECT_GE(estimate, 10);
  EXPECT_LE(estimate, 10 * 1.4);
}

TEST(TokenCounterTest, ChatMatchesTheOpenAiCookbookCount) {
  // The cookbook's example conversation: 129 prompt tokens on gpt-3.5-turbo
  // and gpt-4 (3 per message, 1 per name, 3 for the reply primer).
  const std::vector<v1::ChatMessage> messages = {
      Message("system",
              "You are a helpful, pattern-following assistant that translates corporate jargon "
              "into plain English."),
      Message("system", "New synergies will help drive top-line growth.", "example_user"),
      Message("system", "Things working well together will increase revenue.", "example_assistant"),
      Message("system",
              "Let's circle back when we have more bandwidth to touch base on opportunities for "
              "increased leverage.",
              "example_user"),
      Message("system", "Let's talk later when we're less busy about how to do better.",
              "example_assistant"),
      Message("user",
              "This late pivot means we don't have time to boil the ocean for the client "
              "deliverable."),
  };
  const int64_t estimate = TokenCounterFor("gpt-3.5-turbo").CountMessages(messages);
  EXPECT_GE(estimate, 129);
  EXPECT_LE(estimate, 129 * 1.2);
}

TEST(TokenCounterTest, EmptyTextIsFreeAndAMessageCostsItsOverhead) {
  const TokenCounter& gpt = TokenCounterFor("gpt-4o");
  EXPECT_EQ(gpt.CountText(""), 0);
  EXPECT_EQ(gpt.RequestOverhead(), 3);
  // 3 per message + 1 for the role + 2 for "Hello world" + 3 for the reply.
  EXPECT_EQ(gpt.CountMessages({Message("user", "Hello world")}), 9);
}

TEST(TokenCounterTest, ToolCallsCountNameArgumentsAndOverhead) {
  const TokenCounter& gpt = TokenCounterFor("gpt-4o");
  v1::ChatMessage call = Message("assistant", "");
  v1::ToolCall* tool = call.add_tool_calls();
  tool->set_id("call_1");
  tool->set_name("get_weather");
  (*tool->mutable_arguments()->mutable_struct_value()->mutable_fields())["city"].set_string_value(
      "Berlin");
  const int64_t bare = gpt.CountMessage(Message("assistant", ""));
  EXPECT_GE(gpt.CountMessage(call), bare + 8 + 2 + 4);  // overhead, name, {"city":"Berlin"}

  v1::ChatMessage big = call;
  (*big.mutable_tool_calls(0)
        ->mutable_arguments()
        ->mutable_struct_value()
        ->mutable_fields())["text"]
      .set_string_value(std::string(4000, 'a') + " end");
  EXPECT_GT(gpt.CountMessage(big), gpt.CountMessage(call) + 400);
}

TEST(TokenCounterTest, JoiningAtWhitespaceNeverCostsMoreThanTheParts) {
  const std::vector<std::string> parts = {
      "Hello world",         "2024 was a year", "x = f(y) + 3;",         "お誕生日",
      "Привет мир",          "done.",           "## Heading\nbody text", "- 42 items",
      "emoji 🤚🏾 here", "tiktoken",
  };
  for (ModelFamily family :
       {ModelFamily::kGpt, ModelFamily::kClaude, ModelFamily::kLlama, ModelFamily::kMistral,
        ModelFamily::kQwen, ModelFamily::kGemma, ModelFamily::kDefault}) {
    const TokenCounter& counter = TokenCounterFor(family);
    for (const std::string& a : parts) {
      for (const std::string& b : parts) {
        for (std::string_view separator : {"\n\n", "\n", " "}) {
          EXPECT_LE(counter.CountText(a + std::string(separator) + b),
                    counter.CountText(a) + counter.CountText(separator) + counter.CountText(b))
              << counter.name() << ": \"" << a << "\" + \"" << b << "\"";
        }
      }
    }
  }
}

TEST(TokenCounterTest, EveryFamilyEstimatesAtLeastTheGptCountOnEnglish) {
  const std::string text =
      "The agent keeps the system prompt, its pinned memory and the newest turns, and elides "
      "old tool results before it drops anything. Version 2.4 shipped on 2024-05-01.";
  const int64_t gpt = TokenCounterFor(ModelFamily::kGpt).CountText(text);
  for (ModelFamily family : {ModelFamily::kClaude, ModelFamily::kLlama, ModelFamily::kMistral,
                             ModelFamily::kQwen, ModelFamily::kGemma, ModelFamily::kDefault}) {
    EXPECT_GE(TokenCounterFor(family).CountText(text), gpt) << TokenCounterFor(family).name();
  }
  EXPECT_GE(TokenCounterFor(ModelFamily::kDefault).CountText(text),
            TokenCounterFor(ModelFamily::kClaude).CountText(text));
}

TEST(TokenCounterTest, ModelNamesMapToTheirFamilies) {
  EXPECT_EQ(ModelFamilyOf("gpt-4o-mini"), ModelFamily::kGpt);
  EXPECT_EQ(ModelFamilyOf("openai/GPT-4.1"), ModelFamily::kGpt);
  EXPECT_EQ(ModelFamilyOf("o1"), ModelFamily::kGpt);
  EXPECT_EQ(ModelFamilyOf("o3-mini"), ModelFamily::kGpt);
  EXPECT_EQ(ModelFamilyOf("openai/o4-mini"), ModelFamily::kGpt);
  EXPECT_EQ(ModelFamilyOf("claude-3-5-sonnet-20241022"), ModelFamily::kClaude);
  EXPECT_EQ(ModelFamilyOf("anthropic.claude-3-haiku"), ModelFamily::kClaude);
  EXPECT_EQ(ModelFamilyOf("llama3.1:8b"), ModelFamily::kLlama);
  EXPECT_EQ(ModelFamilyOf("meta-llama/Llama-3.3-70B-Instruct"), ModelFamily::kLlama);
  EXPECT_EQ(ModelFamilyOf("codellama:13b"), ModelFamily::kLlama);
  EXPECT_EQ(ModelFamilyOf("mistral-large-latest"), ModelFamily::kMistral);
  EXPECT_EQ(ModelFamilyOf("dolphin-mixtral:8x7b"), ModelFamily::kMistral);
  EXPECT_EQ(ModelFamilyOf("qwen2.5-coder:32b"), ModelFamily::kQwen);
  EXPECT_EQ(ModelFamilyOf("gemma2:9b"), ModelFamily::kGemma);
  EXPECT_EQ(ModelFamilyOf("gemini-1.5-pro"), ModelFamily::kGemma);
  EXPECT_EQ(ModelFamilyOf("phi3:mini"), ModelFamily::kDefault);
  EXPECT_EQ(ModelFamilyOf("orca-mini"), ModelFamily::kDefault);
  EXPECT_EQ(ModelFamilyOf(""), ModelFamily::kDefault);
  EXPECT_EQ(TokenCounterFor("claude-3-opus").name(), "estimate/claude");
  EXPECT_EQ(TokenCounterFor("unknown-model").name(), "estimate/default");
}

TEST(TokenCounterTest, InvalidUtf8IsCountedNotRejected) {
  const TokenCounter& gpt = TokenCounterFor("gpt-4");
  EXPECT_GT(gpt.CountText("abc\xff\xfe def \xe4\xbd"), 0);
}

}  // namespace
}  // namespace flowork::agent
