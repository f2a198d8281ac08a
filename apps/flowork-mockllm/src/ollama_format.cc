// Ollama: POST /api/chat. Streams NDJSON unless the request says
// "stream": false, as Ollama does.
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"
#include "wire_format.h"

namespace flowork::mockllm {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

constexpr std::string_view kMalformed = "{\"model\":\"mock\",\"message\":{\"content\":\n";

absl::StatusOr<Turn::Role> ParseRole(std::string_view role, size_t index) {
  if (role == "system") return Turn::Role::kSystem;
  if (role == "user") return Turn::Role::kUser;
  if (role == "assistant") return Turn::Role::kAssistant;
  if (role == "tool") return Turn::Role::kTool;
  return absl::InvalidArgumentError(
      absl::StrCat("messages[", index, "].role: unknown role \"", ToAbsl(role), "\""));
}

class OllamaChatFormat final : public ChatFormat {
 public:
  ErrorShape error_shape() const override { return ErrorShape::kOllama; }
  std::string stream_content_type() const override { return "application/x-ndjson"; }

  absl::StatusOr<Conversation> Parse(const json::object& body) const override {
    Conversation conversation;
    absl::StatusOr<std::optional<std::string>> model = wire::OptionalString(body, "model");
    if (!model.ok()) return model.status();
    conversation.model = model->value_or("");
    absl::StatusOr<std::optional<bool>> stream = wire::OptionalBool(body, "stream");
    if (!stream.ok()) return stream.status();
    conversation.stream = stream->value_or(true);
    absl::StatusOr<bool> tools = wire::NonEmptyArray(body, "tools");
    if (!tools.ok()) return tools.status();
    conversation.has_tools = *tools;
    if (const json::value* options = body.if_contains("options");
        options != nullptr && options->is_object()) {
      // num_predict < 0 means "no limit" to Ollama.
      absl::StatusOr<std::optional<int>> num_predict =
          wire::OptionalInt(options->get_object(), "num_predict", INT32_MIN);
      if (!num_predict.ok()) {
        return absl::InvalidArgumentError("options.num_predict: expected an integer");
      }
      if (num_predict->has_value() && **num_predict >= 0) conversation.max_tokens = *num_predict;
    }
    const json::value* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array()) {
      return absl::InvalidArgumentError("messages: expected an array");
    }
    const json::array& list = messages->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const json::object* message = list[i].if_object();
      const json::value* role = message != nullptr ? message->if_contains("role") : nullptr;
      if (role == nullptr || !role->is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("messages[", i, "].role: expected a string"));
      }
      absl::StatusOr<Turn::Role> parsed = ParseRole(role->get_string(), i);
      if (!parsed.ok()) return parsed.status();
      const json::value* content = message->if_contains("content");
      conversation.turns.push_back(
          {.role = *parsed, .text = content != nullptr ? wire::ContentText(*content) : ""});
    }
    return conversation;
  }

  std::string WholeBody(const Conversation& conversation, const Answer& answer,
                        const AnswerIdentity& identity) const override {
    return wire::Json(Final(answer, identity, Message(answer, answer.text)));
  }

  StreamEvents Stream(const Conversation& conversation, const Answer& answer,
                      const AnswerIdentity& identity) const override {
    StreamEvents events;
    events.malformed = std::string(kMalformed);
    if (!answer.tool_calls.empty()) {
      // Ollama sends tool calls whole, in one line.
      events.deltas.push_back(Line(identity, Message(answer, "")));
    } else {
      for (const std::string& piece : answer.deltas) {
        events.deltas.push_back(Line(identity, {{"role", "assistant"}, {"content", piece}}));
      }
    }
    events.epilogue =
        wire::Json(Final(answer, identity, {{"role", "assistant"}, {"content", ""}}), "\n");
    return events;
  }

 private:
  // The assistant message of a whole answer (or of streamed tool calls).
  static json::object Message(const Answer& answer, std::string_view content) {
    json::object message{{"role", "assistant"}, {"content", content}};
    if (!answer.tool_calls.empty()) {
      json::array calls;
      for (const ToolCall& call : answer.tool_calls) {
        calls.push_back(json::object{
            {"function", {{"name", call.name}, {"arguments", {{"query", call.query}}}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    return message;
  }

  static std::string Line(const AnswerIdentity& identity, json::object message) {
    return wire::Json(json::object{{"model", identity.model},
                                   {"created_at", kCreatedRfc3339},
                                   {"message", std::move(message)},
                                   {"done", false}},
                      "\n");
  }

  static json::object Final(const Answer& answer, const AnswerIdentity& identity,
                            json::object message) {
    return {{"model", identity.model},
            {"created_at", kCreatedRfc3339},
            {"message", std::move(message)},
            {"done_reason", answer.finish == Answer::Finish::kLength ? "length" : "stop"},
            {"done", true},
            {"total_duration", 0},
            {"load_duration", 0},
            {"prompt_eval_count", answer.prompt_tokens},
            {"prompt_eval_duration", 0},
            {"eval_count", answer.completion_tokens},
            {"eval_duration", 0}};
  }
};

}  // namespace

std::unique_ptr<ChatFormat> MakeOllamaChatFormat() { return std::make_unique<OllamaChatFormat>(); }

}  // namespace flowork::mockllm
