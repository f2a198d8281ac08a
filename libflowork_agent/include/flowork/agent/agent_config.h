#ifndef FLOWORK_AGENT_AGENT_CONFIG_H_
#define FLOWORK_AGENT_AGENT_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "flowork/agent/v1/config.pb.h"

namespace flowork::agent {

// Default listeners of flowork-agent.
inline constexpr char kDefaultHttpAddress[] = "127.0.0.1:1987";
inline constexpr char kDefaultGrpcAddress[] = "127.0.0.1:1988";

// Loads an agent server configuration from a YAML or JSON file, or the
// embedded defaults when `path` is empty, and fills unset listeners with the
// defaults. Errors name the file, line and field. Thread-safe.
absl::StatusOr<v1::AgentConfig> LoadAgentConfig(const std::string& path);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_CONFIG_H_
