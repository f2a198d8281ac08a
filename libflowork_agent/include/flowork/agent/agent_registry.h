#ifndef FLOWORK_AGENT_AGENT_REGISTRY_H_
#define FLOWORK_AGENT_AGENT_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/agent/v1/agent.pb.h"

namespace flowork::agent {

// The agents a server knows, by name. Immutable after Create; thread-safe.
class AgentRegistry {
 public:
  // kInvalidArgument naming the entry (`agents[1].name: ...`) for an empty,
  // malformed ([a-z0-9-]+) or duplicate name. Every agent gets version 1.
  static absl::StatusOr<std::unique_ptr<AgentRegistry>> Create(
      const std::vector<v1::AgentSpec>& specs);

  // Every agent ordered by name; only those of `kind` unless unspecified.
  std::vector<v1::AgentSpec> List(v1::AgentSpec::Kind kind) const;

  // kNotFound naming the agent when there is none.
  absl::StatusOr<v1::AgentSpec> Get(const std::string& name) const;

 private:
  explicit AgentRegistry(std::map<std::string, v1::AgentSpec> agents)
      : agents_(std::move(agents)) {}

  const std::map<std::string, v1::AgentSpec> agents_;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_REGISTRY_H_
