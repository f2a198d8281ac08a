// Private to flowork::agent_grpc: flowork.agent.v1.WorkerService over a
// RemoteWorkHub, scoped to the caller's tenant.
#ifndef FLOWORK_AGENT_GRPC_SRC_WORKER_SERVICE_IMPL_H_
#define FLOWORK_AGENT_GRPC_SRC_WORKER_SERVICE_IMPL_H_

#include "api_keys.h"
#include "flowork/agent/remote_work_hub.h"
#include "flowork/agent/v1/worker_service.grpc.pb.h"

namespace flowork::agent::internal {

// Remote workers lease, renew and end work of their tenant's tasks. Lease
// long-polls without holding a thread. Thread-safe.
class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  // Both must outlive the service.
  WorkerServiceImpl(RemoteWorkHub& hub, const ApiKeys& keys) : hub_(hub), keys_(keys) {}

  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* context,
                                  const v1::LeaseRequest* request,
                                  v1::LeaseResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* context,
                                     const v1::CompleteRequest* request,
                                     v1::CompleteResponse* response) override;
  grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* context,
                                 const v1::FailRequest* request,
                                 v1::FailResponse* response) override;

 private:
  RemoteWorkHub& hub_;
  const ApiKeys& keys_;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_WORKER_SERVICE_IMPL_H_
