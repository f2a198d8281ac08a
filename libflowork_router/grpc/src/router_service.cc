#include "flowork/router/grpc/router_service.h"

namespace flowork::router {

grpc::ServerUnaryReactor* RouterServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                        const v1::ListModelsRequest* request,
                                                        v1::ListModelsResponse* response) {
  *response = catalog_.List(*request);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace flowork::router
