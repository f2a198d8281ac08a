#include "flowork/router/router_stack.h"

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flowork/core/internal/status_macros.h"

namespace flowork::router {
namespace {

// `status` with what was being done in front of its message.
absl::Status Context(const absl::Status& status, std::string_view what) {
  return absl::Status(status.code(), absl::StrCat(std::string(what), ": ", status.message()));
}

}  // namespace

RouterStack::~RouterStack() = default;

absl::StatusOr<std::unique_ptr<RouterStack>> RouterStack::Create(
    const v1::RouterConfig& config, const RouterStackOptions& options) {
  core::Clock& clock = options.clock != nullptr ? *options.clock : core::Clock::Real();
  std::unique_ptr<RouterStack> stack(new RouterStack());
  FLOWORK_ASSIGN_OR_RETURN(stack->policy_, PolicyEngine::Create(config, clock));
  stack->history_ = std::make_unique<ConfigHistory>(*stack->policy_, config);
  absl::StatusOr<std::unique_ptr<KeyStore>> keys = KeyStore::Open(
      {.path = config.key_store().empty() ? options.default_key_store : config.key_store()},
      *stack->policy_);
  if (!keys.ok()) return Context(keys.status(), "cannot open the key store");
  stack->keys_ = *std::move(keys);
  stack->loops_ = options.loops;
  if (stack->loops_ == nullptr) {
    FLOWORK_ASSIGN_OR_RETURN(
        stack->own_loops_,
        core::EventLoops::Create(static_cast<int>(config.http_limits().threads())));
    stack->loops_ = stack->own_loops_.get();
  }
  FLOWORK_ASSIGN_OR_RETURN(stack->upstreams_, core::HttpClient::Create({.loops = stack->loops_}));
  if (!config.audit().disabled()) {
    FLOWORK_ASSIGN_OR_RETURN(AuditLogOptions audit, AuditLogOptionsFromConfig(config.audit()));
    if (config.audit().path().empty() && !options.default_audit_path.empty()) {
      audit.path = options.default_audit_path;
    }
    absl::StatusOr<std::unique_ptr<AuditLog>> opened = AuditLog::Open(audit);
    if (!opened.ok()) return Context(opened.status(), "cannot open the audit trail");
    stack->audit_ = *std::move(opened);
  }
  stack->usage_ = NewInMemoryUsageGovernor(clock);
  if (stack->audit_ != nullptr) {
    if (absl::Status restored = RestoreSpendFromAudit(*stack->audit_, clock.Now(), *stack->usage_);
        !restored.ok()) {
      return Context(restored, "cannot read this month's spend from the audit trail");
    }
  }
  stack->metrics_ = options.metrics;
  if (stack->metrics_ == nullptr) {
    stack->own_metrics_ = core::MetricsRegistry::Create();
    stack->metrics_ = stack->own_metrics_.get();
  }
  FLOWORK_ASSIGN_OR_RETURN(stack->gateway_, Gateway::Create(*stack->policy_, *stack->keys_,
                                                            *stack->upstreams_, stack->loops_,
                                                            {.usage = stack->usage_.get(),
                                                             .audit = stack->audit_.get(),
                                                             .metrics = stack->metrics_}));
  return stack;
}

}  // namespace flowork::router
