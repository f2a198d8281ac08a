// Private to the translators: reading and writing the JSON trees of the wire
// formats. Boost.JSON is only used here and in the translators' .cc files;
// nothing in this header throws except on allocation failure.
#ifndef FLOWORK_ROUTER_SRC_PROVIDERS_JSON_WIRE_H_
#define FLOWORK_ROUTER_SRC_PROVIDERS_JSON_WIRE_H_

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "providers/translation.h"

namespace flowork::router::wire {

namespace json = boost::json;

// `value` as compact JSON. Unlike json::serialize, doubles are written in
// their shortest ordinary form (0.7, not 7E-1).
std::string Serialize(const json::value& value);
// `value` as compact JSON followed by `suffix`.
std::string SerializeWith(const json::value& value, std::string_view suffix);

// Parses any JSON text. std::nullopt when it is not exactly one JSON value.
std::optional<json::value> ParseJson(std::string_view text);
// Parses a whole body that must be one JSON object. kInvalidArgument
// "body: ..." otherwise.
absl::StatusOr<json::object> ParseBodyObject(std::string_view body);

// Typed lookups: nullptr (or "") when the key is absent or of another type.
const json::object* FindObject(const json::object& object, std::string_view key);
const json::array* FindArray(const json::object& object, std::string_view key);
const json::string* FindString(const json::object& object, std::string_view key);
std::string_view StringOr(const json::object& object, std::string_view key,
                          std::string_view fallback = "");
// A non-negative integer (or an integral double) at `key`.
std::optional<uint64_t> FindCount(const json::object& object, std::string_view key);

inline std::string_view View(const json::string& s) { return {s.data(), s.size()}; }
// For building values from std::string_view (Boost.JSON has its own).
inline json::string_view J(std::string_view s) { return {s.data(), s.size()}; }

// Runs `f`, turning an escaping exception (Boost.JSON throws, if only on
// allocation failure) into kInternal so none crosses our functions.
template <typename F>
auto NoThrow(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(what) + ": " + e.what());
  }
}

// Finish reasons.
// Anthropic stop_reason -> OpenAI finish_reason.
std::string_view FinishReasonFromStopReason(std::string_view stop_reason);
// OpenAI finish_reason -> Anthropic stop_reason.
std::string_view StopReasonFromFinishReason(std::string_view finish_reason);

// Usage.
// OpenAI "usage" object -> counts.
TokenUsage ReadOpenAiUsage(const json::object& usage);
// OpenAI usage JSON for `usage`.
json::object OpenAiUsageJson(const TokenUsage& usage);
// Anthropic usage JSON for `usage`: input_tokens excludes the cached part,
// which goes to cache_read_input_tokens.
json::object AnthropicUsageJson(const TokenUsage& usage);

// Anthropic usage fields, accumulated as a stream reveals them.
struct AnthropicUsageCounts {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  uint64_t cache_read_input_tokens = 0;
  uint64_t cache_creation_input_tokens = 0;
  bool reported = false;

  // Takes the fields `usage` carries; absent fields keep their value.
  void Update(const json::object& usage);
  // OpenAI's view: every input token (plain, cache read, cache write) is a
  // prompt token; cache reads are the cached ones.
  TokenUsage ToTokenUsage() const;
};

// Text of OpenAI message content: a string, null, or text parts joined by
// `separator`. kInvalidArgument naming `path` for anything else (non-text
// parts included).
absl::StatusOr<std::string> OpenAiContentText(const json::value& content, std::string_view path,
                                              std::string_view separator);

// Parses an OpenAI tool call's "arguments" string into the object Anthropic
// and Ollama want. An empty string is {}. kInvalidArgument naming `path`.
absl::StatusOr<json::object> ParseToolArguments(const json::value* arguments,
                                                std::string_view path);

}  // namespace flowork::router::wire

#endif  // FLOWORK_ROUTER_SRC_PROVIDERS_JSON_WIRE_H_
