#include "chat_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "providers/json_wire.h"

namespace flowork::router::codec {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;
using wire::J;
using wire::View;

const char* RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_SYSTEM:
      return "system";
    case v1::ROLE_USER:
      return "user";
    case v1::ROLE_ASSISTANT:
      return "assistant";
    case v1::ROLE_TOOL:
      return "tool";
    default:
      return nullptr;
  }
}

v1::Role RoleFromName(std::string_view name) {
  if (name == "system" || name == "developer") return v1::ROLE_SYSTEM;
  if (name == "user") return v1::ROLE_USER;
  if (name == "assistant") return v1::ROLE_ASSISTANT;
  if (name == "tool") return v1::ROLE_TOOL;
  return v1::ROLE_UNSPECIFIED;
}

// Whole numbers as integers: upstreams that want an integer (max_tokens,
// top_k) may refuse 40.0.
json::value ToJson(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNullValue:
      return nullptr;
    case google::protobuf::Value::kNumberValue: {
      const double d = value.number_value();
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) {
        return static_cast<int64_t>(d);
      }
      return d;
    }
    case google::protobuf::Value::kStringValue:
      return json::string(J(value.string_value()));
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kStructValue: {
      json::object object;
      for (const auto& [key, field] : value.struct_value().fields()) object[J(key)] = ToJson(field);
      return object;
    }
    case google::protobuf::Value::kListValue: {
      json::array array;
      for (const auto& item : value.list_value().values()) array.push_back(ToJson(item));
      return array;
    }
    default:
      return nullptr;
  }
}

json::object ToJson(const google::protobuf::Struct& value) {
  json::object object;
  for (const auto& [key, field] : value.fields()) object[J(key)] = ToJson(field);
  return object;
}

absl::Status MergeExtra(const google::protobuf::Struct& extra, json::object& body) {
  for (const auto& [key, value] : extra.fields()) {
    if (body.contains(J(key)) || key == "stream" || key == "stream_options" || key == "model") {
      return absl::InvalidArgumentError(
          absl::StrCat("extra.", key, ": set by the typed request; use its field instead"));
    }
    body[J(key)] = ToJson(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<json::value> MessageContent(const v1::ChatMessage& message,
                                           const std::string& path) {
  if (message.content_size() == 0) {
    // An assistant turn that only calls tools has no content at all.
    if (message.tool_calls_size() > 0) return nullptr;
    return json::string();
  }
  if (message.content_size() == 1 && message.content(0).has_text()) {
    return json::string(J(message.content(0).text()));
  }
  json::array parts;
  for (int i = 0; i < message.content_size(); ++i) {
    const v1::ContentPart& part = message.content(i);
    if (part.has_text()) {
      parts.push_back(json::object{{"type", "text"}, {"text", J(part.text())}});
    } else if (part.has_image_url()) {
      json::object image{{"url", J(part.image_url().url())}};
      if (!part.image_url().detail().empty()) image["detail"] = J(part.image_url().detail());
      parts.push_back(json::object{{"type", "image_url"}, {"image_url", std::move(image)}});
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".content[", i, "]: neither text nor image_url"));
    }
  }
  return parts;
}

absl::StatusOr<json::object> MessageJson(const v1::ChatMessage& message, const std::string& path) {
  const char* role = RoleName(message.role());
  if (role == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, ".role: unset"));
  json::object out;
  out["role"] = role;
  absl::StatusOr<json::value> content = MessageContent(message, path);
  if (!content.ok()) return content.status();
  out["content"] = *std::move(content);
  if (!message.name().empty()) out["name"] = J(message.name());
  if (!message.tool_call_id().empty()) out["tool_call_id"] = J(message.tool_call_id());
  if (message.tool_calls_size() > 0) {
    json::array calls;
    for (const v1::ToolCall& call : message.tool_calls()) {
      calls.push_back(json::object{
          {"id", J(call.id())},
          {"type", "function"},
          {"function", json::object{{"name", J(call.name())},
                                    {"arguments", call.arguments().empty()
                                                      ? json::string("{}")
                                                      : json::string(J(call.arguments()))}}}});
    }
    out["tool_calls"] = std::move(calls);
  }
  return out;
}

absl::StatusOr<std::string> BuildChatBody(const v1::ChatRequest& request, bool stream) {
  json::object body;
  body["model"] = J(request.model());
  json::array messages;
  for (int i = 0; i < request.messages_size(); ++i) {
    absl::StatusOr<json::object> message =
        MessageJson(request.messages(i), absl::StrCat("messages[", i, "]"));
    if (!message.ok()) return message.status();
    messages.push_back(*std::move(message));
  }
  body["messages"] = std::move(messages);
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = json::object{{"include_usage", true}};
  }
  if (request.tools_size() > 0) {
    json::array tools;
    for (int i = 0; i < request.tools_size(); ++i) {
      const v1::ToolDefinition& tool = request.tools(i);
      if (tool.name().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("tools[", i, "].name: empty"));
      }
      json::object function{{"name", J(tool.name())}};
      if (!tool.description().empty()) function["description"] = J(tool.description());
      if (tool.has_parameters()) function["parameters"] = ToJson(tool.parameters());
      tools.push_back(json::object{{"type", "function"}, {"function", std::move(function)}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.has_tool_choice()) {
    const v1::ToolChoice& choice = request.tool_choice();
    if (choice.has_function()) {
      body["tool_choice"] = json::object{
          {"type", "function"}, {"function", json::object{{"name", J(choice.function())}}}};
    } else if (choice.mode() == v1::ToolChoice::MODE_AUTO) {
      body["tool_choice"] = "auto";
    } else if (choice.mode() == v1::ToolChoice::MODE_NONE) {
      body["tool_choice"] = "none";
    } else if (choice.mode() == v1::ToolChoice::MODE_REQUIRED) {
      body["tool_choice"] = "required";
    }
  }
  if (request.has_temperature()) body["temperature"] = request.temperature();
  if (request.has_top_p()) body["top_p"] = request.top_p();
  if (request.has_max_tokens()) body["max_tokens"] = request.max_tokens();
  if (request.stop_size() > 0) {
    json::array stop;
    for (const std::string& s : request.stop()) stop.push_back(json::string(J(s)));
    body["stop"] = std::move(stop);
  }
  if (request.has_seed()) body["seed"] = request.seed();
  if (request.has_response_format()) {
    const v1::ResponseFormat& format = request.response_format();
    switch (format.type()) {
      case v1::ResponseFormat::TYPE_TEXT:
        body["response_format"] = json::object{{"type", "text"}};
        break;
      case v1::ResponseFormat::TYPE_JSON_OBJECT:
        body["response_format"] = json::object{{"type", "json_object"}};
        break;
      case v1::ResponseFormat::TYPE_JSON_SCHEMA: {
        json::object schema{
            {"name", format.schema_name().empty() ? json::string("response")
                                                  : json::string(J(format.schema_name()))},
            {"schema", ToJson(format.schema())}};
        if (format.strict()) schema["strict"] = true;
        body["response_format"] =
            json::object{{"type", "json_schema"}, {"json_schema", std::move(schema)}};
        break;
      }
      default:
        break;
    }
  }
  if (absl::Status merged = MergeExtra(request.extra(), body); !merged.ok()) return merged;
  return wire::Serialize(body);
}

absl::StatusOr<std::string> BuildEmbeddingsBody(const v1::EmbedRequest& request) {
  json::object body;
  body["model"] = J(request.model());
  json::array input;
  for (const std::string& text : request.input()) input.push_back(json::string(J(text)));
  body["input"] = std::move(input);
  if (request.has_dimensions()) body["dimensions"] = request.dimensions();
  if (absl::Status merged = MergeExtra(request.extra(), body); !merged.ok()) return merged;
  return wire::Serialize(body);
}

uint32_t Count(const json::object& object, std::string_view key) {
  return static_cast<uint32_t>(
      std::min<uint64_t>(wire::FindCount(object, key).value_or(0), UINT32_MAX));
}

v1::Usage UsageFrom(const json::object& usage) {
  v1::Usage out;
  out.set_prompt_tokens(Count(usage, "prompt_tokens"));
  out.set_completion_tokens(Count(usage, "completion_tokens"));
  if (const json::object* details = wire::FindObject(usage, "prompt_tokens_details")) {
    out.set_cached_tokens(Count(*details, "cached_tokens"));
  }
  out.set_total_tokens(wire::FindCount(usage, "total_tokens").has_value()
                           ? Count(usage, "total_tokens")
                           : out.prompt_tokens() + out.completion_tokens());
  return out;
}

absl::Status ContentFrom(const json::value* content, const std::string& path,
                         v1::ChatMessage& message) {
  if (content == nullptr || content->is_null()) return absl::OkStatus();
  if (const json::string* text = content->if_string()) {
    if (!text->empty()) message.add_content()->set_text(std::string(View(*text)));
    return absl::OkStatus();
  }
  const json::array* parts = content->if_array();
  if (parts == nullptr) return absl::InternalError(absl::StrCat(path, ": not a string or array"));
  for (size_t i = 0; i < parts->size(); ++i) {
    const json::object* part = (*parts)[i].if_object();
    if (part == nullptr) return absl::InternalError(absl::StrCat(path, "[", i, "]: not an object"));
    const std::string_view type = wire::StringOr(*part, "type");
    if (type == "text") {
      message.add_content()->set_text(std::string(wire::StringOr(*part, "text")));
    } else if (type == "image_url") {
      const json::object* image = wire::FindObject(*part, "image_url");
      v1::ImageUrl& out = *message.add_content()->mutable_image_url();
      if (image != nullptr) {
        out.set_url(std::string(wire::StringOr(*image, "url")));
        out.set_detail(std::string(wire::StringOr(*image, "detail")));
      }
    }  // Other part kinds (audio, refusal, ...) have no typed form yet.
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ChatResponse> ParseChatResponse(std::string_view body) {
  std::optional<json::value> parsed = wire::ParseJson(body);
  if (!parsed || !parsed->is_object()) {
    return absl::InternalError("the gateway's chat answer is not a JSON object");
  }
  const json::object& root = parsed->get_object();
  v1::ChatResponse response;
  response.set_id(std::string(wire::StringOr(root, "id")));
  response.set_model(std::string(wire::StringOr(root, "model")));
  const json::array* choices = wire::FindArray(root, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) {
    return absl::InternalError("the gateway's chat answer has no choices[0]");
  }
  const json::object& choice = (*choices)[0].get_object();
  response.set_finish_reason(std::string(wire::StringOr(choice, "finish_reason")));
  const json::object* message = wire::FindObject(choice, "message");
  if (message == nullptr) return absl::InternalError("choices[0].message: missing");
  v1::ChatMessage& out = *response.mutable_message();
  out.set_role(RoleFromName(wire::StringOr(*message, "role", "assistant")));
  if (absl::Status s =
          ContentFrom(message->if_contains("content"), "choices[0].message.content", out);
      !s.ok()) {
    return s;
  }
  if (const json::array* calls = wire::FindArray(*message, "tool_calls")) {
    for (const json::value& raw : *calls) {
      const json::object* call = raw.if_object();
      if (call == nullptr) continue;
      v1::ToolCall& tool_call = *out.add_tool_calls();
      tool_call.set_id(std::string(wire::StringOr(*call, "id")));
      if (const json::object* function = wire::FindObject(*call, "function")) {
        tool_call.set_name(std::string(wire::StringOr(*function, "name")));
        tool_call.set_arguments(std::string(wire::StringOr(*function, "arguments")));
      }
    }
  }
  if (const json::object* usage = wire::FindObject(root, "usage")) {
    *response.mutable_usage() = UsageFrom(*usage);
  }
  return response;
}

absl::StatusOr<v1::EmbedResponse> ParseEmbedResponse(std::string_view body) {
  std::optional<json::value> parsed = wire::ParseJson(body);
  if (!parsed || !parsed->is_object()) {
    return absl::InternalError("the gateway's embeddings answer is not a JSON object");
  }
  const json::object& root = parsed->get_object();
  const json::array* data = wire::FindArray(root, "data");
  if (data == nullptr) return absl::InternalError("the gateway's embeddings answer has no data");
  std::vector<std::pair<uint64_t, v1::Embedding>> items;
  for (size_t i = 0; i < data->size(); ++i) {
    const json::object* item = (*data)[i].if_object();
    const json::array* vector = item ? wire::FindArray(*item, "embedding") : nullptr;
    if (vector == nullptr) {
      return absl::InternalError(absl::StrCat(
          "data[", i, "].embedding: not an array of numbers (base64 encoding is not supported)"));
    }
    v1::Embedding embedding;
    embedding.mutable_values()->Reserve(static_cast<int>(vector->size()));
    for (const json::value& number : *vector) {
      if (!number.is_number()) {
        return absl::InternalError(absl::StrCat("data[", i, "].embedding: not a number"));
      }
      embedding.add_values(static_cast<float>(number.to_number<double>()));
    }
    items.emplace_back(wire::FindCount(*item, "index").value_or(i), std::move(embedding));
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  v1::EmbedResponse response;
  response.set_model(std::string(wire::StringOr(root, "model")));
  for (auto& [index, embedding] : items) *response.add_embeddings() = std::move(embedding);
  if (const json::object* usage = wire::FindObject(root, "usage")) {
    *response.mutable_usage() = UsageFrom(*usage);
  }
  return response;
}

absl::StatusOr<std::optional<v1::ChatChunk>> ParseChunk(const SseSplitter::Event& event) {
  const std::string_view data = core::internal::ToStd(absl::StripAsciiWhitespace(event.data));
  if (data.empty() || data == "[DONE]") return std::nullopt;
  std::optional<json::value> parsed = wire::ParseJson(data);
  if (!parsed || !parsed->is_object()) {
    return absl::InternalError(
        absl::StrCat("a streamed event is not a JSON object: ", ToAbsl(data.substr(0, 200))));
  }
  const json::object& root = parsed->get_object();
  if (event.name == "error" || root.contains("error")) {
    const json::object* error = wire::FindObject(root, "error");
    std::string message =
        error != nullptr ? std::string(wire::StringOr(*error, "message")) : std::string(data);
    return absl::UnavailableError(message.empty() ? "the stream failed" : message);
  }
  v1::ChatChunk chunk;
  chunk.set_id(std::string(wire::StringOr(root, "id")));
  chunk.set_model(std::string(wire::StringOr(root, "model")));
  if (const json::array* choices = wire::FindArray(root, "choices");
      choices != nullptr && !choices->empty() && (*choices)[0].is_object()) {
    const json::object& choice = (*choices)[0].get_object();
    chunk.set_finish_reason(std::string(wire::StringOr(choice, "finish_reason")));
    if (const json::object* delta = wire::FindObject(choice, "delta")) {
      v1::ChatDelta& out = *chunk.mutable_delta();
      out.set_role(RoleFromName(wire::StringOr(*delta, "role")));
      out.set_content(std::string(wire::StringOr(*delta, "content")));
      if (const json::array* calls = wire::FindArray(*delta, "tool_calls")) {
        for (size_t i = 0; i < calls->size(); ++i) {
          const json::object* call = (*calls)[i].if_object();
          if (call == nullptr) continue;
          v1::ToolCallDelta& piece = *out.add_tool_calls();
          piece.set_index(static_cast<uint32_t>(wire::FindCount(*call, "index").value_or(i)));
          piece.set_id(std::string(wire::StringOr(*call, "id")));
          if (const json::object* function = wire::FindObject(*call, "function")) {
            piece.set_name(std::string(wire::StringOr(*function, "name")));
            piece.set_arguments(std::string(wire::StringOr(*function, "arguments")));
          }
        }
      }
    }
  }
  if (const json::object* usage = wire::FindObject(root, "usage")) {
    *chunk.mutable_usage() = UsageFrom(*usage);
  }
  return chunk;
}

// ---- OpenAI JSON -> typed request, typed answer -> OpenAI JSON ------------

google::protobuf::Value FromJson(const json::value& value) {
  google::protobuf::Value out;
  switch (value.kind()) {
    case json::kind::null:
      out.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case json::kind::bool_:
      out.set_bool_value(value.get_bool());
      break;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      out.set_number_value(value.to_number<double>());
      break;
    case json::kind::string:
      out.set_string_value(std::string(View(value.get_string())));
      break;
    case json::kind::array: {
      google::protobuf::ListValue& list = *out.mutable_list_value();
      for (const json::value& item : value.get_array()) *list.add_values() = FromJson(item);
      break;
    }
    case json::kind::object: {
      auto& fields = *out.mutable_struct_value()->mutable_fields();
      for (const auto& entry : value.get_object()) {
        fields[std::string(entry.key())] = FromJson(entry.value());
      }
      break;
    }
  }
  return out;
}

google::protobuf::Struct StructFromJson(const json::object& object) {
  google::protobuf::Struct out;
  for (const auto& entry : object) {
    (*out.mutable_fields())[std::string(entry.key())] = FromJson(entry.value());
  }
  return out;
}

absl::Status WrongType(const std::string& path, std::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": not ", ToAbsl(want)));
}

// `object[key]` as a string; "" when absent or null.
absl::StatusOr<std::string> OptionalString(const json::object& object, std::string_view key,
                                           const std::string& path) {
  const json::value* value = object.if_contains(J(key));
  if (value == nullptr || value->is_null()) return std::string();
  if (!value->is_string()) return WrongType(path, "a string");
  return std::string(View(value->get_string()));
}

absl::Status MessageContentFrom(const json::value* content, const std::string& path,
                                v1::ChatMessage& message) {
  if (content == nullptr || content->is_null()) return absl::OkStatus();
  if (const json::string* text = content->if_string()) {
    if (!text->empty()) message.add_content()->set_text(std::string(View(*text)));
    return absl::OkStatus();
  }
  const json::array* parts = content->if_array();
  if (parts == nullptr) return WrongType(path, "a string or an array of parts");
  for (size_t i = 0; i < parts->size(); ++i) {
    const std::string part_path = absl::StrCat(path, "[", i, "]");
    const json::object* part = (*parts)[i].if_object();
    if (part == nullptr) return WrongType(part_path, "an object");
    const std::string_view type = wire::StringOr(*part, "type");
    if (type == "text") {
      message.add_content()->set_text(std::string(wire::StringOr(*part, "text")));
    } else if (type == "image_url") {
      v1::ImageUrl& image = *message.add_content()->mutable_image_url();
      if (const json::object* url = wire::FindObject(*part, "image_url")) {
        image.set_url(std::string(wire::StringOr(*url, "url")));
        image.set_detail(std::string(wire::StringOr(*url, "detail")));
      } else {
        image.set_url(std::string(wire::StringOr(*part, "image_url")));
      }
      if (image.url().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(part_path, ".image_url: no url"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(part_path, ".type: \"", ToAbsl(type),
                                                     "\" has no typed form (text, image_url)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ChatMessage> MessageFrom(const json::value& raw, const std::string& path) {
  const json::object* object = raw.if_object();
  if (object == nullptr) return WrongType(path, "an object");
  v1::ChatMessage message;
  const std::string_view role = wire::StringOr(*object, "role");
  message.set_role(RoleFromName(role));
  if (message.role() == v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".role: \"", ToAbsl(role), "\" is not system, user, assistant or tool"));
  }
  FLOWORK_RETURN_IF_ERROR(
      MessageContentFrom(object->if_contains("content"), path + ".content", message));
  FLOWORK_ASSIGN_OR_RETURN(*message.mutable_name(),
                           OptionalString(*object, "name", path + ".name"));
  FLOWORK_ASSIGN_OR_RETURN(*message.mutable_tool_call_id(),
                           OptionalString(*object, "tool_call_id", path + ".tool_call_id"));
  if (const json::value* calls = object->if_contains("tool_calls");
      calls != nullptr && !calls->is_null()) {
    if (!calls->is_array()) return WrongType(path + ".tool_calls", "an array");
    for (size_t i = 0; i < calls->get_array().size(); ++i) {
      const std::string call_path = absl::StrCat(path, ".tool_calls[", i, "]");
      const json::object* call = calls->get_array()[i].if_object();
      const json::object* function = call ? wire::FindObject(*call, "function") : nullptr;
      if (function == nullptr) return WrongType(call_path, "a function call");
      v1::ToolCall& out = *message.add_tool_calls();
      out.set_id(std::string(wire::StringOr(*call, "id")));
      out.set_name(std::string(wire::StringOr(*function, "name")));
      const json::value* arguments = function->if_contains("arguments");
      if (arguments != nullptr && arguments->is_string()) {
        out.set_arguments(std::string(View(arguments->get_string())));
      } else if (arguments != nullptr && !arguments->is_null()) {
        out.set_arguments(wire::Serialize(*arguments));  // Lenient: arguments as an object.
      }
    }
  }
  return message;
}

absl::Status ToolsFrom(const json::value& raw, v1::ChatRequest& request) {
  if (!raw.is_array()) return WrongType("tools", "an array");
  for (size_t i = 0; i < raw.get_array().size(); ++i) {
    const std::string path = absl::StrCat("tools[", i, "]");
    const json::object* tool = raw.get_array()[i].if_object();
    if (tool == nullptr) return WrongType(path, "an object");
    const std::string_view type = wire::StringOr(*tool, "type", "function");
    const json::object* function = wire::FindObject(*tool, "function");
    if (type != "function" || function == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": only function tools have a typed form"));
    }
    v1::ToolDefinition& out = *request.add_tools();
    out.set_name(std::string(wire::StringOr(*function, "name")));
    out.set_description(std::string(wire::StringOr(*function, "description")));
    if (const json::value* parameters = function->if_contains("parameters");
        parameters != nullptr && !parameters->is_null()) {
      if (!parameters->is_object()) return WrongType(path + ".function.parameters", "an object");
      *out.mutable_parameters() = StructFromJson(parameters->get_object());
    }
  }
  return absl::OkStatus();
}

absl::Status ToolChoiceFrom(const json::value& raw, v1::ChatRequest& request) {
  v1::ToolChoice& choice = *request.mutable_tool_choice();
  if (const json::string* mode = raw.if_string()) {
    if (*mode == "auto") {
      choice.set_mode(v1::ToolChoice::MODE_AUTO);
    } else if (*mode == "none") {
      choice.set_mode(v1::ToolChoice::MODE_NONE);
    } else if (*mode == "required") {
      choice.set_mode(v1::ToolChoice::MODE_REQUIRED);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("tool_choice: \"", ToAbsl(View(*mode)), "\" is not auto, none or required"));
    }
    return absl::OkStatus();
  }
  const json::object* object = raw.if_object();
  const json::object* function = object ? wire::FindObject(*object, "function") : nullptr;
  if (function == nullptr) return WrongType("tool_choice", "a mode or a function");
  choice.set_function(std::string(wire::StringOr(*function, "name")));
  return absl::OkStatus();
}

absl::Status ResponseFormatFrom(const json::value& raw, v1::ChatRequest& request) {
  const json::object* object = raw.if_object();
  if (object == nullptr) return WrongType("response_format", "an object");
  v1::ResponseFormat& format = *request.mutable_response_format();
  const std::string_view type = wire::StringOr(*object, "type");
  if (type == "text") {
    format.set_type(v1::ResponseFormat::TYPE_TEXT);
  } else if (type == "json_object") {
    format.set_type(v1::ResponseFormat::TYPE_JSON_OBJECT);
  } else if (type == "json_schema") {
    format.set_type(v1::ResponseFormat::TYPE_JSON_SCHEMA);
    if (const json::object* schema = wire::FindObject(*object, "json_schema")) {
      format.set_schema_name(std::string(wire::StringOr(*schema, "name")));
      if (const json::object* body = wire::FindObject(*schema, "schema")) {
        *format.mutable_schema() = StructFromJson(*body);
      }
      if (const json::value* strict = schema->if_contains("strict");
          strict != nullptr && strict->is_bool()) {
        format.set_strict(strict->get_bool());
      }
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("response_format.type: \"", ToAbsl(type),
                                                   "\" is not text, json_object or json_schema"));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Number(const json::value& value, const char* path) {
  if (!value.is_number()) return WrongType(path, "a number");
  return value.to_number<double>();
}

absl::StatusOr<v1::ChatRequest> ParseChatRequest(std::string_view body) {
  std::optional<json::value> parsed = wire::ParseJson(body);
  if (!parsed || !parsed->is_object()) {
    return absl::InvalidArgumentError("the chat request is not a JSON object");
  }
  v1::ChatRequest request;
  for (const auto& entry : parsed->get_object()) {
    const std::string_view key(entry.key().data(), entry.key().size());
    const json::value& value = entry.value();
    if (key == "stream" || key == "stream_options") continue;
    if (key == "model") {
      if (!value.is_string()) return WrongType("model", "a string");
      request.set_model(std::string(View(value.get_string())));
    } else if (key == "messages") {
      if (!value.is_array()) return WrongType("messages", "an array");
      for (size_t i = 0; i < value.get_array().size(); ++i) {
        FLOWORK_ASSIGN_OR_RETURN(
            *request.add_messages(),
            MessageFrom(value.get_array()[i], absl::StrCat("messages[", i, "]")));
      }
    } else if (key == "tools") {
      FLOWORK_RETURN_IF_ERROR(ToolsFrom(value, request));
    } else if (key == "tool_choice") {
      FLOWORK_RETURN_IF_ERROR(ToolChoiceFrom(value, request));
    } else if (key == "temperature") {
      FLOWORK_ASSIGN_OR_RETURN(double temperature, Number(value, "temperature"));
      request.set_temperature(temperature);
    } else if (key == "top_p") {
      FLOWORK_ASSIGN_OR_RETURN(double top_p, Number(value, "top_p"));
      request.set_top_p(top_p);
    } else if (key == "max_tokens") {
      std::optional<uint64_t> count = wire::FindCount(parsed->get_object(), "max_tokens");
      if (!count || *count > UINT32_MAX) return WrongType("max_tokens", "a token count");
      request.set_max_tokens(static_cast<uint32_t>(*count));
    } else if (key == "stop") {
      if (value.is_string()) {
        request.add_stop(std::string(View(value.get_string())));
      } else if (value.is_array()) {
        for (const json::value& stop : value.get_array()) {
          if (!stop.is_string()) return WrongType("stop", "a string or an array of strings");
          request.add_stop(std::string(View(stop.get_string())));
        }
      } else if (!value.is_null()) {
        return WrongType("stop", "a string or an array of strings");
      }
    } else if (key == "seed") {
      if (!value.is_int64() && !value.is_uint64()) return WrongType("seed", "an integer");
      request.set_seed(value.is_int64() ? value.get_int64()
                                        : static_cast<int64_t>(value.get_uint64()));
    } else if (key == "response_format") {
      FLOWORK_RETURN_IF_ERROR(ResponseFormatFrom(value, request));
    } else {
      (*request.mutable_extra()->mutable_fields())[std::string(key)] = FromJson(value);
    }
  }
  return request;
}

json::object UsageJson(const v1::Usage& usage) {
  json::object out{{"prompt_tokens", usage.prompt_tokens()},
                   {"completion_tokens", usage.completion_tokens()},
                   {"total_tokens", usage.total_tokens() != 0
                                        ? usage.total_tokens()
                                        : usage.prompt_tokens() + usage.completion_tokens()}};
  if (usage.cached_tokens() != 0) {
    out["prompt_tokens_details"] = json::object{{"cached_tokens", usage.cached_tokens()}};
  }
  return out;
}

std::string BuildChatCompletion(const v1::ChatResponse& response) {
  const v1::ChatMessage& message = response.message();
  json::object out_message;
  const char* role = RoleName(message.role());
  out_message["role"] = role != nullptr ? role : "assistant";
  bool text_only = true;
  for (const v1::ContentPart& part : message.content()) text_only = text_only && part.has_text();
  if (message.content_size() == 0) {
    out_message["content"] = message.tool_calls_size() > 0 ? json::value(nullptr) : json::string();
  } else if (text_only) {
    std::string text;
    for (const v1::ContentPart& part : message.content()) text += part.text();
    out_message["content"] = J(text);
  } else {
    out_message["content"] = MessageContent(message, "message").value_or(json::string());
  }
  if (message.tool_calls_size() > 0) {
    json::array calls;
    for (const v1::ToolCall& call : message.tool_calls()) {
      calls.push_back(json::object{{"id", J(call.id())},
                                   {"type", "function"},
                                   {"function", json::object{{"name", J(call.name())},
                                                             {"arguments", J(call.arguments())}}}});
    }
    out_message["tool_calls"] = std::move(calls);
  }
  json::object choice{{"index", 0}, {"message", std::move(out_message)}};
  choice["finish_reason"] = response.finish_reason().empty()
                                ? json::value(nullptr)
                                : json::value(J(response.finish_reason()));
  json::object body{{"id", J(response.id())},
                    {"object", "chat.completion"},
                    {"model", J(response.model())},
                    {"choices", json::array{std::move(choice)}}};
  if (response.has_usage()) body["usage"] = UsageJson(response.usage());
  return wire::Serialize(body);
}

absl::StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
    case 413:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 408:
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    case 409:
      return absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 499:
      return absl::StatusCode::kCancelled;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 502:
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return status >= 500 && status < 600 ? absl::StatusCode::kInternal
                                           : absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::StatusOr<std::string> OpenAiChatBody(const v1::ChatRequest& request, bool stream) {
  return wire::NoThrow("encoding the chat request", [&] { return BuildChatBody(request, stream); });
}

absl::StatusOr<std::string> OpenAiEmbeddingsBody(const v1::EmbedRequest& request) {
  return wire::NoThrow("encoding the embeddings request",
                       [&] { return BuildEmbeddingsBody(request); });
}

absl::StatusOr<v1::ChatResponse> ChatResponseFromOpenAi(std::string_view body) {
  return wire::NoThrow("decoding the chat answer", [&] { return ParseChatResponse(body); });
}

absl::StatusOr<v1::EmbedResponse> EmbedResponseFromOpenAi(std::string_view body) {
  return wire::NoThrow("decoding the embeddings answer", [&] { return ParseEmbedResponse(body); });
}

absl::StatusOr<std::optional<v1::ChatChunk>> ChatChunkFromEvent(const SseSplitter::Event& event) {
  return wire::NoThrow("decoding a streamed chunk", [&] { return ParseChunk(event); });
}

absl::StatusOr<v1::ChatRequest> ChatRequestFromOpenAi(std::string_view body) {
  return wire::NoThrow("decoding the chat request", [&] { return ParseChatRequest(body); });
}

std::string OpenAiChatCompletion(const v1::ChatResponse& response) {
  return BuildChatCompletion(response);
}

v1::ChatChunk ChunkFromResponse(const v1::ChatResponse& response) {
  v1::ChatChunk chunk;
  chunk.set_id(response.id());
  chunk.set_model(response.model());
  chunk.set_endpoint(response.endpoint());
  chunk.set_finish_reason(response.finish_reason());
  v1::ChatDelta& delta = *chunk.mutable_delta();
  delta.set_role(response.message().role());
  for (const v1::ContentPart& part : response.message().content()) {
    if (part.has_text()) delta.mutable_content()->append(part.text());
  }
  for (int i = 0; i < response.message().tool_calls_size(); ++i) {
    const v1::ToolCall& call = response.message().tool_calls(i);
    v1::ToolCallDelta& piece = *delta.add_tool_calls();
    piece.set_index(static_cast<uint32_t>(i));
    piece.set_id(call.id());
    piece.set_name(call.name());
    piece.set_arguments(call.arguments());
  }
  if (response.has_usage()) *chunk.mutable_usage() = response.usage();
  return chunk;
}

std::vector<SseSplitter::Event> SseSplitter::Feed(std::string_view bytes) {
  buffer_.append(bytes);
  std::vector<Event> events;
  size_t start = 0;
  while (true) {
    // An event ends at a blank line ("\n\n", or "\r\n\r\n" from other servers).
    size_t end = buffer_.find("\n\n", start);
    size_t skip = 2;
    if (const size_t crlf = buffer_.find("\r\n\r\n", start);
        crlf != std::string::npos && crlf < end) {
      end = crlf;
      skip = 4;
    }
    if (end == std::string::npos) break;
    Event event;
    bool any = false;
    for (absl::string_view line :
         absl::StrSplit(absl::string_view(buffer_).substr(start, end - start), '\n')) {
      line = absl::StripSuffix(line, "\r");
      if (absl::ConsumePrefix(&line, "data:")) {
        absl::ConsumePrefix(&line, " ");
        if (any) event.data.push_back('\n');
        event.data.append(line.data(), line.size());
        any = true;
      } else if (absl::ConsumePrefix(&line, "event:")) {
        event.name = std::string(absl::StripAsciiWhitespace(line));
      }
    }
    if (any || !event.name.empty()) events.push_back(std::move(event));
    start = end + skip;
  }
  buffer_.erase(0, start);
  return events;
}

std::string HeaderValue(const core::HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, ToAbsl(name))) return value;
  }
  return "";
}

GatewayFailure FailureFromAnswer(int http_status, const core::HttpHeaders& headers,
                                 std::string_view body) {
  GatewayFailure failure;
  failure.retry_after = HeaderValue(headers, "retry-after");
  std::string message;
  wire::NoThrow("decoding the error", [&]() -> absl::Status {
    std::optional<json::value> parsed = wire::ParseJson(body);
    const json::object* root = parsed ? parsed->if_object() : nullptr;
    const json::object* error = root ? wire::FindObject(*root, "error") : nullptr;
    if (error != nullptr) {
      message = std::string(wire::StringOr(*error, "message"));
      failure.error_code = std::string(wire::StringOr(*error, "code"));
    }
    return absl::OkStatus();
  }).IgnoreError();
  if (message.empty()) {
    message = absl::StrCat("the router answered HTTP ", http_status, body.empty() ? "" : ": ",
                           ToAbsl(body.substr(0, 200)));
  }
  failure.status = absl::Status(CodeForHttpStatus(http_status), message);
  return failure;
}

}  // namespace flowork::router::codec
