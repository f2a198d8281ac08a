#ifndef FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
#define FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_

#include <memory>

#include "flowork/router/catalog.h"
#include "flowork/router/v1/router.grpc.pb.h"

namespace flowork::router {

// flowork.router.v1.RouterService over one catalog. Mount it in any
// grpc::ServerBuilder. Thread-safe.
class RouterServiceImpl final : public v1::RouterService::CallbackService {
 public:
  // `catalog` is not owned and must outlive the service.
  explicit RouterServiceImpl(const Catalog& catalog) : catalog_(catalog) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  const Catalog& catalog_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GRPC_ROUTER_SERVICE_H_
