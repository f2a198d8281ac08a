#ifndef FLOWORK_AGENT_GRPC_AGENT_SERVER_H_
#define FLOWORK_AGENT_GRPC_AGENT_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/v1/config.pb.h"

namespace flowork::agent {

// The whole flowork-agent server from its config: the SQLite task store
// (store.path), the agent runtime, an LLM client to the router (gRPC at
// router.target, an OpenAI-compatible API at router.http, or a router
// embedded in the process from router.embedded), the declared agents plus those created
// through the API earlier, and flowork.agent.v1.AgentService served over gRPC
// and HTTP/JSON (with /healthz, /readyz, /metrics). Sessions, long-term
// memory and pinned memory live in the task store's file; agents get the
// tools their spec lists from one registry (the memory tools, `tools.http`
// and the tools of the `tools.mcp` servers, started with the server), and
// calls of the tools in their spec's `approval` wait for a decision through
// the approvals API. Callers authenticate
// with API keys (`keys`, each one tenant); without keys the server admits
// anonymous callers as the tenant "default", and then only on loopback
// listeners. Thread-safe.
class AgentServer {
 public:
  // Starts serving. kInvalidArgument naming the config field that is wrong;
  // kPermissionDenied for a non-loopback listener without auth;
  // kUnavailable when a listener cannot be bound or the store opened.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Create(const v1::AgentConfig& config);

  // Shuts down with a zero grace if Shutdown was not called.
  virtual ~AgentServer() = default;

  // "host:port" with the ports actually bound.
  virtual std::string http_address() const = 0;
  virtual std::string grpc_address() const = 0;

  // Not ready at once (/readyz 503), drains HTTP and gRPC calls for up to
  // `grace` (event streams are ended), then stops the runtime: model and tool
  // calls in flight are abandoned and performed again after the next start.
  // Idempotent.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_GRPC_AGENT_SERVER_H_
