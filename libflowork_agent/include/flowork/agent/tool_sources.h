#ifndef FLOWORK_AGENT_TOOL_SOURCES_H_
#define FLOWORK_AGENT_TOOL_SOURCES_H_

#include <string_view>

#include "absl/status/status.h"
#include "flowork/agent/mcp_client.h"
#include "flowork/agent/memory_store.h"
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

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TOOL_SOURCES_H_
