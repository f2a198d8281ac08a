#ifndef FLOWORK_ROUTER_SRC_GOVERNANCE_REQUEST_TRAIL_H_
#define FLOWORK_ROUTER_SRC_GOVERNANCE_REQUEST_TRAIL_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "flowork/router/attempt_plan.h"
#include "flowork/router/gateway.h"
#include "flowork/router/v1/audit.pb.h"
#include "flowork/router/v1/config.pb.h"
#include "governance/gateway_metrics.h"
#include "providers/translation.h"

namespace flowork::router {

// What the router books about one request while it runs, closed exactly
// once: the usage reservation is settled with the real tokens and cost, the
// audit entry appended, the metrics counted. Not thread-safe: owned by the
// request and touched under its lock.
class RequestTrail {
 public:
  // `metrics` may be null; `services` and `metrics` must outlive the trail.
  RequestTrail(const GatewayGovernance& services, GatewayMetrics* metrics, absl::Time started);
  // The moved-from trail is inert: it books nothing.
  RequestTrail(RequestTrail&& other) noexcept;
  RequestTrail& operator=(RequestTrail&&) = delete;
  ~RequestTrail();  // Closes as cancelled (499) if nobody closed it.

  // Whether the audit entry is kept (the log is on): fill the costly parts
  // only then.
  bool auditing() const { return services_ != nullptr && services_->audit != nullptr; }
  // Only while auditing().
  v1::AuditEntry& entry() { return *entry_; }

  // The model as asked; audited as is. Metrics label it only once
  // ModelResolved says it names a model or route of the config, so callers
  // cannot mint series with made-up names.
  void set_model(std::string model) { model_ = std::move(model); }
  void ModelResolved() { model_resolved_ = true; }

  // With `audit.capture_bodies`: keeps `request_body` (redacted by
  // `config.redact_fields`, or the defaults) and, later, the answer's body.
  void CaptureBodies(const v1::AuditConfig& config, std::string_view request_body);
  // Keeps a whole answer's body when bodies are captured.
  void CaptureResponse(std::string_view body);
  // The request holds `reservation` until Close.
  void Admitted(UsageReservation reservation) { reservation_ = std::move(reservation); }
  // The plan's target, objective, seed and verdict on every candidate.
  void Planned(const AttemptPlan& plan);
  // One attempt ended.
  void Attempted(v1::AuditAttempt attempt);
  // `endpoint` answered with `usage`.
  void Answered(const Endpoint& endpoint, const TokenUsage& usage,
                std::optional<absl::Duration> ttft);

  // `outcome`: ok, rejected, failed or cancelled. Later calls do nothing.
  void Close(int status, std::string_view outcome, std::string_view error, int64_t overhead_us);
  bool closed() const { return closed_; }

 private:
  std::string_view answered_endpoint() const {
    return answered_endpoint_ == nullptr ? std::string_view() : *answered_endpoint_;
  }

  const GatewayGovernance* services_;
  GatewayMetrics* metrics_;
  absl::Time started_;
  bool closed_ = false;
  std::string model_;
  bool model_resolved_ = false;
  std::unique_ptr<v1::AuditEntry> entry_;  // Made only when auditing.
  std::optional<UsageReservation> reservation_;
  const v1::Model* answered_model_ = nullptr;
  // The answering endpoint's name; its state outlives the request's plan.
  const std::string* answered_endpoint_ = nullptr;
  TokenUsage usage_;
  std::optional<absl::Duration> ttft_;
  bool capture_ = false;
  std::vector<std::string> redact_fields_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_SRC_GOVERNANCE_REQUEST_TRAIL_H_
