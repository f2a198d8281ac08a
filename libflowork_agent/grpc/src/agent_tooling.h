// Private to flowork::agent_grpc: what the server's LLM agents get besides a
// model — tools, memory stores, sessions — and the approval policy their specs
// declare.
#ifndef FLOWORK_AGENT_GRPC_SRC_AGENT_TOOLING_H_
#define FLOWORK_AGENT_GRPC_SRC_AGENT_TOOLING_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/memory_store.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/session_store.h"
#include "flowork/agent/tool_registry.h"
#include "flowork/agent/v1/agent.pb.h"

namespace flowork::agent::internal {

// The registered agents' approval and memory specs, by agent name: the
// runtime's ApprovalPolicy (a call needs approval when its tool is in its
// agent's AgentSpec.approval.tools) and the pinned-memory tools' spec lookup.
// Thread-safe.
class SpecPolicies final : public ApprovalPolicy {
 public:
  // Records (replaces) the agent's specs.
  void Set(const v1::AgentSpec& spec);
  void Remove(const std::string& agent);

  std::optional<Rule> Check(const v1::Task& task, const v1::ToolCall& call) const override;
  // kNotFound: no such agent.
  absl::StatusOr<v1::MemorySpec> Memory(std::string_view agent) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, v1::AgentSpec, std::less<>> specs_ ABSL_GUARDED_BY(mu_);
};

// What the service builds agents with. Not owned; null: none (a spec naming
// tools is then refused; a task naming a session is refused by the runtime).
struct AgentTooling {
  ToolRegistry* tools = nullptr;
  SpecPolicies* policies = nullptr;
  const PinnedMemoryStore* pinned = nullptr;
  const MemoryStore* memory = nullptr;
  SessionStore* sessions = nullptr;
};

// Checks `spec.approval` against `spec.tools`; kInvalidArgument prefixed
// with `where`.
absl::Status CheckApprovalSpec(const v1::AgentSpec& spec, const std::string& where);

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_AGENT_TOOLING_H_
