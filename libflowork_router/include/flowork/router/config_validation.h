#ifndef FLOWORK_ROUTER_CONFIG_VALIDATION_H_
#define FLOWORK_ROUTER_CONFIG_VALIDATION_H_

#include "absl/status/status.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Checks a whole configuration: names resolve (models to providers, route
// candidates and key allow lists to models or routes), nested routes form no
// cycle and repeat no model, every route has a candidate that can meet its
// `require`, every key's zones leave it a candidate, values are in range, and
// `auth.mode: none` is only used on loopback listeners. Capabilities must be
// one of chat, completion, embeddings, tools, json, vision, prefill. A provider
// without a zone never satisfies a zone requirement. docs/configuration.md
// lists every rule.
//
// OK, or kInvalidArgument whose message lists every problem, one per line,
// each "path: problem", in config order, e.g.
//   models[1].provider: unknown provider "x"
//   routes[2].candidates[0]: unknown model or route "gpt-x"
// Pure; thread-safe.
absl::Status ValidateRouterConfig(const v1::RouterConfig& config);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_CONFIG_VALIDATION_H_
