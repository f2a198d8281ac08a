#include "flowork/agent/grpc/agent_service.h"

namespace flowork::agent {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Finishes a unary call with `result`'s value or its status.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                absl::StatusOr<v1::AgentSpec> result, v1::AgentSpec* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!result.ok()) {
    reactor->Finish(ToGrpc(result.status()));
  } else {
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
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

grpc::ServerUnaryReactor* AgentServiceImpl::CreateAgent(grpc::CallbackServerContext* context,
                                                        const v1::CreateAgentRequest* request,
                                                        v1::AgentSpec* response) {
  return Reply(context, registry_.Add(request->agent()), response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetAgent(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentRequest* request,
                                                     v1::AgentSpec* response) {
  return Reply(context, registry_.Get(request->name()), response);
}

}  // namespace flowork::agent
