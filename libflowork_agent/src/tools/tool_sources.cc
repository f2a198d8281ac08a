#include "flowork/agent/tool_sources.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "flowork/agent/memory_tools.h"

namespace flowork::agent {

absl::Status RegisterMcpTools(ToolRegistry& registry, McpClient& client,
                              std::string_view prefix_view) {
  const std::string prefix(prefix_view);
  absl::Notification listed;
  absl::StatusOr<std::vector<McpTool>> tools;
  client.ListTools([&](absl::StatusOr<std::vector<McpTool>> result) {
    tools = std::move(result);
    listed.Notify();
  });
  listed.WaitForNotification();
  if (!tools.ok()) return tools.status();
  for (const McpTool& tool : *tools) {
    ToolDefinition definition;
    definition.name = prefix.empty() ? tool.name : absl::StrCat(prefix, "_", tool.name);
    definition.description = tool.description;
    definition.parameters_json_schema = tool.input_schema;
    absl::Status registered = registry.RegisterNativeAsync(
        std::move(definition),
        [&client, name = tool.name](const google::protobuf::Value& arguments,
                                    std::shared_ptr<ToolContext> context, ToolDone done) {
          const absl::Duration left = context->deadline() - absl::Now();
          std::shared_ptr<McpToolCall> call = client.CallTool(
              name, arguments, std::max(left, absl::Milliseconds(1)),
              [done = std::move(done)](absl::StatusOr<v1::ToolResult> result) mutable {
                if (!result.ok()) return std::move(done)(result.status());
                if (!result->error().empty()) {
                  return std::move(done)(absl::UnknownError(result->error()));
                }
                std::move(done)(result->output());
              });
          context->OnCancel([call] { call->Cancel(); });
        });
    if (!registered.ok()) return registered;
  }
  return absl::OkStatus();
}

absl::Status RegisterMemoryTools(ToolRegistry& registry, MemoryStore& memory) {
  auto tools = std::make_shared<MemoryTools>(memory);
  for (const MemoryToolDefinition& memory_tool : MemoryTools::Definitions()) {
    ToolDefinition definition;
    definition.name = memory_tool.name;
    definition.description = memory_tool.description;
    definition.parameters = memory_tool.parameters;
    absl::Status registered = registry.RegisterNative(
        std::move(definition),
        [tools, name = memory_tool.name](
            const google::protobuf::Value& arguments,
            ToolContext& context) -> absl::StatusOr<google::protobuf::Value> {
          v1::ToolCall call;
          call.set_id(context.call_id());
          call.set_name(name);
          *call.mutable_arguments() = arguments;
          absl::StatusOr<v1::ToolResult> result = tools->Call(
              MemoryScope{.tenant = context.task().tenant(), .agent = context.task().agent()},
              call);
          if (!result.ok()) return result.status();
          if (!result->error().empty()) return absl::InvalidArgumentError(result->error());
          return result->output();
        });
    if (!registered.ok()) return registered;
  }
  return absl::OkStatus();
}

}  // namespace flowork::agent
