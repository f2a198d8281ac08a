#include "providers/json_wire.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::router::wire {
namespace {

using core::internal::ToAbsl;

// Deep enough for real tool schemas; Boost's default (32) is not always.
constexpr std::size_t kMaxDepth = 128;

void AppendDouble(double d, std::string& out) {
  if (!std::isfinite(d)) {
    out += "null";  // JSON has no spelling for these.
    return;
  }
  char buffer[64];
  std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), d);
  std::string_view text(buffer, static_cast<size_t>(result.ptr - buffer));
  out += text;
  // Keep it a float in the reader's eyes: 1.0 stays 1.0, not 1.
  if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

void Append(const json::value& value, std::string& out) {
  switch (value.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      absl::StrAppend(&out, value.get_int64());
      return;
    case json::kind::uint64:
      absl::StrAppend(&out, value.get_uint64());
      return;
    case json::kind::double_:
      AppendDouble(value.get_double(), out);
      return;
    case json::kind::string:
      out += json::serialize(value.get_string());
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const json::value& element : value.get_array()) {
        if (!first) out += ',';
        first = false;
        Append(element, out);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const json::key_value_pair& member : value.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(member.key());
        out += ':';
        Append(member.value(), out);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string Serialize(const json::value& value) {
  std::string out;
  Append(value, out);
  return out;
}

std::string SerializeWith(const json::value& value, std::string_view suffix) {
  std::string out;
  Append(value, out);
  out += suffix;
  return out;
}

std::optional<json::value> ParseJson(std::string_view text) {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  json::error_code error;
  json::value value =
      json::parse(json::string_view(text.data(), text.size()), error, json::storage_ptr(), options);
  if (error) return std::nullopt;
  return value;
}

absl::StatusOr<json::object> ParseBodyObject(std::string_view body) {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  json::error_code error;
  json::value value =
      json::parse(json::string_view(body.data(), body.size()), error, json::storage_ptr(), options);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat("body: invalid JSON (", error.message(), ")"));
  }
  if (!value.is_object()) return absl::InvalidArgumentError("body: expected a JSON object");
  return std::move(value.get_object());
}

const json::object* FindObject(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(json::string_view(key.data(), key.size()));
  return value != nullptr ? value->if_object() : nullptr;
}

const json::array* FindArray(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(json::string_view(key.data(), key.size()));
  return value != nullptr ? value->if_array() : nullptr;
}

const json::string* FindString(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(json::string_view(key.data(), key.size()));
  return value != nullptr ? value->if_string() : nullptr;
}

std::string_view StringOr(const json::object& object, std::string_view key,
                          std::string_view fallback) {
  const json::string* value = FindString(object, key);
  return value != nullptr ? View(*value) : fallback;
}

std::optional<uint64_t> FindCount(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(json::string_view(key.data(), key.size()));
  if (value == nullptr) return std::nullopt;
  if (const uint64_t* u = value->if_uint64(); u != nullptr) return *u;
  if (const int64_t* i = value->if_int64(); i != nullptr && *i >= 0) {
    return static_cast<uint64_t>(*i);
  }
  if (const double* d = value->if_double();
      d != nullptr && *d >= 0 && *d < 1.8e19 && std::floor(*d) == *d) {
    return static_cast<uint64_t>(*d);
  }
  return std::nullopt;
}

std::string_view FinishReasonFromStopReason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn.
}

std::string_view StopReasonFromFinishReason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

TokenUsage ReadOpenAiUsage(const json::object& usage) {
  TokenUsage counts;
  counts.reported = true;
  counts.prompt_tokens = FindCount(usage, "prompt_tokens").value_or(0);
  counts.completion_tokens = FindCount(usage, "completion_tokens").value_or(0);
  if (const json::object* details = FindObject(usage, "prompt_tokens_details");
      details != nullptr) {
    counts.cached_prompt_tokens = FindCount(*details, "cached_tokens").value_or(0);
  }
  return counts;
}

json::object OpenAiUsageJson(const TokenUsage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_prompt_tokens}}}};
}

json::object AnthropicUsageJson(const TokenUsage& usage) {
  const uint64_t cached = std::min(usage.cached_prompt_tokens, usage.prompt_tokens);
  return {{"input_tokens", usage.prompt_tokens - cached},
          {"output_tokens", usage.completion_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", cached}};
}

void AnthropicUsageCounts::Update(const json::object& usage) {
  reported = true;
  if (std::optional<uint64_t> n = FindCount(usage, "input_tokens")) input_tokens = *n;
  if (std::optional<uint64_t> n = FindCount(usage, "output_tokens")) output_tokens = *n;
  if (std::optional<uint64_t> n = FindCount(usage, "cache_read_input_tokens")) {
    cache_read_input_tokens = *n;
  }
  if (std::optional<uint64_t> n = FindCount(usage, "cache_creation_input_tokens")) {
    cache_creation_input_tokens = *n;
  }
}

TokenUsage AnthropicUsageCounts::ToTokenUsage() const {
  TokenUsage usage;
  usage.reported = reported;
  usage.prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens;
  usage.completion_tokens = output_tokens;
  usage.cached_prompt_tokens = cache_read_input_tokens;
  return usage;
}

absl::StatusOr<std::string> OpenAiContentText(const json::value& content, std::string_view path,
                                              std::string_view separator) {
  if (content.is_null()) return std::string();
  if (const json::string* text = content.if_string(); text != nullptr) {
    return std::string(View(*text));
  }
  const json::array* parts = content.if_array();
  if (parts == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(path), ": expected a string or an array of content parts"));
  }
  std::string joined;
  for (size_t i = 0; i < parts->size(); ++i) {
    const json::object* part = (*parts)[i].if_object();
    const json::string* text = part != nullptr ? FindString(*part, "text") : nullptr;
    if (part == nullptr || StringOr(*part, "type", "text") != "text" || text == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(ToAbsl(path), "[", i, "]: expected a text part"));
    }
    if (i > 0) joined += separator;
    joined += View(*text);
  }
  return joined;
}

absl::StatusOr<json::object> ParseToolArguments(const json::value* arguments,
                                                std::string_view path) {
  if (arguments == nullptr || arguments->is_null()) return json::object();
  if (const json::object* object = arguments->if_object(); object != nullptr) {
    return *object;  // Some servers send the object itself.
  }
  const json::string* text = arguments->if_string();
  if (text == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(path), ": expected a JSON string"));
  }
  if (text->empty()) return json::object();
  std::optional<json::value> parsed = ParseJson(View(*text));
  if (!parsed.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(path), ": invalid JSON"));
  }
  if (!parsed->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(path), ": expected a JSON object"));
  }
  return std::move(parsed->get_object());
}

}  // namespace flowork::router::wire
