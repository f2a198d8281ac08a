// Private: conversions between the wire formats the router speaks. The
// gateway passes OpenAI bodies through untouched when the upstream speaks
// OpenAI; these are for every other pairing.
//
// Front formats: OpenAI Chat Completions, Anthropic Messages.
// Upstream formats: OpenAI (openai, mock), Anthropic Messages (anthropic),
// Ollama /api/chat (ollama).
#ifndef FLOWORK_ROUTER_SRC_PROVIDERS_TRANSLATION_H_
#define FLOWORK_ROUTER_SRC_PROVIDERS_TRANSLATION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace flowork::router {

// Token counts as the upstream reported them.
struct TokenUsage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t cached_prompt_tokens = 0;
  bool reported = false;  // The upstream sent usage at all.
};

// ---- Whole bodies -------------------------------------------------------
// Each returns kInvalidArgument naming the field when the input is not the
// shape it claims (the caller answers 400 for requests, 502 for responses).
// `model` is the name to put in the output.

// OpenAI chat request -> Anthropic Messages request: system messages to the
// top-level `system`, user/assistant/tool messages to content blocks
// (tool calls -> tool_use, tool results -> tool_result), tools ->
// {name, description, input_schema}, tool_choice, stop -> stop_sequences,
// max_tokens (default 4096 when absent: Anthropic requires it), temperature,
// top_p, stream. A trailing assistant message stays last (prefill).
absl::StatusOr<std::string> OpenAiChatRequestToAnthropic(std::string_view body,
                                                         std::string_view model);
// Anthropic Messages request -> OpenAI chat request (the reverse mapping).
absl::StatusOr<std::string> AnthropicRequestToOpenAiChat(std::string_view body,
                                                         std::string_view model);
// OpenAI chat request -> Ollama /api/chat request (messages, tools,
// options.temperature/top_p/num_predict/stop, stream; "stream" is written
// explicitly because Ollama streams by default).
absl::StatusOr<std::string> OpenAiChatRequestToOllama(std::string_view body,
                                                      std::string_view model);

// Anthropic Messages response -> OpenAI chat.completion (text, tool_calls,
// finish_reason from stop_reason, usage incl. cached tokens).
absl::StatusOr<std::string> AnthropicResponseToOpenAiChat(std::string_view body,
                                                          std::string_view model);
// OpenAI chat.completion -> Anthropic Messages response.
absl::StatusOr<std::string> OpenAiChatResponseToAnthropic(std::string_view body,
                                                          std::string_view model);
// Ollama /api/chat response (stream:false) -> OpenAI chat.completion.
absl::StatusOr<std::string> OllamaResponseToOpenAiChat(std::string_view body,
                                                       std::string_view model);

// The wire format an upstream speaks.
enum class UpstreamWire { kOpenAi, kAnthropic, kOllama };

// The usage in a whole (non-streaming) upstream answer; zeros (reported
// false) when there is none or the body is unreadable.
TokenUsage WholeResponseUsage(UpstreamWire wire_format, std::string_view body);

// Error bodies: any upstream error body (or none) -> the front's shape,
// keeping the message. `status` picks the error type when the body has none.
std::string ErrorToOpenAi(int status, std::string_view body);
std::string ErrorToAnthropic(int status, std::string_view body);

// ---- Streams -------------------------------------------------------------

// Reads an upstream stream in whatever pieces the network delivers and
// writes the client's stream. Not thread-safe; one per response.
class StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;

  // Consumes the next upstream bytes (events may be split anywhere) and
  // returns the bytes to send the client now (possibly empty). Malformed
  // events are dropped, never forwarded, and counted.
  virtual std::string Feed(std::string_view upstream_bytes) = 0;

  // The upstream closed. Returns the bytes that end the client's stream
  // properly when the upstream ended the answer (finish reason seen) but
  // not the stream (no [DONE] / message_stop), else "".
  virtual std::string Finish() = 0;

  // The first content (text or tool-call delta) has been seen.
  virtual bool saw_content() const = 0;
  // The answer finished (finish_reason, stop_reason, done:true).
  virtual bool saw_finish() const = 0;
  // The stream's terminator ([DONE], message_stop, done:true) was seen.
  virtual bool saw_end() const = 0;
  // Events dropped as malformed.
  virtual int malformed_events() const = 0;
  // Usage reported so far.
  virtual TokenUsage usage() const = 0;
  // The text content delivered so far (for continuing a cut answer).
  virtual const std::string& text() const = 0;
};

// OpenAI SSE in, OpenAI SSE out: the same bytes, except malformed events
// are dropped and, when `forward_usage` is false, the final usage-only chunk
// (empty `choices`, added because the router asked for usage) is withheld.
std::unique_ptr<StreamTranslator> NewOpenAiStreamInspector(bool forward_usage);
// Anthropic SSE in, OpenAI chat.completion.chunk SSE out (text deltas,
// tool_use -> tool_calls with streamed argument deltas, finish_reason,
// usage chunk when `forward_usage`, then [DONE]).
std::unique_ptr<StreamTranslator> NewAnthropicToOpenAiStream(std::string model, bool forward_usage);
// OpenAI SSE in, Anthropic SSE out (message_start, content_block_start /
// delta / stop for text and tool_use with input_json_delta, message_delta
// with stop_reason and usage, message_stop).
std::unique_ptr<StreamTranslator> NewOpenAiToAnthropicStream(std::string model);
// Ollama NDJSON in, OpenAI chat.completion.chunk SSE out.
std::unique_ptr<StreamTranslator> NewOllamaToOpenAiStream(std::string model, bool forward_usage);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_SRC_PROVIDERS_TRANSLATION_H_
