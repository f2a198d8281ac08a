#include "flowork/agent/grpc/agent_service.h"

namespace flowork::agent {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::ListAgents(grpc::CallbackServerContext* context,
                                                       const v1::ListAgentsRequest* request,
                                                       v1::ListAgentsResponse* response) {
  for (v1::AgentSpec& spec : registry_.List(request->kind())) {
    *response->add_agents() = std::move(spec);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetAgent(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentRequest* request,
                                                     v1::AgentSpec* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::AgentSpec> spec = registry_.Get(request->name());
  if (!spec.ok()) {
    reactor->Finish(ToGrpc(spec.status()));
  } else {
    *response = *std::move(spec);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

}  // namespace flowork::agent
