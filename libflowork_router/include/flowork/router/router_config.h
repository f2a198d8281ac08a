#ifndef FLOWORK_ROUTER_ROUTER_CONFIG_H_
#define FLOWORK_ROUTER_ROUTER_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Default listeners of flowork-router.
inline constexpr char kDefaultHttpAddress[] = "127.0.0.1:2402";
inline constexpr char kDefaultGrpcAddress[] = "127.0.0.1:2403";

// Loads a router configuration from a YAML or JSON file, or the embedded
// defaults when `path` is empty, fills unset listeners with the defaults and
// validates it (ValidateRouterConfig). Errors name the file, line and field,
// or every problem's path. Thread-safe.
absl::StatusOr<v1::RouterConfig> LoadRouterConfig(const std::string& path);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_ROUTER_CONFIG_H_
