#ifndef FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
#define FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_

#include <memory>

#include "flowork/router/policy.h"
#include "flowork/router/v1/router.grpc.pb.h"

namespace flowork::router {

// flowork.router.v1.RouterService over a policy engine: every call reads the
// engine's current snapshot, so reloads show at once. Mount it in any
// grpc::ServerBuilder. Thread-safe.
class RouterServiceImpl final : public v1::RouterService::CallbackService {
 public:
  // `policy` is not owned and must outlive the service.
  explicit RouterServiceImpl(const PolicyEngine& policy) : policy_(policy) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* ExplainRoute(grpc::CallbackServerContext* context,
                                         const v1::ExplainRouteRequest* request,
                                         v1::ExplainRouteResponse* response) override;

 private:
  const PolicyEngine& policy_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
