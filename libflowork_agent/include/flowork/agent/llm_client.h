#ifndef FLOWORK_AGENT_LLM_CLIENT_H_
#define FLOWORK_AGENT_LLM_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/agent.h"
#include "flowork/agent/task_progress.h"
#include "flowork/core/http_client.h"
#include "flowork/core/http_server.h"

namespace flowork::agent {

// One model call: an OpenAI chat-completions request.
struct LlmRequest {
  // The model or route asked for; replaces the body's "model".
  std::string model;
  // The request body (messages, tools, response_format, ...), JSON.
  std::string body;
  // Given up on (kDeadlineExceeded) at this time. Default: none.
  absl::Time deadline = absl::InfiniteFuture();
  // Streaming: when set, the answer is asked for as a stream and this is
  // called with each non-empty piece of answer text as it arrives, in order,
  // on any thread (one call at a time), before `done`; the pieces
  // concatenated are the final content. `done` still gets the whole chat
  // completion (content, tool calls, finish_reason, usage assembled from the
  // chunks). A piece may race with `done` only after LlmCall::Cancel. A
  // stream that ends with an error event or without a finish_reason fails
  // with kUnavailable naming the cause. Unset = no streaming.
  absl::AnyInvocable<void(std::string_view text)> on_text;
};

struct LlmUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

struct LlmResponse {
  // The OpenAI chat completion, JSON.
  std::string body;
  // The model that answered, as it named itself.
  std::string model;
  LlmUsage usage;
  // The router's x-flowork-endpoint, when the answer came through one.
  std::string endpoint;
};

// A call in flight. Thread-safe.
class LlmCall {
 public:
  virtual ~LlmCall() = default;
  // Aborts the call; `done` reports kCancelled unless it already ran.
  virtual void Cancel() = 0;
};

// Calls a model. Errors: kResourceExhausted for 429 (LlmRetryAfter tells how
// long to wait), kUnavailable (network, 5xx), kDeadlineExceeded,
// kInvalidArgument (the request was refused, 4xx), kPermissionDenied (401,
// 403), kNotFound (404), kCancelled. Thread-safe.
class LlmClient {
 public:
  virtual ~LlmClient() = default;
  // `done` runs exactly once, on any thread, never inside Complete.
  virtual std::shared_ptr<LlmCall> Complete(
      LlmRequest request, absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done) = 0;
};

// The Retry-After of a kResourceExhausted error from an LlmClient, if any.
std::optional<absl::Duration> LlmRetryAfter(const absl::Status& status);

// Attaches `wait` to `status` for LlmRetryAfter; for LlmClient
// implementations turning a rate-limit answer into kResourceExhausted.
void SetLlmRetryAfter(absl::Status& status, absl::Duration wait);

// Options of the HTTP client. Every field documents its default.
struct HttpLlmClientOptions {
  // Where /chat/completions lives. Default flowork-router's,
  // "http://127.0.0.1:2402/v1"; any OpenAI-compatible server works.
  std::string base_url = "http://127.0.0.1:2402/v1";
  // Sent as "Authorization: Bearer <key>" when not empty.
  std::string api_key;
  // More headers on every request.
  std::vector<std::pair<std::string, std::string>> headers;
  // Defaults: 5 s to connect, 300 s to the first byte.
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration first_byte_timeout = absl::Seconds(300);
};

// An LlmClient for any OpenAI-compatible HTTP endpoint (flowork-router, vLLM,
// llama.cpp, a cloud API). `http` is not owned and must outlive the client.
absl::StatusOr<std::unique_ptr<LlmClient>> CreateHttpLlmClient(const HttpLlmClientOptions& options,
                                                               core::HttpClient& http);

// An LlmClient that hands requests straight to an in-process HTTP handler,
// typically flowork::router::Gateway: the router's policy, failover and keys
// without a network hop. `router` is not owned and must outlive the client.
// `api_key` is sent as a Bearer token when not empty.
std::unique_ptr<LlmClient> CreateInProcessLlmClient(core::HttpHandler& router,
                                                    std::string api_key = "");

// Performs `model` effects with an LlmClient: the effect's request (an
// OpenAI body) goes to effect.model.model; the answer (the chat completion)
// is the result. With ModelCall.failure_as_result, a failed call is a result
// {"error": {"message", "code"}} for the agent to handle instead of a failed
// step. Cancellation aborts the call. `client` must outlive the handler.
// With `progress` (nullable; must outlive the handler), answers are streamed
// and each piece of text is published for the task as it arrives.
std::unique_ptr<EffectHandler> CreateModelEffectHandler(LlmClient& client,
                                                        TaskProgress* progress = nullptr);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_LLM_CLIENT_H_
