#ifndef FLOWORK_AGENT_TOOL_REGISTRY_H_
#define FLOWORK_AGENT_TOOL_REGISTRY_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/agent.h"
#include "flowork/agent/v1/effect.pb.h"
#include "flowork/agent/v1/task.pb.h"
#include "flowork/agent/v1/tools.pb.h"
#include "flowork/core/http_client.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// A tool as the model sees it.
struct ToolDefinition {
  // [a-zA-Z0-9_-]{1,64}, unique in a registry.
  std::string name;
  // What the tool does and when to use it; shown to the model.
  std::string description;
  // JSON Schema of the arguments (see JsonSchema for the keywords checked),
  // either as JSON text or as a Struct: set at most one. Neither:
  // {"type":"object"}, any object.
  std::string parameters_json_schema;
  google::protobuf::Struct parameters;
};

// One tool call as its tool sees it. Thread-safe.
class ToolContext {
 public:
  virtual ~ToolContext() = default;
  // The task whose agent made the call.
  virtual const v1::Task& task() const = 0;
  // The call's id (v1::ToolCall.id).
  virtual const std::string& call_id() const = 0;
  // When the runtime gives up on the call.
  virtual absl::Time deadline() const = 0;
  // True once the call was abandoned (the effect was cancelled or timed
  // out). A tool should stop; what it reports afterwards is dropped.
  virtual bool cancelled() const = 0;
  // Runs `on_cancel` once when the call is abandoned, at once if it already
  // was. An asynchronous tool aborts its work there.
  virtual void OnCancel(absl::AnyInvocable<void() &&> on_cancel) = 0;
  // Progress: resets the step's heartbeat watchdog.
  virtual void Heartbeat() = 0;
};

// What a tool answers: its output, or an error the model is shown.
using ToolOutput = absl::StatusOr<google::protobuf::Value>;
// A synchronous tool. Runs on the registry's thread pool, so it may block
// (bounded, and checking context.cancelled() when it is long); called for
// many calls at once: thread-safe. `arguments` passed the tool's schema.
using NativeTool = absl::AnyInvocable<ToolOutput(const google::protobuf::Value& arguments,
                                                 ToolContext& context) const>;
// Receives an asynchronous tool's answer; call it exactly once, on any thread.
using ToolDone = absl::AnyInvocable<void(ToolOutput) &&>;
// An asynchronous tool. Called on the runtime's thread: it must not block,
// only start its work and return. Thread-safe.
using AsyncNativeTool =
    absl::AnyInvocable<void(const google::protobuf::Value& arguments,
                            std::shared_ptr<ToolContext> context, ToolDone done) const>;
// The tools an agent may use (its AgentSpec.tools). kNotFound: no such agent
// (it may use none); any other error fails the whole effect (retried by the
// agent's retry policy). Called on the runtime's threads: must not block;
// thread-safe.
using AgentToolsLookup =
    std::function<absl::StatusOr<std::vector<std::string>>(std::string_view agent)>;

// Options of a ToolRegistry. Every field documents its default.
struct ToolRegistryOptions {
  // Threads that run synchronous native tools, read secret files and
  // resolve HTTP tools' host names. Default 4.
  int threads = 4;
  // The client for HTTP tools. Not owned; must outlive the registry. Null:
  // the registry makes its own (one I/O thread).
  core::HttpClient* http_client = nullptr;
  // Where the tools of an agent not set with SetAgentTools come from.
  // Empty: such an agent may use no tool.
  AgentToolsLookup agent_tools;
  // An HTTP tool's whole exchange when its config sets no timeout.
  // Default 30 s.
  absl::Duration http_timeout = absl::Seconds(30);
  // An HTTP tool's response body beyond this is cut off (the output says
  // "truncated": true). Default 1 MiB.
  std::size_t max_http_response_bytes = 1024 * 1024;
};

// The tools agents may call, and the EffectHandler that performs `tools`
// effects (AgentRuntimeOptions::tools). Perform runs every call of a
// ToolCalls effect in parallel and answers one ToolResults, a result per call
// in call order. A call that fails — unknown tool, tool the agent may not
// use, arguments that do not match the tool's schema, tool error, HTTP error
// — gets a result with `error` set, which the agent (and its model) sees;
// the effect itself fails only when the registry cannot work (agent tools
// lookup failed, not a tools effect) or is cancelled. Cancelling the effect
// cancels every call (aborting HTTP exchanges and asynchronous tools that
// listen) and answers kCancelled at once.
//
// Kinds of tools: native synchronous (run on a thread pool, never on the
// runtime's threads), native asynchronous, and HTTP tools declared in
// config (v1::HttpTool) with SSRF protection: the URL's host must be in the
// tool's allowed_hosts, and unless allow_private_addresses every address it
// resolves to must be public; the exchange then connects only to those
// checked addresses (no DNS-rebinding window). Redirects are not followed.
// Secrets in headers are resolved per call; their values are replaced by
// "[redacted]" in anything returned (a server echoing them back included).
//
// Tools may be registered and agent tool lists set at any time. Thread-safe.
// The registry must outlive the runtime using it.
class ToolRegistry : public EffectHandler {
 public:
  static absl::StatusOr<std::unique_ptr<ToolRegistry>> Create(const ToolRegistryOptions& options);
  ~ToolRegistry() override = default;

  // kInvalidArgument: bad name or schema (the message says which);
  // kAlreadyExists: a tool by that name is registered.
  virtual absl::Status RegisterNative(ToolDefinition definition, NativeTool tool) = 0;
  virtual absl::Status RegisterNativeAsync(ToolDefinition definition, AsyncNativeTool tool) = 0;
  // kInvalidArgument names the field at fault: `url_template: host
  // "evil.example" is not in allowed_hosts`. kAlreadyExists as above.
  virtual absl::Status RegisterHttp(const v1::HttpTool& tool) = 0;

  // The tools `agent` may call, replacing an earlier list and taking
  // precedence over options.agent_tools.
  virtual void SetAgentTools(std::string_view agent, std::vector<std::string> tools) = 0;

  // The definitions of the tools `agent` may use, in the order listed, in
  // OpenAI's `tools` format, as JSON text:
  // [{"type":"function","function":{"name":..,"description":..,"parameters":{..}}}].
  // kNotFound: a listed tool is not registered. Errors of the lookup as is.
  virtual absl::StatusOr<std::string> OpenAiToolsJson(std::string_view agent) const = 0;
  // The same for tools given by name.
  virtual absl::StatusOr<std::string> OpenAiToolsJsonOf(
      const std::vector<std::string>& tools) const = 0;

  // EffectHandler: performs a `tools` effect (see the class comment).
  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override = 0;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TOOL_REGISTRY_H_
