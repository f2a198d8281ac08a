#include "worker_service_impl.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/logging.h"

namespace flowork::agent::internal {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return out;
}

bool ValidWorkerId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

// A long-polling Lease: answered by the hub's callback (exactly once), or
// ended early when the caller goes away.
class LeaseReactor final : public grpc::ServerUnaryReactor {
 public:
  LeaseReactor(RemoteWorkHub& hub, v1::LeaseResponse* response)
      : hub_(hub), response_(response), wait_(std::make_shared<Wait>()) {}

  // Must be the last use of `this` by the caller: the answer may already be
  // on its way (and the reactor gone) once the hub has the query.
  void Begin(RemoteWorkHub::LeaseQuery query) {
    std::shared_ptr<Wait> wait = wait_;
    RemoteWorkHub& hub = hub_;
    const uint64_t id =
        hub.Lease(std::move(query), [this](absl::StatusOr<std::optional<v1::WorkItem>> result) {
          if (!result.ok()) return Finish(ToGrpc(result.status()));
          if (result->has_value()) *response_->mutable_work() = **std::move(result);
          Finish(grpc::Status::OK);
        });
    bool cancelled;
    {
      absl::MutexLock lock(&wait->mu);
      wait->id = id;
      cancelled = wait->cancelled;
    }
    if (cancelled && id != 0) hub.CancelLease(id);
  }

  void OnCancel() override {
    uint64_t id;
    {
      absl::MutexLock lock(&wait_->mu);
      wait_->cancelled = true;
      id = wait_->id;
    }
    if (id != 0) hub_.CancelLease(id);
  }
  void OnDone() override { delete this; }

 private:
  struct Wait {
    absl::Mutex mu;
    uint64_t id ABSL_GUARDED_BY(mu) = 0;
    bool cancelled ABSL_GUARDED_BY(mu) = false;
  };
  RemoteWorkHub& hub_;
  v1::LeaseResponse* response_;
  std::shared_ptr<Wait> wait_;
};

}  // namespace

grpc::ServerUnaryReactor* WorkerServiceImpl::Lease(grpc::CallbackServerContext* context,
                                                   const v1::LeaseRequest* request,
                                                   v1::LeaseResponse* response) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  if (!tenant.ok()) return Answer(context, tenant.status());
  if (!ValidWorkerId(request->worker_id())) {
    return Answer(context,
                  absl::InvalidArgumentError(absl::StrCat("worker_id: \"", request->worker_id(),
                                                          "\" must match [A-Za-z0-9._:-]{1,128}")));
  }
  if (request->agents().empty()) {
    return Answer(context, absl::InvalidArgumentError("agents: name at least one remote agent"));
  }
  RemoteWorkHub::LeaseQuery query;
  query.worker_id = request->worker_id();
  query.tenant = *std::move(tenant);
  query.agents.assign(request->agents().begin(), request->agents().end());
  query.wait = absl::Milliseconds(request->wait_ms());
  auto* reactor = new LeaseReactor(hub_, response);
  reactor->Begin(std::move(query));
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* context,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  if (!tenant.ok()) return Answer(context, tenant.status());
  absl::StatusOr<RemoteWorkHub::HeartbeatAnswer> answer =
      hub_.Heartbeat(*tenant, request->lease_id(), request->fencing_token());
  if (!answer.ok()) return Answer(context, answer.status());
  *response->mutable_lease_expire_time() = ToProto(answer->lease_expire_time);
  response->set_cancelled(answer->cancelled);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Complete(grpc::CallbackServerContext* context,
                                                      const v1::CompleteRequest* request,
                                                      v1::CompleteResponse* /*response*/) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  if (!tenant.ok()) return Answer(context, tenant.status());
  absl::Status done =
      hub_.Complete(*tenant, request->lease_id(), request->fencing_token(), request->output());
  if (!done.ok()) {
    core::Log(core::LogLevel::kInfo, "remote work completion refused",
              {{"lease", request->lease_id()}, {"error", done.message()}});
  }
  return Answer(context, done);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Fail(grpc::CallbackServerContext* context,
                                                  const v1::FailRequest* request,
                                                  v1::FailResponse* /*response*/) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  if (!tenant.ok()) return Answer(context, tenant.status());
  return Answer(context, hub_.Fail(*tenant, request->lease_id(), request->fencing_token(),
                                   request->error(), request->retryable()));
}

}  // namespace flowork::agent::internal
