#include "flowork/router/router_config.h"

#include "absl/strings/str_cat.h"
#include "flowork/core/config_loader.h"
#include "flowork/router/config_validation.h"

namespace flowork::router {

absl::StatusOr<v1::RouterConfig> LoadRouterConfig(const std::string& path) {
  v1::RouterConfig config;
  if (!path.empty()) {
    absl::Status loaded = core::LoadConfigFile(path, &config);
    if (!loaded.ok()) return loaded;
  }
  if (config.listen().http().empty()) config.mutable_listen()->set_http(kDefaultHttpAddress);
  if (config.listen().grpc().empty()) config.mutable_listen()->set_grpc(kDefaultGrpcAddress);
  absl::Status valid = ValidateRouterConfig(config);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        path.empty() ? std::string(valid.message())
                     : absl::StrCat(path, ": invalid configuration:\n", valid.message()));
  }
  return config;
}

}  // namespace flowork::router
