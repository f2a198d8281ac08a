#include "flowork/router/grpc/admin_service.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/router/endpoint_stats.h"
#include "google/protobuf/util/time_util.h"

namespace flowork::router {
namespace {

// The one place admin-service errors become gRPC statuses.
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status.ok() ? grpc::Status::OK
                              : grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                                             std::string(status.message())));
  return reactor;
}

std::string Metadata(const grpc::CallbackServerContext& context, const char* name) {
  auto it = context.client_metadata().find(name);
  if (it == context.client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::Status AuditDisabled() {
  return absl::FailedPreconditionError("audit is disabled: set audit.path in the configuration");
}

v1::RouterConfig Redacted(const v1::RouterConfig& config) {
  v1::RouterConfig redacted = config;
  for (v1::ApiKey& key : *redacted.mutable_keys()) key.set_sha256(kRedacted);
  for (v1::AdminKey& key : *redacted.mutable_admin_keys()) key.set_sha256(kRedacted);
  return redacted;
}

}  // namespace

absl::Status RouterAdminServiceImpl::Authorize(const grpc::CallbackServerContext& context) const {
  const std::shared_ptr<const v1::RouterConfig> config = history_.Current().config;
  const std::string authorization = Metadata(context, "authorization");
  const std::string x_api_key = Metadata(context, "x-api-key");
  if (config->admin_keys().empty()) {
    if (config->auth().mode() == v1::AuthConfig::MODE_NONE) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "the admin API is disabled: no admin_keys are configured (see docs/operations.md)");
  }
  const std::string_view presented = KeyRing::PresentedKey(authorization, x_api_key);
  if (presented.empty()) {
    return absl::UnauthenticatedError(
        "no admin key: send it as \"authorization: Bearer <admin key>\" or \"x-api-key\"");
  }
  const std::string hash = KeyRing::Sha256Hex(presented);
  for (const v1::AdminKey& key : config->admin_keys()) {
    if (key.sha256() == hash) return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<const v1::ApiKey>> client =
      keys_.Identify(authorization, x_api_key);
  if (client.ok() && *client != nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "key \"", (*client)->name(), "\" is a client key; admin methods need an admin key"));
  }
  return absl::UnauthenticatedError("unknown admin key");
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::GetConfig(grpc::CallbackServerContext* context,
                                                            const v1::GetConfigRequest*,
                                                            v1::GetConfigResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  const ConfigHistory::Version current = history_.Current();
  *response->mutable_config() = Redacted(*current.config);
  response->set_version(current.version);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::ValidateConfig(
    grpc::CallbackServerContext* context, const v1::ValidateConfigRequest* request,
    v1::ValidateConfigResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  for (std::string& problem : history_.Validate(request->config())) {
    response->add_problems(std::move(problem));
  }
  response->set_valid(response->problems().empty());
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::ApplyConfig(grpc::CallbackServerContext* context,
                                                              const v1::ApplyConfigRequest* request,
                                                              v1::ApplyConfigResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  absl::StatusOr<uint64_t> version = history_.Apply(request->config(), request->expected_version());
  if (version.ok()) response->set_version(*version);
  return Finish(context, version.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::RollbackConfig(
    grpc::CallbackServerContext* context, const v1::RollbackConfigRequest* request,
    v1::ApplyConfigResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  absl::StatusOr<uint64_t> version = history_.Rollback(request->version());
  if (version.ok()) response->set_version(*version);
  return Finish(context, version.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::ListEndpoints(
    grpc::CallbackServerContext* context, const v1::ListEndpointsRequest*,
    v1::ListEndpointsResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  const std::shared_ptr<const Policy> snapshot = policy_.Current();
  const absl::Time now = policy_.stats().clock().Now();
  for (const v1::Model& model : snapshot->config().models()) {
    v1::EndpointStatus& status = *response->add_endpoints();
    status.set_endpoint(absl::StrCat(model.name(), "@", model.provider()));
    status.set_provider(model.provider());
    status.set_model(model.name());
    for (const v1::Provider& provider : snapshot->config().providers()) {
      if (provider.name() == model.provider()) status.set_zone(provider.zone());
    }
    std::shared_ptr<EndpointState> state = policy_.stats().Find(status.endpoint());
    if (state == nullptr) {
      status.set_circuit(CircuitStateName(CircuitState::kClosed));
      status.set_healthy(true);
      continue;
    }
    const EndpointReading reading = state->Read(now);
    status.set_circuit(CircuitStateName(reading.circuit));
    status.set_healthy(reading.circuit != CircuitState::kOpen && reading.cooldown_until <= now);
    status.set_in_flight(static_cast<uint32_t>(std::max(reading.in_flight, 0)));
    if (reading.latency_ewma_ms) status.set_latency_ms(*reading.latency_ewma_ms);
    if (reading.ttft_ewma_ms) status.set_ttft_ms(*reading.ttft_ewma_ms);
    if (reading.cooldown_until > now) {
      *status.mutable_cooldown_until() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(reading.cooldown_until));
    }
  }
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::GetUsage(grpc::CallbackServerContext* context,
                                                           const v1::GetUsageRequest* request,
                                                           v1::GetUsageResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  if (audit_ == nullptr) return Finish(context, AuditDisabled());
  absl::StatusOr<v1::GetUsageResponse> usage = audit_->Usage(*request);
  if (usage.ok()) *response = *std::move(usage);
  return Finish(context, usage.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::QueryAudit(grpc::CallbackServerContext* context,
                                                             const v1::QueryAuditRequest* request,
                                                             v1::QueryAuditResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  if (audit_ == nullptr) return Finish(context, AuditDisabled());
  absl::StatusOr<v1::QueryAuditResponse> entries = audit_->Query(*request);
  if (entries.ok()) *response = *std::move(entries);
  return Finish(context, entries.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::VerifyAudit(grpc::CallbackServerContext* context,
                                                              const v1::VerifyAuditRequest*,
                                                              v1::VerifyAuditResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  if (audit_ == nullptr) return Finish(context, AuditDisabled());
  absl::StatusOr<v1::VerifyAuditResponse> verdict = audit_->Verify();
  if (verdict.ok()) *response = *std::move(verdict);
  return Finish(context, verdict.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::CreateKey(grpc::CallbackServerContext* context,
                                                            const v1::CreateKeyRequest* request,
                                                            v1::CreateKeyResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  absl::StatusOr<v1::CreateKeyResponse> created = keys_.Create(*request);
  if (created.ok()) *response = *std::move(created);
  return Finish(context, created.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::RevokeKey(grpc::CallbackServerContext* context,
                                                            const v1::RevokeKeyRequest* request,
                                                            v1::RevokeKeyResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  absl::StatusOr<v1::KeyInfo> revoked = keys_.Revoke(request->name());
  if (revoked.ok()) *response->mutable_key() = *std::move(revoked);
  return Finish(context, revoked.status());
}

grpc::ServerUnaryReactor* RouterAdminServiceImpl::ListKeys(grpc::CallbackServerContext* context,
                                                           const v1::ListKeysRequest*,
                                                           v1::ListKeysResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return Finish(context, s);
  for (v1::KeyInfo& key : keys_.List()) *response->add_keys() = std::move(key);
  return Finish(context, absl::OkStatus());
}

}  // namespace flowork::router
