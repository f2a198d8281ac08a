// OpenAI: POST /v1/chat/completions and POST /v1/completions.
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/core/internal/strings.h"
#include "wire_format.h"

namespace flowork::mockllm {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

constexpr std::string_view kDone = "data: [DONE]\n\n";
constexpr std::string_view kMalformed = "data: {\"choices\":[{\"delta\":{\"content\":\n\n";

json::value FinishReason(Answer::Finish finish) {
  switch (finish) {
    case Answer::Finish::kLength:
      return "length";
    case Answer::Finish::kToolCalls:
      return "tool_calls";
    case Answer::Finish::kStop:
      break;
  }
  return "stop";
}

json::object Usage(const Answer& answer) {
  return {{"prompt_tokens", answer.prompt_tokens},
          {"completion_tokens", answer.completion_tokens},
          {"total_tokens", answer.prompt_tokens + answer.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", 0}}}};
}

std::string Event(const json::value& data) {
  return absl::StrCat("data: ", wire::Json(data, "\n\n"));
}

// The fields model, stream and stream_options.include_usage.
absl::Status ParseCommon(const json::object& body, Conversation& conversation) {
  absl::StatusOr<std::optional<std::string>> model = wire::OptionalString(body, "model");
  if (!model.ok()) return model.status();
  conversation.model = model->value_or("");
  absl::StatusOr<std::optional<bool>> stream = wire::OptionalBool(body, "stream");
  if (!stream.ok()) return stream.status();
  conversation.stream = stream->value_or(false);
  if (const json::value* options = body.if_contains("stream_options");
      options != nullptr && !options->is_null()) {
    if (!options->is_object()) {
      return absl::InvalidArgumentError("stream_options: expected an object");
    }
    absl::StatusOr<std::optional<bool>> include_usage =
        wire::OptionalBool(options->get_object(), "include_usage");
    if (!include_usage.ok()) {
      return absl::InvalidArgumentError("stream_options.include_usage: expected true or false");
    }
    conversation.include_usage = include_usage->value_or(false);
  }
  return absl::OkStatus();
}

absl::StatusOr<Turn::Role> ParseRole(std::string_view role, size_t index) {
  if (role == "system" || role == "developer") return Turn::Role::kSystem;
  if (role == "user") return Turn::Role::kUser;
  if (role == "assistant") return Turn::Role::kAssistant;
  if (role == "tool" || role == "function") return Turn::Role::kTool;
  return absl::InvalidArgumentError(
      absl::StrCat("messages[", index, "].role: unknown role \"", ToAbsl(role), "\""));
}

class OpenAiChatFormat final : public ChatFormat {
 public:
  ErrorShape error_shape() const override { return ErrorShape::kOpenAi; }

  absl::StatusOr<Conversation> Parse(const json::object& body) const override {
    Conversation conversation;
    if (absl::Status common = ParseCommon(body, conversation); !common.ok()) return common;
    const json::value* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) {
      return absl::InvalidArgumentError("messages: expected a non-empty array");
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
    absl::StatusOr<bool> tools = wire::NonEmptyArray(body, "tools");
    if (!tools.ok()) return tools.status();
    conversation.has_tools = *tools;
    for (std::string_view field : {"max_tokens", "max_completion_tokens"}) {
      absl::StatusOr<std::optional<int>> max = wire::OptionalInt(body, field, 0);
      if (!max.ok()) return max.status();
      if (max->has_value()) conversation.max_tokens = **max;
    }
    return conversation;
  }

  std::string WholeBody(const Conversation& conversation, const Answer& answer,
                        const AnswerIdentity& identity) const override {
    json::object message{{"role", "assistant"}};
    if (!answer.tool_calls.empty()) {
      message["content"] = nullptr;
      json::array calls;
      for (size_t i = 0; i < answer.tool_calls.size(); ++i) {
        calls.push_back(ToolCallJson(answer.tool_calls[i], ToolCallId(identity, i)));
      }
      message["tool_calls"] = std::move(calls);
    } else {
      message["content"] = answer.text;
    }
    return json::serialize(json::object{
        {"id", identity.id},
        {"object", "chat.completion"},
        {"created", kCreatedUnixSeconds},
        {"model", identity.model},
        {"choices", json::array{json::object{{"index", 0},
                                             {"message", std::move(message)},
                                             {"finish_reason", FinishReason(answer.finish)}}}},
        {"usage", Usage(answer)}});
  }

  StreamEvents Stream(const Conversation& conversation, const Answer& answer,
                      const AnswerIdentity& identity) const override {
    StreamEvents events;
    events.malformed = std::string(kMalformed);
    if (!answer.tool_calls.empty()) {
      // The opening chunk names the first call; each later call's first
      // argument delta names it, as OpenAI streams parallel calls.
      events.prelude = Event(Chunk(identity,
                                   {{"role", "assistant"},
                                    {"content", nullptr},
                                    {"tool_calls", {CallOpening(answer, identity, 0, "")}}},
                                   nullptr));
      for (size_t i = 0; i < answer.tool_calls.size(); ++i) {
        const std::vector<std::string>& pieces = answer.tool_calls[i].argument_deltas;
        for (size_t j = 0; j < pieces.size(); ++j) {
          json::object call =
              i > 0 && j == 0
                  ? CallOpening(answer, identity, i, pieces[j])
                  : json::object{{"index", i}, {"function", {{"arguments", pieces[j]}}}};
          events.deltas.push_back(
              Event(Chunk(identity, {{"tool_calls", {std::move(call)}}}, nullptr)));
        }
      }
    } else {
      events.prelude = Event(Chunk(identity, {{"role", "assistant"}, {"content", ""}}, nullptr));
      for (const std::string& piece : answer.deltas) {
        events.deltas.push_back(Event(Chunk(identity, {{"content", piece}}, nullptr)));
      }
    }
    events.epilogue = Event(Chunk(identity, json::object{}, FinishReason(answer.finish)));
    if (conversation.include_usage) {
      events.epilogue += Event(json::object{{"id", identity.id},
                                            {"object", "chat.completion.chunk"},
                                            {"created", kCreatedUnixSeconds},
                                            {"model", identity.model},
                                            {"choices", json::array{}},
                                            {"usage", Usage(answer)}});
    }
    events.epilogue += kDone;
    return events;
  }

 private:
  static std::string ToolCallId(const AnswerIdentity& identity, size_t i) {
    return absl::StrCat("call_", identity.first_tool_call + static_cast<int64_t>(i));
  }

  static json::object ToolCallJson(const ToolCall& call, std::string id) {
    return {{"id", std::move(id)},
            {"type", "function"},
            {"function", {{"name", call.name}, {"arguments", call.arguments_json}}}};
  }

  // The stream delta that starts call `i`, carrying `arguments`.
  static json::object CallOpening(const Answer& answer, const AnswerIdentity& identity, size_t i,
                                  std::string_view arguments) {
    json::object call = ToolCallJson(answer.tool_calls[i], ToolCallId(identity, i));
    call["function"].as_object()["arguments"] = arguments;
    call.emplace("index", i);
    return call;
  }

  static json::object Chunk(const AnswerIdentity& identity, json::object delta,
                            json::value finish_reason) {
    return {{"id", identity.id},
            {"object", "chat.completion.chunk"},
            {"created", kCreatedUnixSeconds},
            {"model", identity.model},
            {"choices", json::array{json::object{{"index", 0},
                                                 {"delta", std::move(delta)},
                                                 {"finish_reason", std::move(finish_reason)}}}}};
  }
};

class OpenAiCompletionsFormat final : public ChatFormat {
 public:
  ErrorShape error_shape() const override { return ErrorShape::kOpenAi; }

  absl::StatusOr<Conversation> Parse(const json::object& body) const override {
    Conversation conversation;
    if (absl::Status common = ParseCommon(body, conversation); !common.ok()) return common;
    const json::value* prompt = body.if_contains("prompt");
    std::vector<std::string> texts;
    if (prompt != nullptr && prompt->is_string()) {
      texts.emplace_back(prompt->get_string());
    } else if (prompt != nullptr && prompt->is_array()) {
      for (const json::value& part : prompt->get_array()) {
        if (!part.is_string()) {
          return absl::InvalidArgumentError("prompt: expected a string or an array of strings");
        }
        texts.emplace_back(part.get_string());
      }
    } else {
      return absl::InvalidArgumentError("prompt: expected a string or an array of strings");
    }
    conversation.turns.push_back({.role = Turn::Role::kUser, .text = absl::StrJoin(texts, "\n")});
    absl::StatusOr<std::optional<int>> max = wire::OptionalInt(body, "max_tokens", 0);
    if (!max.ok()) return max.status();
    conversation.max_tokens = *max;
    return conversation;
  }

  std::string WholeBody(const Conversation& conversation, const Answer& answer,
                        const AnswerIdentity& identity) const override {
    json::object body = Completion(identity, answer.text, FinishReason(answer.finish));
    body["usage"] = Usage(answer);
    return json::serialize(body);
  }

  StreamEvents Stream(const Conversation& conversation, const Answer& answer,
                      const AnswerIdentity& identity) const override {
    StreamEvents events;
    events.malformed = std::string(kMalformed);
    for (const std::string& piece : answer.deltas) {
      events.deltas.push_back(Event(Completion(identity, piece, nullptr)));
    }
    events.epilogue = Event(Completion(identity, "", FinishReason(answer.finish)));
    if (conversation.include_usage) {
      json::object usage = Completion(identity, "", nullptr);
      usage["choices"] = json::array{};
      usage["usage"] = Usage(answer);
      events.epilogue += Event(usage);
    }
    events.epilogue += kDone;
    return events;
  }

 private:
  static json::object Completion(const AnswerIdentity& identity, std::string_view text,
                                 json::value finish_reason) {
    return {{"id", identity.id},
            {"object", "text_completion"},
            {"created", kCreatedUnixSeconds},
            {"model", identity.model},
            {"choices", json::array{json::object{{"text", text},
                                                 {"index", 0},
                                                 {"logprobs", nullptr},
                                                 {"finish_reason", std::move(finish_reason)}}}}};
  }
};

}  // namespace

std::unique_ptr<ChatFormat> MakeOpenAiChatFormat() { return std::make_unique<OpenAiChatFormat>(); }

std::unique_ptr<ChatFormat> MakeOpenAiCompletionsFormat() {
  return std::make_unique<OpenAiCompletionsFormat>();
}

}  // namespace flowork::mockllm
