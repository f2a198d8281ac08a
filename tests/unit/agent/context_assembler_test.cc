#include "flowork/agent/context_assembler.h"

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/token_counter.h"
#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/effect.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

const TokenCounter& Gpt() { return TokenCounterFor("gpt-4o"); }

v1::ChatMessage Message(std::string_view role, std::string_view content) {
  v1::ChatMessage m;
  m.set_role(std::string(role));
  m.set_content(std::string(content));
  return m;
}

// `words` distinct short words: about that many tokens.
std::string Words(int words, std::string_view tag = "w") {
  std::string text;
  for (int i = 0; i < words; ++i) {
    if (i > 0) text += " ";
    text.append(tag).append("ord");
  }
  return text;
}

void AddUser(v1::Session& session, std::string_view content) {
  *session.add_messages() = Message("user", content);
}

void AddAssistant(v1::Session& session, std::string_view content) {
  *session.add_messages() = Message("assistant", content);
}

// An assistant message calling `tool` once (id `id`), and its result.
void AddToolTurn(v1::Session& session, std::string_view id, std::string_view result) {
  v1::ChatMessage call = Message("assistant", "");
  v1::ToolCall* tool_call = call.add_tool_calls();
  tool_call->set_id(std::string(id));
  tool_call->set_name("search");
  (*tool_call->mutable_arguments()->mutable_struct_value()->mutable_fields())["q"].set_string_value(
      "flowork");
  *session.add_messages() = call;
  v1::ChatMessage answer = Message("tool", result);
  answer.set_tool_call_id(std::string(id));
  *session.add_messages() = answer;
}

std::vector<std::string> Contents(const AssembledContext& context) {
  std::vector<std::string> contents;
  for (const v1::ChatMessage& m : context.messages) contents.push_back(m.content());
  return contents;
}

// Every kept tool message follows its assistant message (with the call), and
// every kept assistant message with tool calls has all its results.
void ExpectToolPairsIntact(const AssembledContext& context) {
  std::set<std::string> open_calls;
  for (const v1::ChatMessage& m : context.messages) {
    if (m.role() == "tool") {
      EXPECT_EQ(open_calls.erase(m.tool_call_id()), 1u)
          << "tool result " << m.tool_call_id() << " without its call";
      continue;
    }
    EXPECT_THAT(open_calls, IsEmpty()) << "tool calls without their results";
    open_calls.clear();
    for (const v1::ToolCall& call : m.tool_calls()) open_calls.insert(call.id());
  }
}

TEST(ContextAssemblerTest, EverythingThatFitsIsSentInOrder) {
  v1::Session session;
  AddUser(session, "What is Flowork?");
  AddToolTurn(session, "call_1", "Flowork is an agent runtime.");
  AddAssistant(session, "An agent runtime.");
  ContextInputs inputs;
  inputs.context_window = 4096;
  inputs.system_prompt = "You are terse.";
  inputs.pinned_blocks = {{.label = "user", .content = "Name: Ada"}};
  inputs.retrieved = {{.id = "m1", .content = "Ada likes C++", .score = 0.9}};
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  ASSERT_EQ(context.messages.size(), 5u);
  EXPECT_EQ(context.messages[0].role(), "system");
  EXPECT_EQ(context.messages[0].content(),
            "You are terse.\n\n## user\nName: Ada\n\n## Relevant memories\n- Ada likes C++");
  EXPECT_EQ(context.messages[1].content(), "What is Flowork?");
  EXPECT_EQ(context.messages[3].content(), "Flowork is an agent runtime.");
  EXPECT_THAT(context.kept_messages, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(context.omissions, IsEmpty());
  EXPECT_EQ(context.dropped_messages, 0);
  EXPECT_TRUE(context.fits);
  EXPECT_EQ(context.budget_tokens, 4096 - 1024);
  EXPECT_EQ(context.total_tokens, Gpt().CountMessages(context.messages));
  EXPECT_FALSE(NeedsCompaction(context, CompactionOptions()));
}

TEST(ContextAssemblerTest, OpenAiJsonCarriesToolCallsAndResults) {
  v1::Session session;
  AddToolTurn(session, "call_1", "42");
  const std::string json = ToOpenAiMessagesJson(
      {session.messages(0), session.messages(1), Message("user", "say \"hi\"\n")});
  EXPECT_EQ(json,
            R"([{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)"
            R"("function":{"name":"search","arguments":"{\"q\":\"flowork\"}"}}]},)"
            R"({"role":"tool","content":"42","tool_call_id":"call_1"},)"
            R"({"role":"user","content":"say \"hi\"\n"}])");
}

TEST(ContextAssemblerTest, KeepsNewestTurnsAndMarksTheTruncation) {
  v1::Session session;
  for (int i = 0; i < 40; ++i) AddUser(session, absl::StrCat("message ", i, " ", Words(50)));
  ContextInputs inputs;
  inputs.context_window = 1000;
  inputs.reserved_output_tokens = 200;
  inputs.system_prompt = "You are terse.";
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  ASSERT_GE(context.messages.size(), 3u);
  EXPECT_EQ(context.messages[0].content(), "You are terse.");
  EXPECT_EQ(context.messages[1].role(), "system");
  EXPECT_EQ(
      context.messages[1].content(),
      absl::StrCat("[earlier conversation truncated: ", context.dropped_messages, " messages]"));
  EXPECT_THAT(context.messages.back().content(), StartsWith("message 39 "));
  // The kept ones are the newest, contiguous.
  ASSERT_FALSE(context.kept_messages.empty());
  EXPECT_EQ(context.kept_messages.back(), 39u);
  EXPECT_EQ(context.kept_messages.front(), 40u - context.kept_messages.size());
  EXPECT_EQ(context.dropped_messages, 40 - static_cast<int64_t>(context.kept_messages.size()));
  EXPECT_TRUE(context.fits);
  EXPECT_LE(context.total_tokens, 800);
  // The room left is less than one more message.
  EXPECT_GT(context.total_tokens + Gpt().CountMessage(session.messages(0)), 800);
  ASSERT_EQ(context.omissions.size(), 1u);
  EXPECT_EQ(context.omissions[0].kind, ContextOmission::Kind::kDropped);
  EXPECT_EQ(context.omissions[0].what,
            absl::StrCat("messages[0..", context.dropped_messages - 1, "]"));
}

TEST(ContextAssemblerTest, ElidesOldToolResultsBeforeDroppingAnyTurn) {
  v1::Session session;
  AddUser(session, "Research three things.");
  AddToolTurn(session, "call_1", Words(400, "a"));
  AddToolTurn(session, "call_2", Words(400, "b"));
  AddToolTurn(session, "call_3", Words(400, "c"));
  AddAssistant(session, "Done.");
  AddUser(session, "Thanks.");
  ContextInputs inputs;
  inputs.context_window = 1000;
  inputs.reserved_output_tokens = 200;
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  // Every message is still there; only the two oldest results became stubs.
  EXPECT_EQ(context.dropped_messages, 0);
  EXPECT_EQ(context.kept_messages.size(), 9u);
  ASSERT_EQ(context.messages.size(), 9u);
  const int64_t result_tokens = Gpt().CountText(Words(400, "a"));
  EXPECT_EQ(context.messages[2].content(),
            absl::StrCat("[tool result elided: ", result_tokens, " tokens]"));
  EXPECT_EQ(context.messages[4].content(),
            absl::StrCat("[tool result elided: ", Gpt().CountText(Words(400, "b")), " tokens]"));
  EXPECT_EQ(context.messages[6].content(), Words(400, "c"));
  EXPECT_EQ(context.messages[4].tool_call_id(), "call_2");
  ASSERT_EQ(context.omissions.size(), 2u);
  EXPECT_EQ(context.omissions[0].kind, ContextOmission::Kind::kElided);
  EXPECT_EQ(context.omissions[0].what, "messages[2]");
  EXPECT_EQ(context.omissions[1].what, "messages[4]");
  EXPECT_TRUE(context.fits);
  ExpectToolPairsIntact(context);
}

TEST(ContextAssemblerTest, NeverSeparatesToolCallsFromTheirResults) {
  v1::Session session;
  for (int i = 0; i < 12; ++i) {
    AddUser(session, absl::StrCat("step ", i, " ", Words(i * 7 % 40)));
    AddToolTurn(session, absl::StrCat("call_", i), Words(20 + i * 13 % 90, "r"));
    v1::ChatMessage two_calls = Message("assistant", "Two at once.");
    for (int k = 0; k < 2; ++k) {
      v1::ToolCall* call = two_calls.add_tool_calls();
      call->set_id(absl::StrCat("pair_", i, "_", k));
      call->set_name("fetch");
    }
    *session.add_messages() = two_calls;
    for (int k = 0; k < 2; ++k) {
      v1::ChatMessage result = Message("tool", Words(15 + k * 30, "t"));
      result.set_tool_call_id(absl::StrCat("pair_", i, "_", k));
      *session.add_messages() = result;
    }
  }
  for (int64_t window = 80; window <= 6000; window += 37) {
    ContextInputs inputs;
    inputs.context_window = window;
    inputs.reserved_output_tokens = 16;
    inputs.system_prompt = "Be useful.";
    inputs.session = &session;
    const AssembledContext context = AssembleContext(inputs, Gpt());
    SCOPED_TRACE(absl::StrCat("window ", window));
    ExpectToolPairsIntact(context);
    EXPECT_TRUE(context.fits);
    EXPECT_LE(context.total_tokens, context.budget_tokens);
    EXPECT_EQ(context.total_tokens, Gpt().CountMessages(context.messages));
  }
}

TEST(ContextAssemblerTest, ToolResultWithoutItsCallIsNeverSent) {
  v1::Session session;
  v1::ChatMessage orphan = Message("tool", "stray");
  orphan.set_tool_call_id("call_9");
  *session.add_messages() = orphan;
  AddUser(session, "Hi");
  ContextInputs inputs;
  inputs.context_window = 4096;
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  EXPECT_THAT(context.kept_messages, ElementsAre(1));
  EXPECT_EQ(context.dropped_messages, 1);
  ASSERT_EQ(context.omissions.size(), 1u);
  EXPECT_EQ(context.omissions[0].what, "messages[0]");
  EXPECT_THAT(context.omissions[0].reason, HasSubstr("without the assistant message"));
}

TEST(ContextAssemblerTest, OverlongSystemPromptIsCutAndTheConversationMarkedTruncated) {
  v1::Session session;
  AddUser(session, "Hello there");
  AddAssistant(session, "Hi");
  ContextInputs inputs;
  inputs.context_window = 300;
  inputs.reserved_output_tokens = 100;
  inputs.system_prompt = Words(1000, "rule");
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  ASSERT_EQ(context.messages.size(), 2u);
  EXPECT_THAT(context.messages[0].content(), StartsWith("ruleord ruleord"));
  EXPECT_THAT(context.messages[0].content(), HasSubstr("\n\n[system prompt truncated: "));
  EXPECT_EQ(context.messages[1].content(), "[earlier conversation truncated: 2 messages]");
  EXPECT_TRUE(context.fits);
  EXPECT_LE(context.total_tokens, 200);
  EXPECT_GT(context.total_tokens, 180);  // The cut uses the room.
  ASSERT_FALSE(context.omissions.empty());
  EXPECT_EQ(context.omissions[0].kind, ContextOmission::Kind::kTruncated);
  EXPECT_EQ(context.omissions[0].what, "system prompt");
}

TEST(ContextAssemblerTest, TinyWindowNeverFailsAndSaysItDoesNotFit) {
  v1::Session session;
  AddUser(session, "Hello");
  ContextInputs inputs;
  inputs.context_window = 10;
  inputs.reserved_output_tokens = 20;
  inputs.system_prompt = Words(100, "rule");
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  EXPECT_FALSE(context.fits);
  EXPECT_EQ(context.budget_tokens, -10);
  ASSERT_EQ(context.messages.size(), 2u);
  EXPECT_THAT(context.messages[0].content(), StartsWith("[system prompt truncated: "));
  EXPECT_EQ(context.messages[1].content(), "[earlier conversation truncated: 1 messages]");
}

TEST(ContextAssemblerTest, PinnedBlocksComeBeforeTurnsAndAreCutToTheirLimit) {
  v1::Session session;
  for (int i = 0; i < 10; ++i) AddUser(session, Words(60));
  ContextInputs inputs;
  inputs.context_window = 600;
  inputs.reserved_output_tokens = 100;
  inputs.system_prompt = "S";
  inputs.pinned_blocks = {{.label = "persona", .content = Words(100, "p")},
                          {.label = "plan", .content = Words(500, "q")}};
  inputs.max_pinned_block_tokens = 150;
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  const std::string& system = context.messages[0].content();
  EXPECT_THAT(system, HasSubstr("## persona\n" + Words(100, "p")));
  EXPECT_THAT(system, HasSubstr("## plan\nqord"));
  EXPECT_THAT(system, HasSubstr("[memory block truncated: "));
  ASSERT_FALSE(context.omissions.empty());
  EXPECT_EQ(context.omissions[0].what, "pinned block \"plan\"");
  EXPECT_EQ(context.omissions[0].kind, ContextOmission::Kind::kTruncated);
  EXPECT_LE(context.omissions[0].tokens_after, 150);
  // The blocks took their room first: only the newest turns fit after them.
  EXPECT_EQ(context.kept_messages.back(), 9u);
  EXPECT_LT(context.kept_messages.size(), 5u);
  EXPECT_TRUE(context.fits);
}

TEST(ContextAssemblerTest, RetrievedMemoriesAreDroppedLowestScoreFirst) {
  ContextInputs inputs;
  inputs.context_window = 1200;
  inputs.reserved_output_tokens = 0;
  inputs.max_retrieved_tokens = 250;
  inputs.max_retrieved = 3;
  inputs.retrieved = {{.id = "low", .content = Words(50, "l"), .score = 0.1},
                      {.id = "best", .content = Words(100, "b"), .score = 0.9},
                      {.id = "mid", .content = Words(100, "m"), .score = 0.5},
                      {.id = "tiny", .content = "x", .score = 0.3},
                      {.id = "fourth", .content = "y", .score = 0.05}};

  const AssembledContext context = AssembleContext(inputs, Gpt());

  ASSERT_EQ(context.messages.size(), 1u);
  const std::string& system = context.messages[0].content();
  EXPECT_THAT(system,
              StartsWith("## Relevant memories\n- " + Words(100, "b") + "\n- " + Words(100, "m")));
  // The top 3 by score fit their share; "low" and "fourth" are not in the top 3.
  EXPECT_THAT(system, HasSubstr("\n- x"));
  std::vector<std::string> dropped;
  for (const ContextOmission& o : context.omissions) dropped.push_back(o.what);
  EXPECT_THAT(dropped, ElementsAre("retrieved memory \"low\"", "retrieved memory \"fourth\""));
}

TEST(ContextAssemblerTest, ARetrievedMemoryThatDoesNotFitDropsAllLowerOnes) {
  ContextInputs inputs;
  inputs.context_window = 1000;
  inputs.reserved_output_tokens = 0;
  inputs.max_retrieved_tokens = 150;
  inputs.retrieved = {{.id = "a", .content = Words(100, "a"), .score = 3},
                      {.id = "b", .content = Words(100, "b"), .score = 2},
                      {.id = "c", .content = "small", .score = 1}};

  const AssembledContext context = AssembleContext(inputs, Gpt());

  EXPECT_THAT(context.messages[0].content(), HasSubstr(Words(100, "a")));
  EXPECT_THAT(context.messages[0].content(), Not(HasSubstr("small")));
  ASSERT_EQ(context.omissions.size(), 2u);
  EXPECT_EQ(context.omissions[0].what, "retrieved memory \"b\"");
  EXPECT_EQ(context.omissions[0].reason, "over max_retrieved_tokens");
  EXPECT_EQ(context.omissions[1].what, "retrieved memory \"c\"");
}

TEST(ContextAssemblerTest, OverlongNewestMessageIsCutWithAMarker) {
  v1::Session session;
  AddUser(session, "Earlier question");
  AddAssistant(session, "Earlier answer");
  AddUser(session, Words(2000, "doc"));
  ContextInputs inputs;
  inputs.context_window = 500;
  inputs.reserved_output_tokens = 100;
  inputs.system_prompt = "Summarise documents.";
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  ASSERT_FALSE(context.messages.empty());
  EXPECT_THAT(context.messages.back().content(), StartsWith("docord docord"));
  EXPECT_THAT(context.messages.back().content(), HasSubstr("[message truncated: "));
  EXPECT_EQ(context.kept_messages.back(), 2u);
  EXPECT_TRUE(context.fits);
  EXPECT_EQ(context.omissions[0].what, "messages[2]");
  EXPECT_EQ(context.omissions[0].kind, ContextOmission::Kind::kTruncated);
}

TEST(ContextAssemblerTest, SummaryStandsInForWhatItCoversAndPinnedMessagesStay) {
  v1::Session session;
  v1::ChatMessage task = Message("user", "The task: port the parser.");
  task.set_pinned(true);
  *session.add_messages() = task;
  for (int i = 1; i < 10; ++i) AddAssistant(session, absl::StrCat("old ", i));
  AddUser(session, "newest");
  session.set_summary("We ported half of it.");
  session.set_summarized_through(8);
  ContextInputs inputs;
  inputs.context_window = 4096;
  inputs.session = &session;

  const AssembledContext context = AssembleContext(inputs, Gpt());

  EXPECT_EQ(context.messages[0].content(),
            "## Summary of the earlier conversation\nWe ported half of it.");
  EXPECT_THAT(Contents(context), ElementsAre(context.messages[0].content(),
                                             "The task: port the parser.", "old 9", "newest"));
  EXPECT_FALSE(context.messages[1].pinned());
  EXPECT_THAT(context.kept_messages, ElementsAre(0, 9, 10));
  EXPECT_EQ(context.dropped_messages, 0);
  EXPECT_THAT(context.omissions, IsEmpty());
}

TEST(ContextAssemblerTest, TenThousandMessageSessionAssemblesWithinBudget) {
  v1::Session session;
  for (int i = 0; i < 10'000; ++i) {
    if (i % 10 == 3) {
      AddToolTurn(session, absl::StrCat("call_", i), Words(80, "t"));
      ++i;
    } else {
      AddUser(session, absl::StrCat("turn ", i, ": ", Words(i % 60)));
    }
  }
  ContextInputs inputs;
  inputs.context_window = 128'000;
  inputs.reserved_output_tokens = 4'000;
  inputs.system_prompt = Words(500, "s");
  inputs.pinned_blocks = {{.label = "user", .content = Words(300)}};
  inputs.session = &session;

  const auto start = std::chrono::steady_clock::now();
  const AssembledContext context = AssembleContext(inputs, Gpt());
  const auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_TRUE(context.fits);
  EXPECT_LE(context.total_tokens, 124'000);
  EXPECT_GT(context.total_tokens, 120'000);
  EXPECT_EQ(context.kept_messages.back(), 9'999u);
  EXPECT_GT(context.dropped_messages, 5'000);
  ExpectToolPairsIntact(context);
  EXPECT_TRUE(NeedsCompaction(context, CompactionOptions()));
  // Generous even for sanitizer builds; the benchmark has the real figure.
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(ContextAssemblerTest, NeedsCompactionFollowsTheDroppedTokens) {
  AssembledContext context;
  context.dropped_messages = 3;
  context.dropped_tokens = 999;
  EXPECT_FALSE(NeedsCompaction(context, {.min_dropped_tokens = 1000}));
  context.dropped_tokens = 1000;
  EXPECT_TRUE(NeedsCompaction(context, {.min_dropped_tokens = 1000}));
  context.dropped_messages = 0;
  EXPECT_FALSE(NeedsCompaction(context, {.min_dropped_tokens = 0}));
}

// 30 turns, a tool turn every fifth, about 100 tokens each.
v1::Session LongSession() {
  v1::Session session;
  for (int i = 0; i < 30; ++i) {
    if (i % 5 == 2) {
      AddToolTurn(session, absl::StrCat("call_", i), Words(100, "t"));
    } else {
      AddUser(session, absl::StrCat("turn ", i, " ", Words(100)));
    }
  }
  return session;
}

TEST(ContextAssemblerTest, CompactionPlanTakesTheOldestTurnsAndKeepsTheRecentOnes) {
  v1::Session session = LongSession();
  const CompactionOptions options = {.keep_recent_tokens = 1000, .max_prompt_tokens = 1500};

  const CompactionPlan plan = PlanCompaction(session, Gpt(), options);

  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan.first, 0u);
  EXPECT_GT(plan.through, 5u);
  EXPECT_LE(plan.prompt_tokens, 1500);
  EXPECT_EQ(plan.prompt_tokens, Gpt().CountMessages(plan.prompt));
  // A tool result is never left behind its call.
  EXPECT_NE(session.messages(static_cast<int>(plan.through) + 1).role(), "tool");
  ASSERT_EQ(plan.prompt.size(), 2u);
  EXPECT_EQ(plan.prompt[0].role(), "system");
  EXPECT_THAT(plan.prompt[1].content(), StartsWith("Summary so far:\n(none)\n\nNew messages:\n\n"));
  EXPECT_THAT(plan.prompt[1].content(), HasSubstr("user: turn 0 word"));
  EXPECT_THAT(plan.prompt[1].content(), HasSubstr("calls search [call_2] {\"q\":\"flowork\"}"));
  EXPECT_THAT(plan.prompt[1].content(), Not(HasSubstr("turn 29 ")));

  ASSERT_TRUE(ApplySummary(session, "Turns so far.", plan.through).ok());
  EXPECT_EQ(session.summary(), "Turns so far.");
  EXPECT_EQ(session.summarized_through(), plan.through);

  const CompactionPlan next = PlanCompaction(session, Gpt(), options);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.first, plan.through + 1);
  EXPECT_GT(next.through, plan.through);
  EXPECT_THAT(next.prompt[1].content(), StartsWith("Summary so far:\nTurns so far.\n\n"));
}

TEST(ContextAssemblerTest, NothingToCompactWhenEverythingIsRecent) {
  v1::Session session = LongSession();
  EXPECT_TRUE(PlanCompaction(session, Gpt(), {.keep_recent_tokens = 1'000'000}).empty());
  EXPECT_TRUE(PlanCompaction(v1::Session(), Gpt(), CompactionOptions()).empty());
  // The newest turn always stays out of the summary.
  v1::Session one;
  AddUser(one, "only");
  EXPECT_TRUE(PlanCompaction(one, Gpt(), {.keep_recent_tokens = 0}).empty());
}

TEST(ContextAssemblerTest, AssemblyAfterCompactionSendsTheSummaryInsteadOfOldTurns) {
  v1::Session session = LongSession();
  ContextInputs inputs;
  inputs.context_window = 2000;
  inputs.reserved_output_tokens = 0;
  inputs.session = &session;
  const AssembledContext before = AssembleContext(inputs, Gpt());
  ASSERT_TRUE(NeedsCompaction(before, {.min_dropped_tokens = 500}));

  const CompactionPlan plan =
      PlanCompaction(session, Gpt(), {.keep_recent_tokens = 1000, .max_prompt_tokens = 100'000});
  ASSERT_TRUE(ApplySummary(session, "Summary of turns.", plan.through).ok());
  const AssembledContext after = AssembleContext(inputs, Gpt());

  EXPECT_THAT(after.messages[0].content(), HasSubstr("Summary of turns."));
  EXPECT_EQ(after.dropped_messages, 0);
  EXPECT_EQ(after.kept_messages.front(), plan.through + 1);
  EXPECT_FALSE(NeedsCompaction(after, CompactionOptions()));
}

TEST(ContextAssemblerTest, ApplySummaryRejectsBadBoundariesAndChangesNothing) {
  v1::Session session;
  AddUser(session, "a");
  AddToolTurn(session, "call_1", "r");
  AddUser(session, "b");
  EXPECT_EQ(ApplySummary(session, "", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplySummary(session, "s", 4).code(), absl::StatusCode::kInvalidArgument);
  const absl::Status split = ApplySummary(session, "s", 1);
  EXPECT_EQ(split.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(split.message(), HasSubstr("messages[1]"));
  EXPECT_TRUE(session.summary().empty());

  ASSERT_TRUE(ApplySummary(session, "s", 2).ok());
  EXPECT_EQ(ApplySummary(session, "t", 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplySummary(session, "t", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session.summary(), "s");
  ASSERT_TRUE(ApplySummary(session, "t", 3).ok());
  EXPECT_EQ(session.summarized_through(), 3u);
}

}  // namespace
}  // namespace flowork::agent
