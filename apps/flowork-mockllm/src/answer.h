// What the mock makes of a chat request, whatever its wire format, and the
// deterministic answer it gives. Pure functions; thread-safe.
#ifndef FLOWORK_MOCKLLM_SRC_ANSWER_H_
#define FLOWORK_MOCKLLM_SRC_ANSWER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/mockllm/mock_llm_server.h"

namespace flowork::mockllm {

// One message's role and its text (text parts joined, tool results' text).
struct Turn {
  enum class Role { kSystem, kUser, kAssistant, kTool };
  Role role = Role::kUser;
  std::string text;
};

// The parts of a generation request the mock looks at.
struct Conversation {
  std::string model;  // As requested; "" when absent.
  bool stream = false;
  bool include_usage = false;  // OpenAI stream_options.include_usage.
  bool has_tools = false;      // A non-empty "tools" array.
  std::optional<int> max_tokens;
  std::vector<Turn> turns;  // In order; the system prompt first when any.
};

// A tool call the mock decided to make.
struct ToolCall {
  std::string name;
  std::string query;                         // The "query" argument.
  std::string arguments_json;                // {"query":"..."} serialized.
  std::vector<std::string> argument_deltas;  // arguments_json in `chunks` pieces.
};

// The answer to one conversation: text, or one or more tool calls.
struct Answer {
  enum class Finish { kStop, kLength, kToolCalls };
  std::string text;  // The whole answer text; "" for tool calls.
  // Text deltas, or every call's argument deltas, call after call: what the
  // answer's timing counts.
  std::vector<std::string> deltas;
  std::vector<ToolCall> tool_calls;  // In order; empty for a text answer.
  int prompt_tokens = 0;
  int completion_tokens = 0;
  Finish finish = Finish::kStop;
};

// Whitespace-separated words of `text`: the mock's token estimate.
int CountWords(std::string_view text);

// The `count` tokens of the answer to `subject` (see mock_llm_server.h).
std::vector<std::string> AnswerTokens(std::string_view subject, int count);

// Splits `pieces` into `groups` consecutive runs joined into strings, as even
// as possible, the earlier runs taking the extra; never an empty run.
std::vector<std::string> JoinIntoGroups(const std::vector<std::string>& pieces, int groups);

// Splits `text` into `parts` pieces of near-equal byte length, each cut at a
// UTF-8 character boundary; never an empty piece.
std::vector<std::string> SplitBytes(std::string_view text, int parts);

// The answer to `conversation` under `knobs`. kInvalidArgument "prefill not
// supported" when the last turn is the assistant's and knobs refuse prefill.
absl::StatusOr<Answer> MakeAnswer(const Conversation& conversation, const MockKnobs& knobs);

// A deterministic unit-length vector for `input` (a hash of its bytes).
std::vector<double> EmbeddingOf(std::string_view input, int dimensions);

}  // namespace flowork::mockllm

#endif  // FLOWORK_MOCKLLM_SRC_ANSWER_H_
