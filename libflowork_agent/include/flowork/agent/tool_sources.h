#ifndef FLOWORK_AGENT_TOOL_SOURCES_H_
#define FLOWORK_AGENT_TOOL_SOURCES_H_

#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "flowork/agent/mcp_client.h"
#include "flowork/agent/memory_store.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/tool_registry.h"

namespace flowork::agent {

// Registers every tool the MCP server lists, named "<prefix>_<tool>" (the
// tool's own name when `prefix` is empty). A call goes to the server with its
// arguments; an `isError` answer is an error result; cancelling the call
// cancels it on the server. Blocks until the server's list arrives (at most
// its call timeout). `client` is not owned and must outlive `registry`.
// kAlreadyExists / kInvalidArgument as RegisterNativeAsync; kUnavailable
// when the server does not answer.
absl::Status RegisterMcpTools(ToolRegistry& registry, McpClient& client,
                              std::string_view prefix = "");

// Registers the "remember" and "recall" tools (MemoryTools) over `memory`,
// each call scoped to its task's tenant and agent. `memory` is not owned and
// must outlive `registry`.
absl::Status RegisterMemoryTools(ToolRegistry& registry, MemoryStore& memory);

// An agent's MemorySpec (its AgentSpec.memory). kNotFound: no such agent.
// Called on the tool threads; thread-safe.
using MemorySpecLookup = std::function<absl::StatusOr<v1::MemorySpec>(std::string_view agent)>;

// Registers the tools that edit the calling agent's pinned memory blocks
// (see PinnedMemoryStore), in the scope of the calling task (tenant, agent,
// and its session for per_session blocks):
//
//   memory_pin_set     {"block", "text"}              the block becomes text
//   memory_pin_append  {"block", "text"}              text added on a new line
//   memory_pin_replace {"block", "old_text", "text"}  first old_text -> text
//
// each answering {"block", "text", "bytes", "max_bytes"}. Only blocks the
// agent's MemorySpec declares can be edited; an edit over the block's
// max_bytes, an unknown block, or old_text not found is a tool error (the
// model sees it; nothing changes). An edit is keyed by "<task>/<call id>",
// so a call performed again after a crash is not applied twice. `store` is
// not owned and must outlive `registry`.
absl::Status RegisterPinnedMemoryTools(ToolRegistry& registry, PinnedMemoryStore& store,
                                       MemorySpecLookup specs);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TOOL_SOURCES_H_
