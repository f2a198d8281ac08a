#ifndef FLOWORK_CORE_GRPC_HTTP_TRANSCODER_H_
#define FLOWORK_CORE_GRPC_HTTP_TRANSCODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/core/http_server.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/channel.h"

namespace flowork::core {

// Options of an HttpTranscoder. Every field documents its default.
struct HttpTranscoderOptions {
  // Deadline of each call made for an HTTP request. Default 5 minutes.
  absl::Duration call_deadline = absl::Minutes(5);
};

// Serves gRPC methods over HTTP/JSON from their google.api.http annotations:
// path templates with variables, `body: "*"` or a named body field, query
// parameters for the remaining fields, additional_bindings, response_body,
// and server streaming as Server-Sent Events (`data: <json>` per message; a
// failure after the first message ends the stream with `event: error`).
// Calls go through `channel` (typically the server's in-process channel) as
// generic calls, so any service in the descriptor pool works.
//
// Errors are {"code","message","details"} with the HTTP status of
// HttpStatusFromCode(): bad JSON, unknown fields, wrong types, bad path or
// query values -> 400 naming the field; no binding for the path -> 404; a
// path bound only for other methods -> 405.
//
// Responses use the proto3 JSON mapping (lowerCamelCase names); requests
// accept both lowerCamelCase and the proto field names. The request headers
// authorization, x-api-key, x-flowork-zone, x-flowork-session, x-request-id
// and traceparent reach the service as gRPC metadata of the same (lower-case)
// names; other headers, and values that are not printable ASCII, do not.
// Thread-safe.
class HttpTranscoder final : public HttpHandler {
 public:
  // kInvalidArgument when an annotation is malformed or two bindings collide.
  static absl::StatusOr<std::unique_ptr<HttpTranscoder>> Create(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services,
      std::shared_ptr<grpc::Channel> channel, const HttpTranscoderOptions& options = {});

  ~HttpTranscoder() override;

  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override;

  // "POST /v1/echo/{id} -> flowork.test.v1.EchoService.Echo", one per binding.
  std::vector<std::string> DescribeRoutes() const;

 private:
  struct Impl;
  explicit HttpTranscoder(std::shared_ptr<Impl> impl);

  std::shared_ptr<Impl> impl_;  // Shared with calls in flight.
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_GRPC_HTTP_TRANSCODER_H_
