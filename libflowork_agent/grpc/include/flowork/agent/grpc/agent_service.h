#ifndef FLOWORK_AGENT_GRPC_AGENT_SERVICE_H_
#define FLOWORK_AGENT_GRPC_AGENT_SERVICE_H_

#include "flowork/agent/agent_registry.h"
#include "flowork/agent/v1/agent.grpc.pb.h"

namespace flowork::agent {

// flowork.agent.v1.AgentService over an AgentRegistry. Mount it in any
// grpc::ServerBuilder. Thread-safe.
class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  // `registry` is not owned and must outlive the service.
  explicit AgentServiceImpl(AgentRegistry& registry) : registry_(registry) {}

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* CreateAgent(grpc::CallbackServerContext* context,
                                        const v1::CreateAgentRequest* request,
                                        v1::AgentSpec* response) override;
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentSpec* response) override;

 private:
  AgentRegistry& registry_;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_GRPC_AGENT_SERVICE_H_
