// The mock's wire formats: how each API's requests read and how its answers,
// streams and errors are written. Stateless; thread-safe.
#ifndef FLOWORK_MOCKLLM_SRC_WIRE_FORMAT_H_
#define FLOWORK_MOCKLLM_SRC_WIRE_FORMAT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "answer.h"
#include "boost/json.hpp"
#include "flowork/core/http_server.h"

namespace flowork::mockllm {

// The fixed creation time of every answer, and the same as RFC 3339.
inline constexpr int64_t kCreatedUnixSeconds = 1700000000;
inline constexpr std::string_view kCreatedRfc3339 = "2023-11-14T22:13:20Z";

// Whose error body shape a path answers with.
enum class ErrorShape { kOpenAi, kAnthropic, kOllama };

// An API-shaped JSON error response. `openai_code` is the OpenAI "code"
// ("" writes null); other shapes have no such field.
core::HttpResponse ErrorResponse(ErrorShape shape, int status, absl::string_view message,
                                 absl::string_view openai_code = "");

// The names one answer is written with.
struct AnswerIdentity {
  int64_t n = 0;      // Counts answered generation requests from 1.
  std::string id;     // "mock-<n>".
  std::string model;  // The requested model, or the server's first.
  // The number of the answer's first tool call, counting the server's tool
  // calls from 1; its i-th call (from 0) is first_tool_call + i.
  int64_t first_tool_call = 0;
};

// A streamed answer as wire events. The prelude goes out with the first
// delta (or with the epilogue when there is no delta).
struct StreamEvents {
  std::string prelude;
  std::vector<std::string> deltas;  // One event (or line) per content delta.
  std::string epilogue;             // Finish reason, usage, terminator.
  std::string malformed;            // Invalid JSON to send in a delta's place.
};

// One generation API: OpenAI chat, OpenAI completions, Anthropic messages or
// Ollama chat.
class ChatFormat {
 public:
  virtual ~ChatFormat() = default;

  virtual ErrorShape error_shape() const = 0;

  // The conversation of a request body. kInvalidArgument names the bad field.
  virtual absl::StatusOr<Conversation> Parse(const boost::json::object& body) const = 0;

  // The JSON body of a non-streamed answer.
  virtual std::string WholeBody(const Conversation& conversation, const Answer& answer,
                                const AnswerIdentity& identity) const = 0;

  // The events of a streamed answer.
  virtual StreamEvents Stream(const Conversation& conversation, const Answer& answer,
                              const AnswerIdentity& identity) const = 0;

  // Content-Type of a streamed answer.
  virtual std::string stream_content_type() const { return "text/event-stream"; }
};

std::unique_ptr<ChatFormat> MakeOpenAiChatFormat();
std::unique_ptr<ChatFormat> MakeOpenAiCompletionsFormat();
std::unique_ptr<ChatFormat> MakeAnthropicMessagesFormat();
std::unique_ptr<ChatFormat> MakeOllamaChatFormat();

// POST /v1/embeddings and /api/embed bodies; kInvalidArgument names the bad
// field. `default_model` stands in for an absent "model".
absl::StatusOr<std::string> OpenAiEmbeddingsBody(const boost::json::object& request,
                                                 std::string_view default_model);
absl::StatusOr<std::string> OllamaEmbedBody(const boost::json::object& request,
                                            std::string_view default_model);

// GET /v1/models and /api/tags bodies.
std::string OpenAiModelsBody(const std::vector<std::string>& models);
std::string OllamaTagsBody(const std::vector<std::string>& models);

// Shared request readers. Each names `field` in its error.
namespace wire {

absl::StatusOr<std::optional<std::string>> OptionalString(const boost::json::object& object,
                                                          std::string_view field);
absl::StatusOr<std::optional<bool>> OptionalBool(const boost::json::object& object,
                                                 std::string_view field);
// An integer >= `minimum`.
absl::StatusOr<std::optional<int>> OptionalInt(const boost::json::object& object,
                                               std::string_view field, int minimum);
// True when `field` is a non-empty array; kInvalidArgument when not an array.
absl::StatusOr<bool> NonEmptyArray(const boost::json::object& object, std::string_view field);
// The text of message content: a string, null, or an array of parts whose
// "text" (and tool results' "content") is joined with newlines.
std::string ContentText(const boost::json::value& content);
// `value` serialized followed by `suffix`.
std::string Json(const boost::json::value& value, std::string_view suffix = "");

}  // namespace wire

}  // namespace flowork::mockllm

#endif  // FLOWORK_MOCKLLM_SRC_WIRE_FORMAT_H_
