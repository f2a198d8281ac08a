// Request bodies: OpenAI chat -> Anthropic Messages, Anthropic Messages ->
// OpenAI chat, OpenAI chat -> Ollama /api/chat.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "providers/json_wire.h"
#include "providers/translation.h"

namespace flowork::router {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;
using wire::FindArray;
using wire::FindObject;
using wire::FindString;
using wire::J;
using wire::StringOr;
using wire::View;

absl::Status Invalid(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(ToAbsl(path), ": ", ToAbsl(problem)));
}

std::string Quoted(std::string_view s) { return absl::StrCat("\"", ToAbsl(s), "\""); }

const json::value* Find(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(J(key));
  return value != nullptr && !value->is_null() ? value : nullptr;
}

// ---- Shared field readers ---------------------------------------------------

// Copies a number field (temperature, top_p) to `out[out_key]` when present.
absl::Status CopyNumber(const json::object& in, std::string_view key, json::object& out,
                        std::string_view out_key) {
  const json::value* value = Find(in, key);
  if (value == nullptr) return absl::OkStatus();
  if (!value->is_number()) return Invalid(key, "expected a number");
  out[J(out_key)] = *value;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> OptionalCount(const json::object& in,
                                                      std::string_view key) {
  if (Find(in, key) == nullptr) return std::optional<uint64_t>();
  std::optional<uint64_t> count = wire::FindCount(in, key);
  if (!count.has_value()) return Invalid(key, "expected a non-negative integer");
  return count;
}

absl::StatusOr<std::optional<bool>> OptionalBool(const json::object& in, std::string_view key) {
  const json::value* value = Find(in, key);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_bool()) return Invalid(key, "expected true or false");
  return value->get_bool();
}

// OpenAI's max_completion_tokens, or the older max_tokens.
absl::StatusOr<std::optional<uint64_t>> OpenAiMaxTokens(const json::object& request) {
  FLOWORK_ASSIGN_OR_RETURN(std::optional<uint64_t> completion,
                           OptionalCount(request, "max_completion_tokens"));
  FLOWORK_ASSIGN_OR_RETURN(std::optional<uint64_t> max_tokens,
                           OptionalCount(request, "max_tokens"));
  return completion.has_value() ? completion : max_tokens;
}

// OpenAI "stop": a string or an array of strings.
absl::StatusOr<std::optional<json::array>> OpenAiStop(const json::object& request) {
  const json::value* stop = Find(request, "stop");
  if (stop == nullptr) return std::optional<json::array>();
  if (stop->is_string()) return json::array{*stop};
  const json::array* list = stop->if_array();
  if (list == nullptr) return Invalid("stop", "expected a string or an array of strings");
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) return Invalid(absl::StrCat("stop[", i, "]"), "expected a string");
  }
  return *list;
}

// A "data:<media type>;base64,<data>" URL.
struct Base64Image {
  std::string_view media_type;
  std::string_view data;
};

std::optional<Base64Image> ParseBase64DataUrl(std::string_view url) {
  constexpr std::string_view kScheme = "data:";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  std::string_view meta = url.substr(kScheme.size(), comma - kScheme.size());
  constexpr std::string_view kBase64 = ";base64";
  if (meta.size() < kBase64.size() || meta.substr(meta.size() - kBase64.size()) != kBase64) {
    return std::nullopt;
  }
  return Base64Image{.media_type = meta.substr(0, meta.find(';')), .data = url.substr(comma + 1)};
}

bool IsHttpUrl(std::string_view url) {
  return url.substr(0, 7) == "http://" || url.substr(0, 8) == "https://";
}

// The URL of an OpenAI image_url part ({"url": ...} or, from older
// clients, the URL string itself).
absl::StatusOr<std::string_view> ImageUrl(const json::object& part, std::string_view path) {
  const json::value* image = Find(part, "image_url");
  if (image != nullptr && image->is_string()) return View(image->get_string());
  const json::string* url =
      image != nullptr && image->is_object() ? FindString(image->get_object(), "url") : nullptr;
  if (url == nullptr)
    return Invalid(absl::StrCat(ToAbsl(path), ".image_url.url"), "expected a string");
  return View(*url);
}

// ---- OpenAI -> Anthropic ------------------------------------------------------

// An OpenAI content part -> an Anthropic content block. std::nullopt for an
// empty text part (Anthropic rejects empty text blocks).
absl::StatusOr<std::optional<json::object>> AnthropicBlock(const json::value& value,
                                                           const std::string& path) {
  const json::object* part = value.if_object();
  if (part == nullptr) return Invalid(path, "expected a content part object");
  const std::string_view type = StringOr(*part, "type");
  if (type == "text") {
    const json::string* text = FindString(*part, "text");
    if (text == nullptr) return Invalid(absl::StrCat(path, ".text"), "expected a string");
    if (text->empty()) return std::optional<json::object>();
    return json::object{{"type", "text"}, {"text", *text}};
  }
  if (type == "image_url") {
    FLOWORK_ASSIGN_OR_RETURN(std::string_view url, ImageUrl(*part, path));
    if (std::optional<Base64Image> image = ParseBase64DataUrl(url)) {
      return json::object{
          {"type", "image"},
          {"source",
           {{"type", "base64"}, {"media_type", J(image->media_type)}, {"data", J(image->data)}}}};
    }
    if (IsHttpUrl(url)) {
      return json::object{{"type", "image"}, {"source", {{"type", "url"}, {"url", J(url)}}}};
    }
    return Invalid(absl::StrCat(path, ".image_url.url"),
                   "expected an http(s) URL or a base64 data URL");
  }
  return Invalid(absl::StrCat(path, ".type"),
                 absl::StrCat("unsupported content part ", Quoted(type)));
}

// OpenAI user or tool content -> Anthropic content (a string stays a string).
absl::StatusOr<json::value> AnthropicContent(const json::value* content, const std::string& path) {
  if (content == nullptr) return json::value("");
  if (content->is_string()) return *content;
  const json::array* parts = content->if_array();
  if (parts == nullptr) return Invalid(path, "expected a string or an array of content parts");
  json::array blocks;
  for (size_t j = 0; j < parts->size(); ++j) {
    FLOWORK_ASSIGN_OR_RETURN(std::optional<json::object> block,
                             AnthropicBlock((*parts)[j], absl::StrCat(path, "[", j, "]")));
    if (block.has_value()) blocks.push_back(std::move(*block));
  }
  return blocks;
}

// An assistant message: text and tool calls -> text and tool_use blocks.
absl::StatusOr<json::object> AnthropicAssistantMessage(const json::object& message,
                                                       const std::string& path) {
  const json::value* content = Find(message, "content");
  std::string text;
  if (content != nullptr) {
    FLOWORK_ASSIGN_OR_RETURN(text,
                             wire::OpenAiContentText(*content, absl::StrCat(path, ".content"), ""));
  }
  const json::value* calls_value = Find(message, "tool_calls");
  if (calls_value == nullptr || (calls_value->is_array() && calls_value->get_array().empty())) {
    return json::object{{"role", "assistant"}, {"content", text}};
  }
  const json::array* calls = calls_value->if_array();
  if (calls == nullptr) return Invalid(absl::StrCat(path, ".tool_calls"), "expected an array");
  json::array blocks;
  if (!text.empty()) blocks.push_back(json::object{{"type", "text"}, {"text", text}});
  for (size_t j = 0; j < calls->size(); ++j) {
    const std::string call_path = absl::StrCat(path, ".tool_calls[", j, "]");
    const json::object* call = (*calls)[j].if_object();
    if (call == nullptr) return Invalid(call_path, "expected an object");
    const json::string* id = FindString(*call, "id");
    if (id == nullptr) return Invalid(absl::StrCat(call_path, ".id"), "expected a string");
    const json::object* function = FindObject(*call, "function");
    if (function == nullptr) {
      return Invalid(absl::StrCat(call_path, ".function"), "expected an object");
    }
    const json::string* name = FindString(*function, "name");
    if (name == nullptr) {
      return Invalid(absl::StrCat(call_path, ".function.name"), "expected a string");
    }
    FLOWORK_ASSIGN_OR_RETURN(
        json::object input,
        wire::ParseToolArguments(function->if_contains("arguments"),
                                 absl::StrCat(call_path, ".function.arguments")));
    blocks.push_back(json::object{
        {"type", "tool_use"}, {"id", *id}, {"name", *name}, {"input", std::move(input)}});
  }
  return json::object{{"role", "assistant"}, {"content", std::move(blocks)}};
}

absl::StatusOr<json::array> AnthropicTools(const json::value& tools_value) {
  const json::array* tools = tools_value.if_array();
  if (tools == nullptr) return Invalid("tools", "expected an array");
  json::array out;
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string path = absl::StrCat("tools[", i, "]");
    const json::object* tool = tools->at(i).if_object();
    if (tool == nullptr) return Invalid(path, "expected an object");
    const std::string_view type = StringOr(*tool, "type", "function");
    if (type != "function") {
      return Invalid(absl::StrCat(path, ".type"),
                     absl::StrCat("unsupported tool type ", Quoted(type)));
    }
    const json::object* function = FindObject(*tool, "function");
    if (function == nullptr) return Invalid(absl::StrCat(path, ".function"), "expected an object");
    const json::string* name = FindString(*function, "name");
    if (name == nullptr) {
      return Invalid(absl::StrCat(path, ".function.name"), "expected a string");
    }
    json::object converted{{"name", *name}};
    if (const json::string* description = FindString(*function, "description")) {
      converted["description"] = *description;
    }
    const json::value* parameters = Find(*function, "parameters");
    if (parameters != nullptr && !parameters->is_object()) {
      return Invalid(absl::StrCat(path, ".function.parameters"), "expected an object");
    }
    converted["input_schema"] =
        parameters != nullptr ? *parameters
                              : json::value{{"type", "object"}, {"properties", json::object()}};
    out.push_back(std::move(converted));
  }
  return out;
}

absl::StatusOr<json::object> AnthropicToolChoice(const json::value& choice) {
  if (const json::string* mode = choice.if_string(); mode != nullptr) {
    if (*mode == "auto") return json::object{{"type", "auto"}};
    if (*mode == "none") return json::object{{"type", "none"}};
    if (*mode == "required") return json::object{{"type", "any"}};
  }
  if (const json::object* object = choice.if_object(); object != nullptr) {
    const json::object* function = FindObject(*object, "function");
    const json::string* name = function != nullptr ? FindString(*function, "name") : nullptr;
    if (name != nullptr) return json::object{{"type", "tool"}, {"name", *name}};
    return Invalid("tool_choice.function.name", "expected a string");
  }
  return Invalid("tool_choice", "expected \"auto\", \"none\", \"required\" or a function choice");
}

absl::StatusOr<std::string> ToAnthropicRequest(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object request, wire::ParseBodyObject(body));
  const json::array* list = FindArray(request, "messages");
  if (list == nullptr) return Invalid("messages", "expected an array");

  std::vector<std::string> system;
  json::array messages;
  bool last_holds_tool_results = false;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = absl::StrCat("messages[", i, "]");
    const json::object* message = (*list)[i].if_object();
    if (message == nullptr) return Invalid(path, "expected an object");
    const json::string* role_value = FindString(*message, "role");
    if (role_value == nullptr) return Invalid(absl::StrCat(path, ".role"), "expected a string");
    const std::string_view role = View(*role_value);
    const json::value* content = Find(*message, "content");
    const std::string content_path = absl::StrCat(path, ".content");
    if (role == "system" || role == "developer") {
      if (content == nullptr) continue;
      FLOWORK_ASSIGN_OR_RETURN(std::string text,
                               wire::OpenAiContentText(*content, content_path, "\n\n"));
      if (!text.empty()) system.push_back(std::move(text));
      continue;
    }
    if (role == "user") {
      FLOWORK_ASSIGN_OR_RETURN(json::value converted, AnthropicContent(content, content_path));
      if (last_holds_tool_results) {
        // What the user adds after tool results joins their turn, after them.
        json::array& blocks = messages.back().get_object()["content"].get_array();
        if (const json::string* text = converted.if_string()) {
          if (!text->empty()) blocks.push_back(json::object{{"type", "text"}, {"text", *text}});
        } else {
          for (json::value& block : converted.get_array()) blocks.push_back(std::move(block));
        }
      } else {
        messages.push_back(json::object{{"role", "user"}, {"content", std::move(converted)}});
      }
      last_holds_tool_results = false;
    } else if (role == "assistant") {
      FLOWORK_ASSIGN_OR_RETURN(json::object converted, AnthropicAssistantMessage(*message, path));
      messages.push_back(std::move(converted));
      last_holds_tool_results = false;
    } else if (role == "tool") {
      const json::string* call_id = FindString(*message, "tool_call_id");
      if (call_id == nullptr) {
        return Invalid(absl::StrCat(path, ".tool_call_id"), "expected a string");
      }
      FLOWORK_ASSIGN_OR_RETURN(json::value result, AnthropicContent(content, content_path));
      json::object block{
          {"type", "tool_result"}, {"tool_use_id", *call_id}, {"content", std::move(result)}};
      // Consecutive tool results answer one assistant turn: one user message.
      if (last_holds_tool_results) {
        messages.back().get_object()["content"].get_array().push_back(std::move(block));
      } else {
        messages.push_back(
            json::object{{"role", "user"}, {"content", json::array{std::move(block)}}});
        last_holds_tool_results = true;
      }
    } else {
      return Invalid(absl::StrCat(path, ".role"), absl::StrCat("unsupported role ", Quoted(role)));
    }
  }

  FLOWORK_ASSIGN_OR_RETURN(std::optional<uint64_t> max_tokens, OpenAiMaxTokens(request));
  json::object out;
  out["model"] = J(model);
  out["max_tokens"] = max_tokens.value_or(4096);  // Anthropic requires it.
  if (!system.empty()) out["system"] = absl::StrJoin(system, "\n\n");
  out["messages"] = std::move(messages);
  const json::value* tools = Find(request, "tools");
  if (tools != nullptr) {
    FLOWORK_ASSIGN_OR_RETURN(json::array converted, AnthropicTools(*tools));
    if (!converted.empty()) out["tools"] = std::move(converted);
  }
  std::optional<json::object> tool_choice;
  if (const json::value* choice = Find(request, "tool_choice")) {
    FLOWORK_ASSIGN_OR_RETURN(tool_choice, AnthropicToolChoice(*choice));
  }
  FLOWORK_ASSIGN_OR_RETURN(std::optional<bool> parallel,
                           OptionalBool(request, "parallel_tool_calls"));
  if (parallel == false) {
    if (!tool_choice.has_value()) tool_choice = json::object{{"type", "auto"}};
    if (StringOr(*tool_choice, "type") != "none") {
      (*tool_choice)["disable_parallel_tool_use"] = true;
    }
  }
  // Anthropic refuses tool_choice without tools.
  if (tool_choice.has_value() && out.contains("tools")) out["tool_choice"] = *tool_choice;
  FLOWORK_ASSIGN_OR_RETURN(std::optional<json::array> stop, OpenAiStop(request));
  if (stop.has_value()) out["stop_sequences"] = std::move(*stop);
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "temperature", out, "temperature"));
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "top_p", out, "top_p"));
  FLOWORK_ASSIGN_OR_RETURN(std::optional<bool> stream, OptionalBool(request, "stream"));
  if (stream.has_value()) out["stream"] = *stream;
  if (const json::value* user = Find(request, "user"); user != nullptr && user->is_string()) {
    out["metadata"] = {{"user_id", *user}};
  }
  return wire::Serialize(out);
}

// ---- Anthropic -> OpenAI --------------------------------------------------

// Anthropic system: a string or text blocks.
absl::StatusOr<std::string> AnthropicSystemText(const json::value& system) {
  if (system.is_string()) return std::string(View(system.get_string()));
  const json::array* blocks = system.if_array();
  if (blocks == nullptr) return Invalid("system", "expected a string or an array of text blocks");
  std::string joined;
  for (size_t i = 0; i < blocks->size(); ++i) {
    const json::object* block = (*blocks)[i].if_object();
    const json::string* text = block != nullptr ? FindString(*block, "text") : nullptr;
    if (text == nullptr || StringOr(*block, "type") != "text") {
      return Invalid(absl::StrCat("system[", i, "]"), "expected a text block");
    }
    if (text->empty()) continue;
    if (!joined.empty()) joined += "\n\n";
    joined += View(*text);
  }
  return joined;
}

absl::StatusOr<json::object> OpenAiImagePart(const json::object& block, const std::string& path) {
  const json::object* source = FindObject(block, "source");
  if (source == nullptr) return Invalid(absl::StrCat(path, ".source"), "expected an object");
  const std::string_view type = StringOr(*source, "type");
  std::string url;
  if (type == "base64") {
    const json::string* media_type = FindString(*source, "media_type");
    const json::string* data = FindString(*source, "data");
    if (media_type == nullptr) {
      return Invalid(absl::StrCat(path, ".source.media_type"), "expected a string");
    }
    if (data == nullptr) return Invalid(absl::StrCat(path, ".source.data"), "expected a string");
    url = absl::StrCat("data:", ToAbsl(View(*media_type)), ";base64,", ToAbsl(View(*data)));
  } else if (type == "url") {
    const json::string* source_url = FindString(*source, "url");
    if (source_url == nullptr) {
      return Invalid(absl::StrCat(path, ".source.url"), "expected a string");
    }
    url = View(*source_url);
  } else {
    return Invalid(absl::StrCat(path, ".source.type"), "expected \"base64\" or \"url\"");
  }
  return json::object{{"type", "image_url"}, {"image_url", {{"url", url}}}};
}

// A tool_result's content -> an OpenAI tool message's content.
absl::StatusOr<json::value> OpenAiToolResultContent(const json::object& block,
                                                    const std::string& path) {
  const json::value* content = Find(block, "content");
  if (content == nullptr) return json::value("");
  if (content->is_string()) return *content;
  const json::array* blocks = content->if_array();
  if (blocks == nullptr) {
    return Invalid(absl::StrCat(path, ".content"), "expected a string or an array of blocks");
  }
  json::array parts;
  for (size_t k = 0; k < blocks->size(); ++k) {
    const json::object* inner = (*blocks)[k].if_object();
    const json::string* text = inner != nullptr ? FindString(*inner, "text") : nullptr;
    if (text == nullptr || StringOr(*inner, "type") != "text") {
      return Invalid(absl::StrCat(path, ".content[", k, "]"),
                     "OpenAI tool results carry only text blocks");
    }
    parts.push_back(json::object{{"type", "text"}, {"text", *text}});
  }
  return parts;
}

// One Anthropic user message -> OpenAI tool messages (its tool results,
// which must follow the assistant's calls directly) then a user message.
absl::Status AppendOpenAiUserMessages(const json::array& blocks, const std::string& path,
                                      json::array& messages) {
  json::array parts;
  for (size_t j = 0; j < blocks.size(); ++j) {
    const std::string block_path = absl::StrCat(path, ".content[", j, "]");
    const json::object* block = blocks[j].if_object();
    if (block == nullptr) return Invalid(block_path, "expected an object");
    const std::string_view type = StringOr(*block, "type");
    if (type == "text") {
      const json::string* text = FindString(*block, "text");
      if (text == nullptr) return Invalid(absl::StrCat(block_path, ".text"), "expected a string");
      parts.push_back(json::object{{"type", "text"}, {"text", *text}});
    } else if (type == "image") {
      FLOWORK_ASSIGN_OR_RETURN(json::object part, OpenAiImagePart(*block, block_path));
      parts.push_back(std::move(part));
    } else if (type == "tool_result") {
      const json::string* id = FindString(*block, "tool_use_id");
      if (id == nullptr) {
        return Invalid(absl::StrCat(block_path, ".tool_use_id"), "expected a string");
      }
      FLOWORK_ASSIGN_OR_RETURN(json::value content, OpenAiToolResultContent(*block, block_path));
      messages.push_back(
          json::object{{"role", "tool"}, {"tool_call_id", *id}, {"content", std::move(content)}});
    } else {
      return Invalid(absl::StrCat(block_path, ".type"),
                     absl::StrCat("unsupported block type ", Quoted(type)));
    }
  }
  if (!parts.empty()) messages.push_back(json::object{{"role", "user"}, {"content", parts}});
  return absl::OkStatus();
}

absl::StatusOr<json::object> OpenAiAssistantMessage(const json::array& blocks,
                                                    const std::string& path) {
  std::string text;
  json::array calls;
  for (size_t j = 0; j < blocks.size(); ++j) {
    const std::string block_path = absl::StrCat(path, ".content[", j, "]");
    const json::object* block = blocks[j].if_object();
    if (block == nullptr) return Invalid(block_path, "expected an object");
    const std::string_view type = StringOr(*block, "type");
    if (type == "text") {
      const json::string* piece = FindString(*block, "text");
      if (piece == nullptr) return Invalid(absl::StrCat(block_path, ".text"), "expected a string");
      text += View(*piece);
    } else if (type == "tool_use") {
      const json::string* id = FindString(*block, "id");
      if (id == nullptr) return Invalid(absl::StrCat(block_path, ".id"), "expected a string");
      const json::string* name = FindString(*block, "name");
      if (name == nullptr) return Invalid(absl::StrCat(block_path, ".name"), "expected a string");
      const json::value* input = Find(*block, "input");
      if (input != nullptr && !input->is_object()) {
        return Invalid(absl::StrCat(block_path, ".input"), "expected an object");
      }
      calls.push_back(json::object{
          {"id", *id},
          {"type", "function"},
          {"function",
           {{"name", *name},
            {"arguments", input != nullptr ? wire::Serialize(*input) : std::string("{}")}}}});
    } else if (type == "thinking" || type == "redacted_thinking") {
      continue;  // OpenAI has no place for them; the model does not need them back.
    } else {
      return Invalid(absl::StrCat(block_path, ".type"),
                     absl::StrCat("unsupported block type ", Quoted(type)));
    }
  }
  json::object message{{"role", "assistant"}};
  if (calls.empty()) {
    message["content"] = text;
  } else {
    message["content"] = text.empty() ? json::value(nullptr) : json::value(text);
    message["tool_calls"] = std::move(calls);
  }
  return message;
}

absl::StatusOr<json::array> OpenAiTools(const json::value& tools_value) {
  const json::array* tools = tools_value.if_array();
  if (tools == nullptr) return Invalid("tools", "expected an array");
  json::array out;
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string path = absl::StrCat("tools[", i, "]");
    const json::object* tool = (*tools)[i].if_object();
    if (tool == nullptr) return Invalid(path, "expected an object");
    const std::string_view type = StringOr(*tool, "type", "custom");
    if (type != "custom") {
      return Invalid(absl::StrCat(path, ".type"),
                     absl::StrCat("unsupported tool type ", Quoted(type)));
    }
    const json::string* name = FindString(*tool, "name");
    if (name == nullptr) return Invalid(absl::StrCat(path, ".name"), "expected a string");
    json::object function{{"name", *name}};
    if (const json::string* description = FindString(*tool, "description")) {
      function["description"] = *description;
    }
    const json::value* schema = Find(*tool, "input_schema");
    if (schema != nullptr && !schema->is_object()) {
      return Invalid(absl::StrCat(path, ".input_schema"), "expected an object");
    }
    function["parameters"] = schema != nullptr
                                 ? *schema
                                 : json::value{{"type", "object"}, {"properties", json::object()}};
    out.push_back(json::object{{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

absl::StatusOr<std::string> ToOpenAiRequest(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object request, wire::ParseBodyObject(body));
  json::array messages;
  if (const json::value* system = Find(request, "system")) {
    FLOWORK_ASSIGN_OR_RETURN(std::string text, AnthropicSystemText(*system));
    if (!text.empty()) messages.push_back(json::object{{"role", "system"}, {"content", text}});
  }
  const json::array* list = FindArray(request, "messages");
  if (list == nullptr) return Invalid("messages", "expected an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = absl::StrCat("messages[", i, "]");
    const json::object* message = (*list)[i].if_object();
    if (message == nullptr) return Invalid(path, "expected an object");
    const std::string_view role = StringOr(*message, "role");
    if (role != "user" && role != "assistant") {
      return Invalid(absl::StrCat(path, ".role"), "expected \"user\" or \"assistant\"");
    }
    const json::value* content = Find(*message, "content");
    if (content != nullptr && content->is_string()) {
      messages.push_back(json::object{{"role", J(role)}, {"content", *content}});
      continue;
    }
    if (content == nullptr || !content->is_array()) {
      return Invalid(absl::StrCat(path, ".content"),
                     "expected a string or an array of content blocks");
    }
    if (role == "user") {
      FLOWORK_RETURN_IF_ERROR(AppendOpenAiUserMessages(content->get_array(), path, messages));
    } else {
      FLOWORK_ASSIGN_OR_RETURN(json::object converted,
                               OpenAiAssistantMessage(content->get_array(), path));
      messages.push_back(std::move(converted));
    }
  }

  json::object out;
  out["model"] = J(model);
  out["messages"] = std::move(messages);
  FLOWORK_ASSIGN_OR_RETURN(std::optional<uint64_t> max_tokens,
                           OptionalCount(request, "max_tokens"));
  if (max_tokens.has_value()) out["max_tokens"] = *max_tokens;
  if (const json::value* stop = Find(request, "stop_sequences")) {
    const json::array* sequences = stop->if_array();
    if (sequences == nullptr) return Invalid("stop_sequences", "expected an array of strings");
    for (size_t i = 0; i < sequences->size(); ++i) {
      if (!(*sequences)[i].is_string()) {
        return Invalid(absl::StrCat("stop_sequences[", i, "]"), "expected a string");
      }
    }
    if (!sequences->empty()) out["stop"] = *sequences;
  }
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "temperature", out, "temperature"));
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "top_p", out, "top_p"));
  FLOWORK_ASSIGN_OR_RETURN(std::optional<bool> stream, OptionalBool(request, "stream"));
  if (stream.has_value()) {
    out["stream"] = *stream;
    // Anthropic streams always end with usage; ask OpenAI for it too.
    if (*stream) out["stream_options"] = {{"include_usage", true}};
  }
  if (const json::value* tools = Find(request, "tools")) {
    FLOWORK_ASSIGN_OR_RETURN(json::array converted, OpenAiTools(*tools));
    if (!converted.empty()) out["tools"] = std::move(converted);
  }
  if (const json::value* choice_value = Find(request, "tool_choice")) {
    const json::object* choice = choice_value->if_object();
    if (choice == nullptr) return Invalid("tool_choice", "expected an object");
    const std::string_view type = StringOr(*choice, "type");
    if (type == "auto") {
      out["tool_choice"] = "auto";
    } else if (type == "any") {
      out["tool_choice"] = "required";
    } else if (type == "none") {
      out["tool_choice"] = "none";
    } else if (type == "tool") {
      const json::string* name = FindString(*choice, "name");
      if (name == nullptr) return Invalid("tool_choice.name", "expected a string");
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", *name}}}};
    } else {
      return Invalid("tool_choice.type", "expected \"auto\", \"any\", \"tool\" or \"none\"");
    }
    FLOWORK_ASSIGN_OR_RETURN(std::optional<bool> serial,
                             OptionalBool(*choice, "disable_parallel_tool_use"));
    if (serial == true && out.contains("tools")) out["parallel_tool_calls"] = false;
  }
  if (const json::object* metadata = FindObject(request, "metadata")) {
    if (const json::string* user = FindString(*metadata, "user_id")) out["user"] = *user;
  }
  return wire::Serialize(out);
}

// ---- OpenAI -> Ollama -------------------------------------------------------

// OpenAI content -> Ollama's text and base64 images.
absl::Status OllamaContent(const json::value* content, const std::string& path,
                           json::object& message) {
  json::array images;
  std::string text;
  if (content != nullptr && content->is_string()) {
    text = View(content->get_string());
  } else if (content != nullptr && content->is_array()) {
    const json::array& parts = content->get_array();
    for (size_t j = 0; j < parts.size(); ++j) {
      const std::string part_path = absl::StrCat(path, "[", j, "]");
      const json::object* part = parts[j].if_object();
      if (part == nullptr) return Invalid(part_path, "expected a content part object");
      const std::string_view type = StringOr(*part, "type");
      if (type == "text") {
        const json::string* piece = FindString(*part, "text");
        if (piece == nullptr) {
          return Invalid(absl::StrCat(part_path, ".text"), "expected a string");
        }
        if (!text.empty() && !piece->empty()) text += "\n";
        text += View(*piece);
      } else if (type == "image_url") {
        FLOWORK_ASSIGN_OR_RETURN(std::string_view url, ImageUrl(*part, part_path));
        std::optional<Base64Image> image = ParseBase64DataUrl(url);
        if (!image.has_value()) {
          return Invalid(absl::StrCat(part_path, ".image_url.url"),
                         "Ollama accepts only base64 data URLs");
        }
        images.push_back(J(image->data));
      } else {
        return Invalid(absl::StrCat(part_path, ".type"),
                       absl::StrCat("unsupported content part ", Quoted(type)));
      }
    }
  } else if (content != nullptr) {
    return Invalid(path, "expected a string or an array of content parts");
  }
  message["content"] = text;
  if (!images.empty()) message["images"] = std::move(images);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ToOllamaRequest(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object request, wire::ParseBodyObject(body));
  const json::array* list = FindArray(request, "messages");
  if (list == nullptr) return Invalid("messages", "expected an array");
  json::array messages;
  absl::flat_hash_map<std::string, std::string> tool_names;  // Call id -> name.
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = absl::StrCat("messages[", i, "]");
    const json::object* message = (*list)[i].if_object();
    if (message == nullptr) return Invalid(path, "expected an object");
    const json::string* role_value = FindString(*message, "role");
    if (role_value == nullptr) return Invalid(absl::StrCat(path, ".role"), "expected a string");
    std::string_view role = View(*role_value);
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return Invalid(absl::StrCat(path, ".role"), absl::StrCat("unsupported role ", Quoted(role)));
    }
    json::object converted{{"role", J(role)}};
    FLOWORK_RETURN_IF_ERROR(
        OllamaContent(Find(*message, "content"), absl::StrCat(path, ".content"), converted));
    if (role == "assistant") {
      const json::value* calls_value = Find(*message, "tool_calls");
      const json::array* calls = calls_value != nullptr ? calls_value->if_array() : nullptr;
      if (calls_value != nullptr && calls == nullptr) {
        return Invalid(absl::StrCat(path, ".tool_calls"), "expected an array");
      }
      json::array ollama_calls;
      for (size_t j = 0; calls != nullptr && j < calls->size(); ++j) {
        const std::string call_path = absl::StrCat(path, ".tool_calls[", j, "]");
        const json::object* call = (*calls)[j].if_object();
        const json::object* function = call != nullptr ? FindObject(*call, "function") : nullptr;
        if (function == nullptr) {
          return Invalid(absl::StrCat(call_path, ".function"), "expected an object");
        }
        const json::string* name = FindString(*function, "name");
        if (name == nullptr) {
          return Invalid(absl::StrCat(call_path, ".function.name"), "expected a string");
        }
        FLOWORK_ASSIGN_OR_RETURN(
            json::object arguments,
            wire::ParseToolArguments(function->if_contains("arguments"),
                                     absl::StrCat(call_path, ".function.arguments")));
        if (const json::string* id = FindString(*call, "id")) {
          tool_names[std::string(View(*id))] = std::string(View(*name));
        }
        ollama_calls.push_back(
            json::object{{"function", {{"name", *name}, {"arguments", std::move(arguments)}}}});
      }
      if (!ollama_calls.empty()) converted["tool_calls"] = std::move(ollama_calls);
    }
    if (role == "tool") {
      // Ollama matches results to calls by name, not id.
      const json::string* id = FindString(*message, "tool_call_id");
      auto name = id != nullptr ? tool_names.find(std::string(View(*id))) : tool_names.end();
      if (name != tool_names.end()) converted["tool_name"] = name->second;
    }
    messages.push_back(std::move(converted));
  }

  json::object out;
  out["model"] = J(model);
  out["messages"] = std::move(messages);
  if (const json::value* tools = Find(request, "tools")) {
    if (!tools->is_array()) return Invalid("tools", "expected an array");
    if (!tools->get_array().empty()) out["tools"] = *tools;  // Ollama takes OpenAI's shape.
  }
  FLOWORK_ASSIGN_OR_RETURN(std::optional<bool> stream, OptionalBool(request, "stream"));
  out["stream"] = stream.value_or(false);  // Ollama's default is true; OpenAI's is false.
  if (const json::object* format = FindObject(request, "response_format")) {
    const std::string_view type = StringOr(*format, "type");
    if (type == "json_object") {
      out["format"] = "json";
    } else if (type == "json_schema") {
      const json::object* spec = FindObject(*format, "json_schema");
      const json::object* schema = spec != nullptr ? FindObject(*spec, "schema") : nullptr;
      if (schema == nullptr) {
        return Invalid("response_format.json_schema.schema", "expected an object");
      }
      out["format"] = *schema;
    }
  }
  json::object options;
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "temperature", options, "temperature"));
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "top_p", options, "top_p"));
  FLOWORK_ASSIGN_OR_RETURN(std::optional<uint64_t> max_tokens, OpenAiMaxTokens(request));
  if (max_tokens.has_value()) options["num_predict"] = *max_tokens;
  FLOWORK_ASSIGN_OR_RETURN(std::optional<json::array> stop, OpenAiStop(request));
  if (stop.has_value()) options["stop"] = std::move(*stop);
  FLOWORK_RETURN_IF_ERROR(CopyNumber(request, "seed", options, "seed"));
  if (!options.empty()) out["options"] = std::move(options);
  return wire::Serialize(out);
}

}  // namespace

absl::StatusOr<std::string> OpenAiChatRequestToAnthropic(std::string_view body,
                                                         std::string_view model) {
  return wire::NoThrow("translating an OpenAI request to Anthropic",
                       [&] { return ToAnthropicRequest(body, model); });
}

absl::StatusOr<std::string> AnthropicRequestToOpenAiChat(std::string_view body,
                                                         std::string_view model) {
  return wire::NoThrow("translating an Anthropic request to OpenAI",
                       [&] { return ToOpenAiRequest(body, model); });
}

absl::StatusOr<std::string> OpenAiChatRequestToOllama(std::string_view body,
                                                      std::string_view model) {
  return wire::NoThrow("translating an OpenAI request to Ollama",
                       [&] { return ToOllamaRequest(body, model); });
}

}  // namespace flowork::router
