#include "governance/request_trail.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"
#include "flowork/core/internal/wall_clock.h"
#include "flowork/router/audit_log.h"

namespace flowork::router {

RequestTrail::RequestTrail(const GatewayGovernance& services, GatewayMetrics* metrics,
                           absl::Time started)
    : services_(&services),
      metrics_(metrics),
      started_(started),
      entry_(services.audit != nullptr ? std::make_unique<v1::AuditEntry>() : nullptr) {}

RequestTrail::RequestTrail(RequestTrail&& other) noexcept
    : services_(std::exchange(other.services_, nullptr)),
      metrics_(other.metrics_),
      started_(other.started_),
      closed_(other.closed_),
      model_(std::move(other.model_)),
      model_resolved_(other.model_resolved_),
      entry_(std::move(other.entry_)),
      reservation_(std::move(other.reservation_)),
      answered_model_(other.answered_model_),
      answered_endpoint_(other.answered_endpoint_),
      usage_(other.usage_),
      ttft_(other.ttft_),
      capture_(other.capture_),
      redact_fields_(std::move(other.redact_fields_)) {}

RequestTrail::~RequestTrail() {
  if (services_ != nullptr && !closed_) {
    Close(499, "cancelled", "the caller went away",
          absl::ToInt64Microseconds(core::internal::WallNow() - started_));
  }
}

void RequestTrail::CaptureBodies(const v1::AuditConfig& config, std::string_view request_body) {
  if (!auditing() || !config.capture_bodies()) return;
  capture_ = true;
  if (config.redact_fields().empty()) {
    redact_fields_ = {"api_key", "authorization", "password", "secret"};
  } else {
    redact_fields_.assign(config.redact_fields().begin(), config.redact_fields().end());
  }
  entry_->set_request_body(RedactJson(request_body, redact_fields_));
}

void RequestTrail::CaptureResponse(std::string_view body) {
  if (capture_) entry_->set_response_body(RedactJson(body, redact_fields_));
}

void RequestTrail::Planned(const AttemptPlan& plan) {
  if (!auditing()) return;
  entry_->set_target(plan.target);
  entry_->set_objective(plan.objective);
  entry_->set_seed(plan.seed);
  for (const CandidateDecision& decision : plan.decisions) {
    v1::AuditCandidate& candidate = *entry_->add_candidates();
    candidate.set_endpoint(decision.endpoint.name());
    candidate.set_kept(decision.kept());
    candidate.set_reason(decision.Explain());
  }
}

void RequestTrail::Attempted(v1::AuditAttempt attempt) {
  if (auditing()) *entry_->add_attempts() = std::move(attempt);
}

void RequestTrail::Answered(const Endpoint& endpoint, const TokenUsage& usage,
                            std::optional<absl::Duration> ttft) {
  answered_model_ = endpoint.model;
  answered_endpoint_ = &endpoint.name();
  usage_ = usage;
  ttft_ = ttft;
}

void RequestTrail::Close(int status, std::string_view outcome, std::string_view error,
                         int64_t overhead_us) {
  if (closed_ || services_ == nullptr) return;
  closed_ = true;
  const absl::Duration duration = core::internal::WallNow() - started_;
  const double cost =
      answered_model_ == nullptr
          ? 0
          : UsageCostUsd(answered_model_->price(), static_cast<int64_t>(usage_.prompt_tokens),
                         static_cast<int64_t>(usage_.completion_tokens),
                         static_cast<int64_t>(usage_.cached_prompt_tokens));
  if (reservation_ && services_->usage != nullptr) {
    services_->usage->Settle(
        *std::move(reservation_),
        {.tokens = usage_.prompt_tokens + usage_.completion_tokens, .cost_usd = cost});
    reservation_.reset();
  }
  const bool failed = outcome != "ok";
  if (metrics_ != nullptr) {
    metrics_->Request(model_resolved_ ? std::string_view(model_) : std::string_view(),
                      answered_endpoint(), status, failed, duration, ttft_, usage_, cost);
  }
  if (services_->audit == nullptr) return;
  entry_->mutable_time()->set_seconds(absl::ToUnixSeconds(started_));
  entry_->mutable_time()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(started_ - absl::FromUnixSeconds(absl::ToUnixSeconds(started_)))));
  entry_->set_model(model_);
  entry_->set_status(status);
  entry_->set_outcome(std::string(outcome));
  if (!error.empty()) entry_->set_error(std::string(error));
  entry_->set_endpoint(std::string(answered_endpoint()));
  entry_->set_prompt_tokens(static_cast<int64_t>(usage_.prompt_tokens));
  entry_->set_completion_tokens(static_cast<int64_t>(usage_.completion_tokens));
  entry_->set_cached_tokens(static_cast<int64_t>(usage_.cached_prompt_tokens));
  entry_->set_cost_usd(cost);
  entry_->set_overhead_us(overhead_us);
  entry_->set_duration_us(absl::ToInt64Microseconds(duration));
  const bool appended = services_->audit->Append(std::move(*entry_));
  if (metrics_ != nullptr) metrics_->Audit(services_->audit->stats(), !appended);
}

}  // namespace flowork::router
