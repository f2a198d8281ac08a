#ifndef FLOWORK_AGENT_GRPC_GRPC_LLM_CLIENT_H_
#define FLOWORK_AGENT_GRPC_GRPC_LLM_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/agent/llm_client.h"
#include "grpcpp/security/credentials.h"

namespace flowork::agent {

// Options of the gRPC client. Every field documents its default.
struct GrpcLlmClientOptions {
  // flowork-router's gRPC address ("host:port" or any gRPC target URI).
  // Default its default listener, "127.0.0.1:2403".
  std::string target = "127.0.0.1:2403";
  // Sent as "authorization: Bearer <key>" metadata when not empty.
  std::string api_key;
  // More metadata on every call (lower-case names: x-flowork-zone, ...).
  std::vector<std::pair<std::string, std::string>> metadata;
  // Channel credentials. Default (null): plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

// An LlmClient that calls flowork-router's RouterService.Chat over gRPC.
// The OpenAI request body is sent as a typed ChatRequest (keys with no typed
// form go in `extra`, see flowork/router/grpc/chat_codec.h) and the answer
// comes back as an OpenAI chat completion with its usage and the endpoint
// that answered (x-flowork-endpoint). LlmRequest.deadline is the call's
// deadline; Cancel cancels the RPC (and the router's upstream call). With
// LlmRequest.on_text set it calls StreamChat instead and assembles the chunks
// into the same completion. Status
// mapping: RESOURCE_EXHAUSTED -> kResourceExhausted with the router's
// `retry-after` trailing metadata as LlmRetryAfter; UNAUTHENTICATED and
// PERMISSION_DENIED -> kPermissionDenied; NOT_FOUND, DEADLINE_EXCEEDED,
// CANCELLED and INVALID_ARGUMENT keep their code (so do FAILED_PRECONDITION,
// OUT_OF_RANGE, ABORTED as kInvalidArgument); everything else (UNAVAILABLE,
// INTERNAL, UNKNOWN, ...) is kUnavailable. The channel connects lazily:
// kInvalidArgument only for an empty target. Thread-safe; calls in flight
// keep the channel alive after the client is destroyed.
absl::StatusOr<std::unique_ptr<LlmClient>> CreateGrpcLlmClient(const GrpcLlmClientOptions& options);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_GRPC_GRPC_LLM_CLIENT_H_
