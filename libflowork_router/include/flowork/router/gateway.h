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
#include "flowork/router/key_store.h"
#include "flowork/router/policy.h"

namespace flowork::router {

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
// disconnects cancels its upstream request. Thread-safe.
class Gateway : public core::HttpHandler {
 public:
  // None is owned; all must outlive the gateway. `loops` (may be null) are
  // the event loops the server and `client` share: retries then run on the
  // loop the request arrived on, like the rest of it.
  // Callers are identified by `keys`.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(PolicyEngine& policy, KeyStore& keys,
                                                         core::HttpClient& client,
                                                         core::EventLoops* loops = nullptr);

  // The routes this handler serves, "METHOD /path", for mounting.
  static std::vector<std::string> Routes();
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GATEWAY_H_
