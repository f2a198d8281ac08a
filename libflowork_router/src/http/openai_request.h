// Private: what the gateway reads of an OpenAI-style request body, without
// building a JSON tree, and the one edit it makes (the model name).
#ifndef FLOWORK_ROUTER_SRC_HTTP_OPENAI_REQUEST_H_
#define FLOWORK_ROUTER_SRC_HTTP_OPENAI_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace flowork::router {

// Top-level facts of a request body. A value.
struct OpenAiRequestFacts {
  std::string model;
  bool stream = false;
  uint32_t max_tokens = 0;  // max_tokens or max_completion_tokens; 0 = absent.
  bool has_tools = false;   // A non-empty "tools" array.
  bool wants_json = false;  // "response_format" present and not {"type":"text"}.
  bool has_images = false;  // An "image_url" content part anywhere.
  bool asks_usage = false;  // stream_options.include_usage is true.
  bool has_stream_options = false;
  // Where the model's string value sits in the body, quotes included, for
  // splicing. npos when the model string had escapes (splice rebuilds it).
  std::size_t model_begin = std::string_view::npos;
  std::size_t model_end = std::string_view::npos;
};

// Validates `body` as one JSON object and reads its facts in one pass.
// kInvalidArgument naming the problem for anything else, or when "model" is
// missing or not a string.
absl::StatusOr<OpenAiRequestFacts> ReadOpenAiRequest(std::string_view body);

// `body` with its top-level "model" value replaced by `model`; everything
// else byte for byte.
std::string SpliceModel(std::string_view body, const OpenAiRequestFacts& facts,
                        std::string_view model);

// The chat request `body` asking to continue `partial` (what the caller
// already received): `partial` as a final assistant message (a prefill).
// kInvalidArgument when `body` has no "messages" array.
absl::StatusOr<std::string> AppendAssistantPrefill(std::string_view body, std::string_view partial);

// `body` (a JSON object without "stream_options") asking for usage on its
// stream: ,"stream_options":{"include_usage":true} before the closing brace.
std::string AddIncludeUsage(std::string_view body);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_SRC_HTTP_OPENAI_REQUEST_H_
