// Private to flowork::router_grpc: the rest of the codec (embeddings, stream
// events, the gateway's HTTP answers as statuses); the chat conversions are
// public in flowork/router/grpc/chat_codec.h. Pure functions; thread-safe.
#ifndef FLOWORK_ROUTER_GRPC_SRC_CHAT_CODEC_H_
#define FLOWORK_ROUTER_GRPC_SRC_CHAT_CODEC_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/core/http_server.h"
#include "flowork/router/grpc/chat_codec.h"
#include "flowork/router/v1/router.pb.h"

namespace flowork::router::codec {

// The body of POST /v1/embeddings for `request`. kInvalidArgument as above.
absl::StatusOr<std::string> OpenAiEmbeddingsBody(const v1::EmbedRequest& request);

// An OpenAI embeddings answer, in input order. kInternal naming the field
// when the body is not one.
absl::StatusOr<v1::EmbedResponse> EmbedResponseFromOpenAi(std::string_view body);

// A whole answer as the one chunk of a stream.
v1::ChatChunk ChunkFromResponse(const v1::ChatResponse& response);

// Splits a Server-Sent Events byte stream into events, however the bytes
// are cut. Not thread-safe.
class SseSplitter {
 public:
  struct Event {
    std::string name;  // "event:" field; "" when absent.
    std::string data;  // "data:" lines joined by '\n'.
  };
  // The events `bytes` completes.
  std::vector<Event> Feed(std::string_view bytes);

 private:
  std::string buffer_;
};

// One streamed event as a chunk. std::nullopt for the "[DONE]" marker and
// for events that carry nothing. kUnavailable with the router's message for
// an error event; kInternal when the data is not a chunk.
absl::StatusOr<std::optional<v1::ChatChunk>> ChatChunkFromEvent(const SseSplitter::Event& event);

// A gateway answer that is not a success, as a status: 400/413/422
// INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
// NOT_FOUND, 408/504 DEADLINE_EXCEEDED, 409 ABORTED, 429 RESOURCE_EXHAUSTED,
// 499 CANCELLED, 501 UNIMPLEMENTED, 502/503 UNAVAILABLE, other 5xx INTERNAL,
// anything else UNKNOWN. The message is the OpenAI error's message (or the
// body's start).
struct GatewayFailure {
  absl::Status status;
  // The OpenAI error code ("model_not_found"), or "".
  std::string error_code;
  // The Retry-After header, or "".
  std::string retry_after;
};
GatewayFailure FailureFromAnswer(int http_status, const core::HttpHeaders& headers,
                                 std::string_view body);

// The first header of that name (case-insensitive), or "".
std::string HeaderValue(const core::HttpHeaders& headers, std::string_view name);

}  // namespace flowork::router::codec

#endif  // FLOWORK_ROUTER_GRPC_SRC_CHAT_CODEC_H_
