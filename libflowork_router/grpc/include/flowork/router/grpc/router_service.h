#ifndef FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
#define FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_

#include <memory>

#include "flowork/core/http_server.h"
#include "flowork/router/policy.h"
#include "flowork/router/v1/router.grpc.pb.h"

namespace flowork::router {

// flowork.router.v1.RouterService over a policy engine and the router's
// OpenAI-compatible gateway. ListModels and ExplainRoute read the engine's
// current snapshot, so reloads show at once. Chat, StreamChat and Embed turn
// the typed request into the OpenAI JSON body and run it through `gateway`
// in process (POST /v1/chat/completions or /v1/embeddings) with the call's
// authorization, x-api-key, x-flowork-zone, x-flowork-session, x-request-id
// and traceparent metadata as headers, so keys, policy, limits, failover and
// audit are exactly the HTTP path's; the gateway's HTTP errors become gRPC
// statuses in one place (see router.proto). Cancelling a call cancels its
// upstream request. Mount it in any grpc::ServerBuilder. Thread-safe.
class RouterServiceImpl final : public v1::RouterService::CallbackService {
 public:
  // Neither is owned; both must outlive the service. `gateway` is normally
  // a Gateway (flowork/router/gateway.h).
  RouterServiceImpl(const PolicyEngine& policy, core::HttpHandler& gateway)
      : policy_(policy), gateway_(gateway) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* ExplainRoute(grpc::CallbackServerContext* context,
                                         const v1::ExplainRouteRequest* request,
                                         v1::ExplainRouteResponse* response) override;
  grpc::ServerUnaryReactor* Chat(grpc::CallbackServerContext* context,
                                 const v1::ChatRequest* request,
                                 v1::ChatResponse* response) override;
  grpc::ServerWriteReactor<v1::ChatChunk>* StreamChat(grpc::CallbackServerContext* context,
                                                      const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;

 private:
  const PolicyEngine& policy_;
  core::HttpHandler& gateway_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
