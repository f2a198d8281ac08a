#include "flowork/agent/agent_config.h"

#include "flowork/core/config_loader.h"

namespace flowork::agent {

absl::StatusOr<v1::AgentConfig> LoadAgentConfig(const std::string& path) {
  v1::AgentConfig config;
  if (!path.empty()) {
    absl::Status loaded = core::LoadConfigFile(path, &config);
    if (!loaded.ok()) return loaded;
  }
  if (config.listen().http().empty()) config.mutable_listen()->set_http(kDefaultHttpAddress);
  if (config.listen().grpc().empty()) config.mutable_listen()->set_grpc(kDefaultGrpcAddress);
  return config;
}

}  // namespace flowork::agent
