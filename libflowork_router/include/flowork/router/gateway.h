#ifndef FLOWORK_ROUTER_GATEWAY_H_
#define FLOWORK_ROUTER_GATEWAY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/core/clock.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/http_client.h"
#include "flowork/core/http_server.h"
#include "flowork/core/metrics.h"
#include "flowork/router/audit_log.h"
#include "flowork/router/key_store.h"
#include "flowork/router/policy.h"
#include "flowork/router/usage_governor.h"

namespace flowork::router {

// What a gateway books each request with. Null services are off. None is
// owned; each must outlive the gateway.
struct GatewayGovernance {
  // Per-key and per-tenant rate limits and budgets: checked before a request
  // is planned (429 with Retry-After), settled with its real usage after.
  UsageGovernor* usage = nullptr;
  // One entry per request, rejected ones included. With `audit.on_full:
  // reject` a request is refused (503) while the log's queue is full.
  AuditLog* audit = nullptr;
  // Requests, errors, latency and TTFT, tokens, cost, limiter rejections,
  // circuits, audit queue.
  core::MetricsRegistry* metrics = nullptr;
};

// The OpenAI-compatible front of the router: POST /v1/chat/completions,
// /v1/completions, /v1/embeddings and GET /v1/models. Each request is
// planned by the policy engine and sent to OpenAI-compatible upstreams
// (provider kinds openai and mock) with only "model" rewritten, failing
// over by the route's retry and fallback settings:
//  - connect errors, resets, 5xx and 429 before anything reached the caller
//    are retried on the same endpoint (retry.same_endpoint times, exponential
//    backoff with jitter; a Retry-After up to retry.max_wait is waited out, a
//    longer one cools the endpoint down), then the next candidate, up to
//    fallback.max_attempts attempts;
//  - connect and first-byte timeouts move straight to the next candidate;
//  - the caller's own faults (400, 413, 422) come back as they are, except
//    context-length errors, which may move to a candidate with a larger
//    context window;
//  - with hedge.after, an attempt that has produced no content by then is
//    raced by one more attempt on the next candidate; the first content wins
//    and the other attempt is cancelled;
//  - once a stream has started, an upstream failure ends it with an error
//    event (or, with continue_on_cut, is continued on a prefill-capable
//    candidate); nothing is switched silently.
// Streams are forwarded chunk by chunk as they arrive. Every response has
// x-request-id, x-flowork-endpoint and x-flowork-overhead-us (time in the
// router, upstream time excluded). Errors are OpenAI-shaped. A caller that
// disconnects cancels its upstream request. A W3C `traceparent` header is
// passed upstream and its trace id audited. Thread-safe.
class Gateway : public core::HttpHandler {
 public:
  // None is owned; all must outlive the gateway. `loops` (may be null) are
  // the event loops the server and `client` share: retries then run on the
  // loop the request arrived on, like the rest of it.
  // Callers are identified by `keys`.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(PolicyEngine& policy, KeyStore& keys,
                                                         core::HttpClient& client,
                                                         core::EventLoops* loops = nullptr,
                                                         const GatewayGovernance& governance = {});

  // The routes this handler serves, "METHOD /path", for mounting.
  static std::vector<std::string> Routes();
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GATEWAY_H_
