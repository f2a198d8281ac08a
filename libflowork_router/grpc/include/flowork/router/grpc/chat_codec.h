// The typed RouterService chat messages to and from the OpenAI chat
// completions wire JSON, both ways: the router's RouterService encodes a
// ChatRequest for its gateway and decodes the gateway's answer; a gRPC client
// holding OpenAI JSON (flowork::agent's gRPC LlmClient) goes the other way.
// Pure functions; thread-safe.
#ifndef FLOWORK_ROUTER_GRPC_CHAT_CODEC_H_
#define FLOWORK_ROUTER_GRPC_CHAT_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "flowork/router/v1/router.pb.h"

namespace flowork::router::codec {

// The body of POST /v1/chat/completions for `request`. With `stream`, asks
// for a stream with usage on its last chunk. Unset optional fields are left
// out; set ones (zeros too) are sent. `extra` is merged last.
// kInvalidArgument naming the field: an unset role, an empty content part,
// an `extra` key a typed field sets.
absl::StatusOr<std::string> OpenAiChatBody(const v1::ChatRequest& request, bool stream);

// An OpenAI chat completion (its first choice). kInternal naming the field
// when the body is not one.
absl::StatusOr<v1::ChatResponse> ChatResponseFromOpenAi(std::string_view body);

// The typed form of an OpenAI chat completions request body, the inverse of
// OpenAiChatBody: messages (text and image parts, tool calls), tools,
// tool_choice, temperature, top_p, max_tokens, stop, seed and
// response_format become their typed fields; any other top-level key goes
// to `extra` as it is. "stream" and "stream_options" are dropped (the RPC
// chosen decides). Fields of messages and tools that have no typed form
// (e.g. a function's "strict") are dropped. kInvalidArgument naming the
// field: not a JSON object, a wrong type, an unknown role, a content part or
// tool that is not text/image_url or a function.
absl::StatusOr<v1::ChatRequest> ChatRequestFromOpenAi(std::string_view body);

// `response` as an OpenAI chat completion ("object": "chat.completion", one
// choice, usage when set), the inverse of ChatResponseFromOpenAi. Content of
// text parts only is one string; no content is null when the model called
// tools and "" otherwise.
std::string OpenAiChatCompletion(const v1::ChatResponse& response);

}  // namespace flowork::router::codec

#endif  // FLOWORK_ROUTER_GRPC_CHAT_CODEC_H_
