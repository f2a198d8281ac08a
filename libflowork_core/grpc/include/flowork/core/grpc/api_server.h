#ifndef FLOWORK_CORE_GRPC_API_SERVER_H_
#define FLOWORK_CORE_GRPC_API_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/common/v1/common.pb.h"
#include "flowork/core/http_server.h"
#include "flowork/core/metrics.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace flowork::core {

// A gRPC service to serve, and the name of its schema in the generated
// descriptor pool ("flowork.router.v1.RouterService").
struct ApiService {
  grpc::Service* service;  // Not owned; must outlive the ApiServer.
  std::string full_name;
};

// Options of an ApiServer. Every field documents its default.
struct ApiServerOptions {
  // gRPC listener, "host:port"; port 0 picks a free port.
  std::string grpc_address = "127.0.0.1:0";
  // The HTTP listener and its limits; `metrics` is filled in by the server.
  HttpServerOptions http;
  // Extra HTTP routes served before the transcoder, e.g. the OpenAI API.
  // Handlers are not owned and must outlive the server.
  std::vector<std::pair<std::string, HttpHandler*>> extra_routes;  // "POST /v1/x"
  // Deadline of each transcoded call. Default 5 minutes.
  absl::Duration call_deadline = absl::Minutes(5);
  // The registry served on /metrics, shared with the caller's own series.
  // Default (null): the server's own. Not owned; must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

// Hosts gRPC services the way every Flowork server does: a gRPC server with
// health checking and reflection, and an HTTP server that transcodes every
// annotated method to JSON (see HttpTranscoder) next to /healthz, /readyz
// and /metrics. Thread-safe.
class ApiServer {
 public:
  virtual ~ApiServer() = default;

  // Starts both listeners. kInvalidArgument for a bad annotation or unknown
  // service name; kUnavailable when an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Create(const ApiServerOptions& options,
                                                           std::vector<ApiService> services);

  virtual int http_port() const = 0;
  virtual int grpc_port() const = 0;
  // "host:port" with the ports actually bound.
  virtual std::string http_address() const = 0;
  virtual std::string grpc_address() const = 0;

  // Metrics served on /metrics; services may add their own.
  virtual MetricsRegistry& metrics() = 0;

  // Marks the server not ready (/readyz 503, gRPC health NOT_SERVING), drains
  // HTTP for up to `grace`, then shuts gRPC down with what remains of it.
  // Idempotent; the destructor calls it with a zero grace.
  virtual void Shutdown(absl::Duration grace) = 0;
};

// Options from a server's `listen` and `http_limits` config sections.
// kInvalidArgument for a malformed address; kPermissionDenied for a
// non-loopback address while `allow_non_loopback` is false (a server that
// cannot authenticate callers must not be reachable from the network).
absl::StatusOr<ApiServerOptions> ApiServerOptionsFromConfig(
    const flowork::common::v1::ListenConfig& listen, const flowork::common::v1::HttpLimits& limits,
    bool allow_non_loopback);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_GRPC_API_SERVER_H_
