// Whole (non-streamed) response bodies: Anthropic -> OpenAI, OpenAI ->
// Anthropic, Ollama -> OpenAI.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/json/basic_parser_impl.hpp"
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

json::object OpenAiCompletion(std::string_view id, int64_t created, std::string_view model,
                              json::object message, std::string_view finish_reason,
                              const TokenUsage& usage) {
  return {{"id", J(id)},
          {"object", "chat.completion"},
          {"created", created},
          {"model", J(model)},
          {"choices", json::array{json::object{{"index", 0},
                                               {"message", std::move(message)},
                                               {"finish_reason", J(finish_reason)}}}},
          {"usage", wire::OpenAiUsageJson(usage)}};
}

json::object OpenAiAssistantMessage(const std::string& text, json::array tool_calls) {
  json::object message{{"role", "assistant"}};
  if (tool_calls.empty()) {
    message["content"] = text;
  } else {
    message["content"] = text.empty() ? json::value(nullptr) : json::value(text);
    message["tool_calls"] = std::move(tool_calls);
  }
  return message;
}

absl::StatusOr<std::string> AnthropicToOpenAi(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object response, wire::ParseBodyObject(body));
  const json::array* content = FindArray(response, "content");
  if (content == nullptr) return Invalid("content", "expected an array");
  std::string text;
  json::array tool_calls;
  for (size_t j = 0; j < content->size(); ++j) {
    const std::string path = absl::StrCat("content[", j, "]");
    const json::object* block = (*content)[j].if_object();
    if (block == nullptr) return Invalid(path, "expected an object");
    const std::string_view type = StringOr(*block, "type");
    if (type == "text") {
      const json::string* piece = FindString(*block, "text");
      if (piece == nullptr) return Invalid(absl::StrCat(path, ".text"), "expected a string");
      text += View(*piece);
    } else if (type == "tool_use") {
      const json::string* id = FindString(*block, "id");
      if (id == nullptr) return Invalid(absl::StrCat(path, ".id"), "expected a string");
      const json::string* name = FindString(*block, "name");
      if (name == nullptr) return Invalid(absl::StrCat(path, ".name"), "expected a string");
      const json::value* input = block->if_contains("input");
      if (input != nullptr && !input->is_object()) {
        return Invalid(absl::StrCat(path, ".input"), "expected an object");
      }
      tool_calls.push_back(json::object{
          {"id", *id},
          {"type", "function"},
          {"function",
           {{"name", *name},
            {"arguments", input != nullptr ? wire::Serialize(*input) : std::string("{}")}}}});
    }
    // Thinking and server-tool blocks have no OpenAI counterpart.
  }
  wire::AnthropicUsageCounts usage;
  if (const json::object* reported = FindObject(response, "usage")) usage.Update(*reported);
  const std::string_view finish_reason =
      wire::FinishReasonFromStopReason(StringOr(response, "stop_reason", "end_turn"));
  return wire::Serialize(OpenAiCompletion(StringOr(response, "id", "chatcmpl-flowork"), 0, model,
                                          OpenAiAssistantMessage(text, std::move(tool_calls)),
                                          finish_reason, usage.ToTokenUsage()));
}

absl::StatusOr<std::string> OpenAiToAnthropic(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object response, wire::ParseBodyObject(body));
  const json::array* choices = FindArray(response, "choices");
  if (choices == nullptr || choices->empty()) {
    return Invalid("choices", "expected a non-empty array");
  }
  const json::object* choice = choices->front().if_object();
  if (choice == nullptr) return Invalid("choices[0]", "expected an object");
  const json::object* message = FindObject(*choice, "message");
  if (message == nullptr) return Invalid("choices[0].message", "expected an object");

  json::array blocks;
  std::string text;
  if (const json::value* content = message->if_contains("content")) {
    FLOWORK_ASSIGN_OR_RETURN(text,
                             wire::OpenAiContentText(*content, "choices[0].message.content", ""));
  }
  if (text.empty()) text = StringOr(*message, "refusal");
  if (!text.empty()) blocks.push_back(json::object{{"type", "text"}, {"text", text}});
  bool has_tool_calls = false;
  if (const json::value* calls_value = message->if_contains("tool_calls");
      calls_value != nullptr && !calls_value->is_null()) {
    const json::array* calls = calls_value->if_array();
    if (calls == nullptr) return Invalid("choices[0].message.tool_calls", "expected an array");
    for (size_t j = 0; j < calls->size(); ++j) {
      const std::string path = absl::StrCat("choices[0].message.tool_calls[", j, "]");
      const json::object* call = (*calls)[j].if_object();
      if (call == nullptr) return Invalid(path, "expected an object");
      const json::string* id = FindString(*call, "id");
      if (id == nullptr) return Invalid(absl::StrCat(path, ".id"), "expected a string");
      const json::object* function = FindObject(*call, "function");
      if (function == nullptr)
        return Invalid(absl::StrCat(path, ".function"), "expected an object");
      const json::string* name = FindString(*function, "name");
      if (name == nullptr) {
        return Invalid(absl::StrCat(path, ".function.name"), "expected a string");
      }
      FLOWORK_ASSIGN_OR_RETURN(json::object input,
                               wire::ParseToolArguments(function->if_contains("arguments"),
                                                        absl::StrCat(path, ".function.arguments")));
      blocks.push_back(json::object{
          {"type", "tool_use"}, {"id", *id}, {"name", *name}, {"input", std::move(input)}});
      has_tool_calls = true;
    }
  }
  const json::string* finish_reason = FindString(*choice, "finish_reason");
  const std::string_view stop_reason = finish_reason != nullptr
                                           ? wire::StopReasonFromFinishReason(View(*finish_reason))
                                       : has_tool_calls ? "tool_use"
                                                        : "end_turn";
  TokenUsage usage;
  if (const json::object* reported = FindObject(response, "usage")) {
    usage = wire::ReadOpenAiUsage(*reported);
  }
  return wire::Serialize(json::object{{"id", J(StringOr(response, "id", "msg_flowork"))},
                                      {"type", "message"},
                                      {"role", "assistant"},
                                      {"model", J(model)},
                                      {"content", std::move(blocks)},
                                      {"stop_reason", J(stop_reason)},
                                      {"stop_sequence", nullptr},
                                      {"usage", wire::AnthropicUsageJson(usage)}});
}

absl::StatusOr<std::string> OllamaToOpenAi(std::string_view body, std::string_view model) {
  FLOWORK_ASSIGN_OR_RETURN(json::object response, wire::ParseBodyObject(body));
  const json::object* message = FindObject(response, "message");
  if (message == nullptr) return Invalid("message", "expected an object");
  const std::string text(StringOr(*message, "content"));
  json::array tool_calls;
  if (const json::value* calls_value = message->if_contains("tool_calls");
      calls_value != nullptr && !calls_value->is_null()) {
    const json::array* calls = calls_value->if_array();
    if (calls == nullptr) return Invalid("message.tool_calls", "expected an array");
    for (size_t j = 0; j < calls->size(); ++j) {
      const std::string path = absl::StrCat("message.tool_calls[", j, "]");
      const json::object* call = (*calls)[j].if_object();
      const json::object* function = call != nullptr ? FindObject(*call, "function") : nullptr;
      if (function == nullptr)
        return Invalid(absl::StrCat(path, ".function"), "expected an object");
      const json::string* name = FindString(*function, "name");
      if (name == nullptr) {
        return Invalid(absl::StrCat(path, ".function.name"), "expected a string");
      }
      const json::value* arguments = function->if_contains("arguments");
      std::string serialized = "{}";
      if (arguments != nullptr && arguments->is_string()) {
        serialized = View(arguments->get_string());
      } else if (arguments != nullptr && !arguments->is_null()) {
        serialized = wire::Serialize(*arguments);
      }
      const json::string* upstream_id = FindString(*call, "id");
      const std::string id =
          upstream_id != nullptr ? std::string(View(*upstream_id)) : absl::StrCat("call_", j);
      tool_calls.push_back(
          json::object{{"id", id},
                       {"type", "function"},
                       {"function", {{"name", *name}, {"arguments", serialized}}}});
    }
  }
  const std::string_view finish_reason = !tool_calls.empty() ? "tool_calls"
                                         : StringOr(response, "done_reason") == "length" ? "length"
                                                                                         : "stop";
  TokenUsage usage;
  std::optional<uint64_t> prompt = wire::FindCount(response, "prompt_eval_count");
  std::optional<uint64_t> completion = wire::FindCount(response, "eval_count");
  usage.reported = prompt.has_value() || completion.has_value();
  usage.prompt_tokens = prompt.value_or(0);
  usage.completion_tokens = completion.value_or(0);
  int64_t created = 0;
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, ToAbsl(StringOr(response, "created_at")), &time,
                      &error)) {
    created = absl::ToUnixSeconds(time);
  }
  return wire::Serialize(OpenAiCompletion("chatcmpl-flowork", created, model,
                                          OpenAiAssistantMessage(text, std::move(tool_calls)),
                                          finish_reason, usage));
}

}  // namespace

absl::StatusOr<std::string> AnthropicResponseToOpenAiChat(std::string_view body,
                                                          std::string_view model) {
  return wire::NoThrow("translating an Anthropic response to OpenAI",
                       [&] { return AnthropicToOpenAi(body, model); });
}

absl::StatusOr<std::string> OpenAiChatResponseToAnthropic(std::string_view body,
                                                          std::string_view model) {
  return wire::NoThrow("translating an OpenAI response to Anthropic",
                       [&] { return OpenAiToAnthropic(body, model); });
}

absl::StatusOr<std::string> OllamaResponseToOpenAiChat(std::string_view body,
                                                       std::string_view model) {
  return wire::NoThrow("translating an Ollama response to OpenAI",
                       [&] { return OllamaToOpenAi(body, model); });
}

namespace {

// Where the last `"usage"` in body[0, end) starts, or npos. Searched from
// the end, quote by quote: an answer's usage is usually its last field, and
// std::string_view::rfind compares at every byte.
size_t FindUsageKeyBefore(std::string_view body, size_t end) {
  constexpr std::string_view kKey = "\"usage\"";
  while (end >= kKey.size()) {
    const void* quote = memrchr(body.data(), '"', end);
    if (quote == nullptr) break;
    const size_t at = static_cast<size_t>(static_cast<const char*>(quote) - body.data());
    if (at + 1 >= kKey.size() && body.substr(at + 1 - kKey.size(), kKey.size()) == kKey) {
      return at + 1 - kKey.size();
    }
    end = at;
  }
  return std::string_view::npos;
}

// Where the JSON object after the last `"usage":` key in `body` (not one
// inside a string, whose quotes would be escaped) starts: the rest of `body`
// from its '{', or "" when there is none. Parsing just that object (the
// parser stops at its end) is far cheaper than parsing a whole answer.
std::string_view UsageObjectOnwards(std::string_view body) {
  for (size_t at = FindUsageKeyBefore(body, body.size()); at != std::string_view::npos && at > 0;
       at = FindUsageKeyBefore(body, at)) {
    if (body[at - 1] == '\\') continue;
    size_t i = at + 7;
    while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\t')) ++i;
    if (i >= body.size() || body[i] != ':') continue;
    ++i;
    while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\t')) ++i;
    if (i >= body.size() || body[i] != '{') continue;
    return body.substr(i);
  }
  return "";
}

class UsageCountsHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  enum Field {
    kPromptTokens,
    kCompletionTokens,
    kCachedTokens,  // In prompt_tokens_details.
    kInputTokens,
    kOutputTokens,
    kCacheReadInputTokens,
    kCacheCreationInputTokens,
    kFields,
    kNoField = kFields,
  };

  std::optional<uint64_t> count(Field field) const { return counts_[field]; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (depth_ == 1 && Key() == "prompt_tokens_details") {
      in_details_ = true;
      counts_[kCachedTokens].reset();
    }
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    if (--depth_ == 1) in_details_ = false;
    return true;
  }
  bool on_array_begin(json::error_code&) {
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    AppendKey(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    AppendKey(s);
    key_done_ = true;
    field_ = KeyField();
    field_depth_ = depth_;
    if (field_ != kNoField) counts_[field_].reset();  // Set again only by a count.
    // A later prompt_tokens_details replaces an earlier one, object or not.
    if (depth_ == 1 && Key() == "prompt_tokens_details") counts_[kCachedTokens].reset();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t i, json::string_view, json::error_code&) {
    if (i >= 0) Count(static_cast<uint64_t>(i));
    return true;
  }
  bool on_uint64(uint64_t u, json::string_view, json::error_code&) {
    Count(u);
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    if (d >= 0 && d < 1.8e19 && std::floor(d) == d) Count(static_cast<uint64_t>(d));
    return true;
  }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  std::string_view Key() const { return {key_, key_size_}; }
  void AppendKey(json::string_view s) {
    if (key_done_) {
      key_size_ = 0;
      key_done_ = false;
    }
    // Longer keys than any counted one are kept cut: they match nothing.
    const size_t n = std::min(s.size(), sizeof(key_) - key_size_);
    std::memcpy(key_ + key_size_, s.data(), n);
    key_size_ += n;
  }
  Field KeyField() const {
    const std::string_view key = Key();
    if (depth_ == 2 && in_details_) return key == "cached_tokens" ? kCachedTokens : kNoField;
    if (depth_ != 1) return kNoField;
    if (key == "prompt_tokens") return kPromptTokens;
    if (key == "completion_tokens") return kCompletionTokens;
    if (key == "input_tokens") return kInputTokens;
    if (key == "output_tokens") return kOutputTokens;
    if (key == "cache_read_input_tokens") return kCacheReadInputTokens;
    if (key == "cache_creation_input_tokens") return kCacheCreationInputTokens;
    return kNoField;
  }
  // A number right after the key `field_` (not one nested in its value).
  void Count(uint64_t n) {
    if (field_ != kNoField && depth_ == field_depth_) counts_[field_] = n;
    field_ = kNoField;
  }

  std::optional<uint64_t> counts_[kFields];
  int depth_ = 0;  // Objects and arrays open; the usage object is depth 1.
  bool in_details_ = false;
  char key_[32];  // The key being read or just read.
  size_t key_size_ = 0;
  bool key_done_ = false;
  Field field_ = kNoField;  // The count field whose value comes next.
  int field_depth_ = 0;
};

// The usage the JSON object at the start of `text` reports (what follows it
// is not read), or nullopt when it is not a valid JSON object.
std::optional<TokenUsage> ReadUsageObject(UpstreamWire wire_format, std::string_view text) {
  json::basic_parser<UsageCountsHandler> parser(json::parse_options{});
  json::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  if (ec || !parser.done()) return std::nullopt;
  const UsageCountsHandler& h = parser.handler();
  using F = UsageCountsHandler;
  if (wire_format == UpstreamWire::kOpenAi) {
    TokenUsage usage;
    usage.reported = true;
    usage.prompt_tokens = h.count(F::kPromptTokens).value_or(0);
    usage.completion_tokens = h.count(F::kCompletionTokens).value_or(0);
    usage.cached_prompt_tokens = h.count(F::kCachedTokens).value_or(0);
    return usage;
  }
  wire::AnthropicUsageCounts counts;
  counts.reported = true;
  counts.input_tokens = h.count(F::kInputTokens).value_or(0);
  counts.output_tokens = h.count(F::kOutputTokens).value_or(0);
  counts.cache_read_input_tokens = h.count(F::kCacheReadInputTokens).value_or(0);
  counts.cache_creation_input_tokens = h.count(F::kCacheCreationInputTokens).value_or(0);
  return counts.ToTokenUsage();
}

}  // namespace

TokenUsage WholeResponseUsage(UpstreamWire wire_format, std::string_view body) {
  if (wire_format != UpstreamWire::kOllama) {
    // Only the usage object is parsed, and into no tree: a usage object is
    // small, and this runs for every answer.
    const std::string_view object = UsageObjectOnwards(body);
    if (!object.empty()) {
      if (std::optional<TokenUsage> usage = ReadUsageObject(wire_format, object)) return *usage;
    }
  }
  if (body.find("usage") == std::string_view::npos &&
      body.find("eval_count") == std::string_view::npos) {
    return {};  // Cheap: most bodies without usage need no parse at all.
  }
  absl::StatusOr<TokenUsage> usage =
      wire::NoThrow("reading usage", [&]() -> absl::StatusOr<TokenUsage> {
        const json::value parsed = json::parse(json::string_view(body.data(), body.size()));
        const json::object* response = parsed.if_object();
        if (response == nullptr) return TokenUsage{};
        switch (wire_format) {
          case UpstreamWire::kOpenAi:
            if (const json::object* reported = FindObject(*response, "usage")) {
              return wire::ReadOpenAiUsage(*reported);
            }
            return TokenUsage{};
          case UpstreamWire::kAnthropic: {
            wire::AnthropicUsageCounts counts;
            if (const json::object* reported = FindObject(*response, "usage")) {
              counts.Update(*reported);
            }
            return counts.ToTokenUsage();
          }
          case UpstreamWire::kOllama: {
            TokenUsage counts;
            std::optional<uint64_t> prompt = wire::FindCount(*response, "prompt_eval_count");
            std::optional<uint64_t> completion = wire::FindCount(*response, "eval_count");
            counts.reported = prompt.has_value() || completion.has_value();
            counts.prompt_tokens = prompt.value_or(0);
            counts.completion_tokens = completion.value_or(0);
            return counts;
          }
        }
        return TokenUsage{};
      });
  return usage.ok() ? *usage : TokenUsage{};
}

}  // namespace flowork::router
