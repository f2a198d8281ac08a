// Private: turns an OpenAI chat-completions SSE stream (chat.completion.chunk
// events) back into one chat completion, calling a callback with each piece
// of answer text on the way. Shared by the HTTP and in-process LlmClients.
#ifndef FLOWORK_AGENT_SRC_LLM_CHAT_STREAM_ASSEMBLER_H_
#define FLOWORK_AGENT_SRC_LLM_CHAT_STREAM_ASSEMBLER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/json.hpp"

namespace flowork::agent::internal {

// Not thread-safe: one stream, fed in order.
class ChatStreamAssembler {
 public:
  // `on_text` gets each non-empty content delta, inside Feed; may be empty.
  explicit ChatStreamAssembler(absl::AnyInvocable<void(std::string_view text)> on_text);

  // The next bytes of the SSE stream, split anywhere. After the first error
  // (an error event, a chunk that is not JSON) the rest is ignored and
  // Finish reports it.
  void Feed(std::string_view bytes);

  // Gives `text` to the callback as a piece of the answer (for an answer
  // that came whole instead of as a stream).
  void Text(std::string_view text) {
    if (on_text_) on_text_(text);
  }

  // The whole chat completion ("object": "chat.completion", one choice,
  // content concatenated, tool calls assembled by index, finish_reason,
  // usage when the stream carried it). kUnavailable naming the cause: an
  // error event, a malformed chunk, a stream without a finish_reason.
  absl::StatusOr<std::string> Finish();

 private:
  struct ToolCall {
    std::string id;
    std::string name;
    std::string arguments;
  };

  void Line(std::string_view line);
  void Dispatch();
  void Chunk(const boost::json::object& chunk);

  absl::AnyInvocable<void(std::string_view)> on_text_;
  absl::Status error_;
  std::string pending_;  // Bytes of a line not yet ended.
  std::string event_;    // The current event's "event:" field.
  std::string data_;     // The current event's "data:" lines.
  bool has_data_ = false;
  bool done_ = false;  // [DONE] seen.
  std::string id_;
  std::string model_;
  int64_t created_ = 0;
  std::string content_;
  std::string finish_reason_;
  std::map<int64_t, ToolCall> tool_calls_;
  boost::json::value usage_;  // null until a chunk carries usage.
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_LLM_CHAT_STREAM_ASSEMBLER_H_
