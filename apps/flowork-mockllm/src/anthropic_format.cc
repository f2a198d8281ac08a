// Anthropic Messages: POST /v1/messages.
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"
#include "wire_format.h"

namespace flowork::mockllm {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

constexpr std::string_view kMalformed =
    "event: content_block_delta\ndata: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\n\n";

std::string StopReason(Answer::Finish finish) {
  switch (finish) {
    case Answer::Finish::kLength:
      return "max_tokens";
    case Answer::Finish::kToolCalls:
      return "tool_use";
    case Answer::Finish::kStop:
      break;
  }
  return "end_turn";
}

std::string Event(std::string_view name, const json::value& data) {
  return absl::StrCat("event: ", ToAbsl(name), "\ndata: ", wire::Json(data, "\n\n"));
}

// A user message carrying tool results counts as a tool turn.
bool HasToolResult(const json::value& content) {
  const json::array* blocks = content.if_array();
  if (blocks == nullptr) return false;
  for (const json::value& block : *blocks) {
    const json::object* object = block.if_object();
    if (object == nullptr) continue;
    const json::value* type = object->if_contains("type");
    if (type != nullptr && type->is_string() && type->get_string() == "tool_result") return true;
  }
  return false;
}

class AnthropicMessagesFormat final : public ChatFormat {
 public:
  ErrorShape error_shape() const override { return ErrorShape::kAnthropic; }

  absl::StatusOr<Conversation> Parse(const json::object& body) const override {
    Conversation conversation;
    absl::StatusOr<std::optional<std::string>> model = wire::OptionalString(body, "model");
    if (!model.ok()) return model.status();
    conversation.model = model->value_or("");
    absl::StatusOr<std::optional<bool>> stream = wire::OptionalBool(body, "stream");
    if (!stream.ok()) return stream.status();
    conversation.stream = stream->value_or(false);
    absl::StatusOr<std::optional<int>> max_tokens = wire::OptionalInt(body, "max_tokens", 1);
    if (!max_tokens.ok()) return max_tokens.status();
    if (!max_tokens->has_value()) return absl::InvalidArgumentError("max_tokens: required");
    conversation.max_tokens = *max_tokens;
    absl::StatusOr<bool> tools = wire::NonEmptyArray(body, "tools");
    if (!tools.ok()) return tools.status();
    conversation.has_tools = *tools;

    if (const json::value* system = body.if_contains("system"); system != nullptr) {
      conversation.turns.push_back(
          {.role = Turn::Role::kSystem, .text = wire::ContentText(*system)});
    }
    const json::value* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) {
      return absl::InvalidArgumentError("messages: expected a non-empty array");
    }
    const json::array& list = messages->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const json::object* message = list[i].if_object();
      const json::value* role = message != nullptr ? message->if_contains("role") : nullptr;
      if (role == nullptr || !role->is_string() ||
          (role->get_string() != "user" && role->get_string() != "assistant")) {
        return absl::InvalidArgumentError(
            absl::StrCat("messages[", i, "].role: expected \"user\" or \"assistant\""));
      }
      const json::value* content = message->if_contains("content");
      if (content == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].content: required"));
      }
      Turn::Role parsed = role->get_string() == "assistant" ? Turn::Role::kAssistant
                          : HasToolResult(*content)         ? Turn::Role::kTool
                                                            : Turn::Role::kUser;
      conversation.turns.push_back({.role = parsed, .text = wire::ContentText(*content)});
    }
    return conversation;
  }

  std::string WholeBody(const Conversation& conversation, const Answer& answer,
                        const AnswerIdentity& identity) const override {
    json::array content;
    if (!answer.tool_calls.empty()) {
      for (size_t i = 0; i < answer.tool_calls.size(); ++i) {
        json::object block = ToolUseBlock(answer.tool_calls[i], identity, i);
        block["input"] = {{"query", answer.tool_calls[i].query}};
        content.push_back(std::move(block));
      }
    } else {
      content.push_back(json::object{{"type", "text"}, {"text", answer.text}});
    }
    return json::serialize(
        json::object{{"id", identity.id},
                     {"type", "message"},
                     {"role", "assistant"},
                     {"content", std::move(content)},
                     {"model", identity.model},
                     {"stop_reason", StopReason(answer.finish)},
                     {"stop_sequence", nullptr},
                     {"usage", Usage(answer.prompt_tokens, answer.completion_tokens)}});
  }

  StreamEvents Stream(const Conversation& conversation, const Answer& answer,
                      const AnswerIdentity& identity) const override {
    // One content block per tool call, or one text block. A later block's
    // start event goes out with its first delta (a call's arguments are never
    // empty), the previous block's stop event just before it.
    struct Block {
      json::object start;
      const std::vector<std::string>* deltas;
    };
    std::vector<Block> blocks;
    std::string delta_type;
    std::string delta_field;
    if (!answer.tool_calls.empty()) {
      for (size_t i = 0; i < answer.tool_calls.size(); ++i) {
        json::object block = ToolUseBlock(answer.tool_calls[i], identity, i);
        block["input"] = json::object{};
        blocks.push_back({std::move(block), &answer.tool_calls[i].argument_deltas});
      }
      delta_type = "input_json_delta";
      delta_field = "partial_json";
    } else {
      blocks.push_back({{{"type", "text"}, {"text", ""}}, &answer.deltas});
      delta_type = "text_delta";
      delta_field = "text";
    }
    auto block_start = [&](size_t index) {
      return Event("content_block_start", {{"type", "content_block_start"},
                                           {"index", index},
                                           {"content_block", std::move(blocks[index].start)}});
    };
    auto block_stop = [](size_t index) {
      return Event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
    };

    StreamEvents events;
    events.malformed = std::string(kMalformed);
    events.prelude = Event("message_start", {{"type", "message_start"},
                                             {"message",
                                              {{"id", identity.id},
                                               {"type", "message"},
                                               {"role", "assistant"},
                                               {"content", json::array{}},
                                               {"model", identity.model},
                                               {"stop_reason", nullptr},
                                               {"stop_sequence", nullptr},
                                               {"usage", Usage(answer.prompt_tokens, 0)}}}}) +
                     block_start(0);
    for (size_t index = 0; index < blocks.size(); ++index) {
      std::string opening = index > 0 ? block_stop(index - 1) + block_start(index) : "";
      for (const std::string& piece : *blocks[index].deltas) {
        events.deltas.push_back(std::exchange(opening, "") +
                                Event("content_block_delta",
                                      {{"type", "content_block_delta"},
                                       {"index", index},
                                       {"delta", {{"type", delta_type}, {delta_field, piece}}}}));
      }
    }
    events.epilogue =
        block_stop(blocks.size() - 1) +
        Event("message_delta",
              {{"type", "message_delta"},
               {"delta", {{"stop_reason", StopReason(answer.finish)}, {"stop_sequence", nullptr}}},
               {"usage", {{"output_tokens", answer.completion_tokens}}}}) +
        Event("message_stop", {{"type", "message_stop"}});
    return events;
  }

 private:
  static json::object ToolUseBlock(const ToolCall& call, const AnswerIdentity& identity, size_t i) {
    return {{"type", "tool_use"},
            {"id", absl::StrCat("toolu_", identity.first_tool_call + static_cast<int64_t>(i))},
            {"name", call.name}};
  }

  static json::object Usage(int input_tokens, int output_tokens) {
    return {{"input_tokens", input_tokens},
            {"output_tokens", output_tokens},
            {"cache_creation_input_tokens", 0},
            {"cache_read_input_tokens", 0}};
  }
};

}  // namespace

std::unique_ptr<ChatFormat> MakeAnthropicMessagesFormat() {
  return std::make_unique<AnthropicMessagesFormat>();
}

}  // namespace flowork::mockllm
