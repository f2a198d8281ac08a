#ifndef FLOWORK_AGENT_AGENT_REGISTRY_H_
#define FLOWORK_AGENT_AGENT_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/v1/agent.pb.h"

namespace flowork::agent {

// The agents a server knows, by name. Held in memory: agents added at run
// time are gone after a restart (the durable task store will keep them).
// Thread-safe.
class AgentRegistry {
 public:
  // Starts with `specs` (typically the config's `agents`). kInvalidArgument
  // naming the entry (`agents[1].name: ...`) for an empty, malformed
  // ([a-z0-9-]+) or duplicate name. Every agent gets version 1.
  static absl::StatusOr<std::unique_ptr<AgentRegistry>> Create(
      const std::vector<v1::AgentSpec>& specs);

  // Registers a new agent and returns it as stored (version 1).
  // kAlreadyExists when the name is taken; kInvalidArgument for a bad name.
  absl::StatusOr<v1::AgentSpec> Add(v1::AgentSpec spec);

  // Every agent ordered by name; only those of `kind` unless unspecified.
  std::vector<v1::AgentSpec> List(v1::AgentSpec::Kind kind) const;

  // kNotFound naming the agent when there is none.
  absl::StatusOr<v1::AgentSpec> Get(const std::string& name) const;

 private:
  AgentRegistry() = default;

  mutable absl::Mutex mu_;
  std::map<std::string, v1::AgentSpec> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_REGISTRY_H_
