#ifndef FLOWORK_ROUTER_GRPC_ADMIN_SERVICE_H_
#define FLOWORK_ROUTER_GRPC_ADMIN_SERVICE_H_

#include "flowork/router/audit_log.h"
#include "flowork/router/config_history.h"
#include "flowork/router/key_store.h"
#include "flowork/router/policy.h"
#include "flowork/router/v1/admin.grpc.pb.h"

namespace flowork::router {

// flowork.router.v1.RouterAdminService. Every method first authenticates the
// caller from the gRPC metadata `authorization: Bearer <key>` (or
// `x-api-key`) against the running configuration's `admin_keys`: a missing or
// unknown key is UNAUTHENTICATED, a client key PERMISSION_DENIED. Without
// admin keys the API answers only when `auth.mode` is none (which the
// configuration allows on loopback listeners only); otherwise every call is
// PERMISSION_DENIED. Mount it in any grpc::ServerBuilder. Thread-safe.
class RouterAdminServiceImpl final : public v1::RouterAdminService::CallbackService {
 public:
  // None is owned; all must outlive the service. `audit` may be null (audit
  // disabled): GetUsage, QueryAudit and VerifyAudit then answer
  // FAILED_PRECONDITION.
  RouterAdminServiceImpl(ConfigHistory& history, PolicyEngine& policy, KeyStore& keys,
                         AuditLog* audit)
      : history_(history), policy_(policy), keys_(keys), audit_(audit) {}

  grpc::ServerUnaryReactor* GetConfig(grpc::CallbackServerContext* context,
                                      const v1::GetConfigRequest* request,
                                      v1::GetConfigResponse* response) override;
  grpc::ServerUnaryReactor* ValidateConfig(grpc::CallbackServerContext* context,
                                           const v1::ValidateConfigRequest* request,
                                           v1::ValidateConfigResponse* response) override;
  grpc::ServerUnaryReactor* ApplyConfig(grpc::CallbackServerContext* context,
                                        const v1::ApplyConfigRequest* request,
                                        v1::ApplyConfigResponse* response) override;
  grpc::ServerUnaryReactor* RollbackConfig(grpc::CallbackServerContext* context,
                                           const v1::RollbackConfigRequest* request,
                                           v1::ApplyConfigResponse* response) override;
  grpc::ServerUnaryReactor* ListEndpoints(grpc::CallbackServerContext* context,
                                          const v1::ListEndpointsRequest* request,
                                          v1::ListEndpointsResponse* response) override;
  grpc::ServerUnaryReactor* GetUsage(grpc::CallbackServerContext* context,
                                     const v1::GetUsageRequest* request,
                                     v1::GetUsageResponse* response) override;
  grpc::ServerUnaryReactor* QueryAudit(grpc::CallbackServerContext* context,
                                       const v1::QueryAuditRequest* request,
                                       v1::QueryAuditResponse* response) override;
  grpc::ServerUnaryReactor* VerifyAudit(grpc::CallbackServerContext* context,
                                        const v1::VerifyAuditRequest* request,
                                        v1::VerifyAuditResponse* response) override;
  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* context,
                                      const v1::CreateKeyRequest* request,
                                      v1::CreateKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokeKey(grpc::CallbackServerContext* context,
                                      const v1::RevokeKeyRequest* request,
                                      v1::RevokeKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* context,
                                     const v1::ListKeysRequest* request,
                                     v1::ListKeysResponse* response) override;

 private:
  // OK when the caller holds an admin key (or none is needed).
  absl::Status Authorize(const grpc::CallbackServerContext& context) const;

  ConfigHistory& history_;
  PolicyEngine& policy_;
  KeyStore& keys_;
  AuditLog* const audit_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_GRPC_ADMIN_SERVICE_H_
