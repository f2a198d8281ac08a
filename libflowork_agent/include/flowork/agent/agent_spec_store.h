#ifndef FLOWORK_AGENT_AGENT_SPEC_STORE_H_
#define FLOWORK_AGENT_AGENT_SPEC_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/agent/v1/agent.pb.h"

namespace flowork::agent {

// An agent spec as the agent server keeps it: whose it is and what it is.
struct StoredAgent {
  // The tenant that created the agent.
  std::string tenant;
  // Its current version (the server counts versions up across restarts).
  v1::AgentSpec spec;
};

// The agents created through the API, kept so they are registered again
// after a restart. Thread-safe.
class AgentSpecStore {
 public:
  virtual ~AgentSpecStore() = default;
  // Stores the agent under spec.name, replacing what was stored there.
  virtual absl::Status Put(const StoredAgent& agent) = 0;
  // Forgets the agent. OK when there is none by that name.
  virtual absl::Status Delete(std::string_view name) = 0;
  // Every stored agent, by name.
  virtual absl::StatusOr<std::vector<StoredAgent>> List() const = 0;
};

// A store in a table of the SQLite database at `path` (it may be the task
// store's file; create the task store first). kUnavailable when the file
// cannot be opened.
absl::StatusOr<std::unique_ptr<AgentSpecStore>> CreateSqliteAgentSpecStore(const std::string& path);

// A store that forgets everything when destroyed, for tests.
std::unique_ptr<AgentSpecStore> CreateInMemoryAgentSpecStore();

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_AGENT_SPEC_STORE_H_
