#ifndef FLOWORK_AGENT_MCP_CLIENT_H_
#define FLOWORK_AGENT_MCP_CLIENT_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/effect.pb.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

namespace internal {
class McpSession;
}  // namespace internal

// How to run one MCP server (Model Context Protocol, JSON-RPC 2.0 over the
// server's stdin and stdout, one message a line).
struct McpServerOptions {
  // The program, found on the client's PATH when it has no '/'. Executed
  // directly with `args`, never through a shell. Required.
  std::string command;
  std::vector<std::string> args;
  // Added to the client's own environment (a name given here wins).
  std::map<std::string, std::string> env;
  // The server's working directory. Default: the client's.
  std::string working_dir;
  // How long the server has to answer `initialize`. Default 10 s.
  absl::Duration startup_timeout = absl::Seconds(10);
  // The deadline of each ListTools page and of CallTool without a timeout of
  // its own. Default 60 s.
  absl::Duration call_timeout = absl::Seconds(60);
  // On destruction the client closes the server's stdin and waits this long
  // for it to exit, then sends SIGTERM and waits as long again, then SIGKILL.
  // Default 2 s.
  absl::Duration shutdown_grace = absl::Seconds(2);
  // The protocol revision offered in `initialize`. The server may answer with
  // any revision the client speaks: "2024-11-05", "2025-03-26" or
  // "2025-06-18". Default "2025-03-26".
  std::string protocol_version = "2025-03-26";
  // The newest bytes of the server's stderr kept for error messages.
  // Default 64 KiB.
  size_t stderr_buffer_bytes = 64 * 1024;
  // Longer lines from the server are logged and skipped. Default 16 MiB.
  size_t max_message_bytes = 16 * 1024 * 1024;
};

// What the server said about itself in its `initialize` answer.
struct McpServerInfo {
  std::string name;
  std::string version;
  // The protocol revision in use.
  std::string protocol_version;
  // Optional usage hints for a model.
  std::string instructions;
};

// One tool a server offers.
struct McpTool {
  std::string name;
  std::string description;
  // The JSON Schema of the tool's arguments, as a JSON text.
  std::string input_schema;
};

// A tool call in flight. Thread-safe; may outlive the client.
class McpToolCall {
 public:
  virtual ~McpToolCall() = default;
  // Gives up on the call: tells the server (`notifications/cancelled`) and
  // completes the call's callback with kCancelled, unless it has completed
  // already (then nothing happens). Does not wait.
  virtual void Cancel() = 0;
};

// A client of one MCP server that it runs as a child process. Thread-safe.
// Nothing blocks the caller's thread on the server except Start: the
// client's own thread does all I/O and runs every callback. A callback runs
// exactly once and never inside the call that took it; it must not block
// (it holds up every other call of this client) but may call the client.
//
// Errors: kUnavailable when the server exited or stopped reading (the
// message ends with the tail of its stderr); every call after that fails at
// once the same way. kDeadlineExceeded when a call got no answer in time (the
// server is told to cancel it). A JSON-RPC error from the server maps to a
// status: -32602 (invalid params, e.g. an unknown tool) kInvalidArgument,
// -32601 kUnimplemented, others kInternal or kUnknown.
class McpClient {
 public:
  using ListToolsCallback = absl::AnyInvocable<void(absl::StatusOr<std::vector<McpTool>>) &&>;
  using CallToolCallback = absl::AnyInvocable<void(absl::StatusOr<v1::ToolResult>) &&>;

  // Runs the server and completes the MCP handshake (`initialize`, then
  // `notifications/initialized`); blocks until then. kInvalidArgument: bad
  // options. kNotFound / kPermissionDenied: the command cannot be run.
  // kUnavailable: the server exited or did not answer `initialize` within
  // startup_timeout (with its stderr tail). kFailedPrecondition: the server
  // speaks a protocol revision this client does not.
  static absl::StatusOr<std::unique_ptr<McpClient>> Start(const McpServerOptions& options);

  // Fails calls in flight with kCancelled, closes the server's stdin and
  // reaps it (see shutdown_grace). May block up to twice shutdown_grace.
  ~McpClient();

  McpClient(const McpClient&) = delete;
  McpClient& operator=(const McpClient&) = delete;

  const McpServerInfo& server_info() const;

  // Every tool the server offers, following `nextCursor` across pages.
  void ListTools(ListToolsCallback done);

  // Calls tool `name`. `arguments` is a JSON object (a struct Value; unset or
  // null means no arguments). On success the result's `output` is the
  // server's `structuredContent` when present, else its text content joined
  // with newlines (as a string Value; non-text items appear as
  // "[image image/png]" and the like). A result the server marks `isError`
  // completes OK with `error` set to that text instead. The result's `id` is
  // left empty for the caller to fill. `timeout` bounds the wait for an
  // answer; a timeout <= 0 fails at once with kDeadlineExceeded.
  std::shared_ptr<McpToolCall> CallTool(std::string name, google::protobuf::Value arguments,
                                        absl::Duration timeout, CallToolCallback done);
  // As above with the options' call_timeout.
  std::shared_ptr<McpToolCall> CallTool(std::string name, google::protobuf::Value arguments,
                                        CallToolCallback done);

 private:
  explicit McpClient(std::shared_ptr<internal::McpSession> session);

  std::shared_ptr<internal::McpSession> session_;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_MCP_CLIENT_H_
