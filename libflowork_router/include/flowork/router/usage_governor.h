#ifndef FLOWORK_ROUTER_USAGE_GOVERNOR_H_
#define FLOWORK_ROUTER_USAGE_GOVERNOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/core/clock.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Whose usage a request counts against, and the limits that apply to it, as
// the running configuration says. Pointers are nullable (no limit) and need
// only live for the call.
struct UsageSubject {
  std::string key;     // Key name; "" for anonymous.
  std::string tenant;  // "" for none.
  const v1::Limits* key_limits = nullptr;
  const v1::Budget* key_budget = nullptr;
  const v1::Limits* tenant_limits = nullptr;
  const v1::Budget* tenant_budget = nullptr;
};

// What an admitted request holds until it is settled. Move-only value.
struct UsageReservation {
  uint64_t id = 0;
  std::string key;
  std::string tenant;
  uint64_t reserved_tokens = 0;
};

// What a request really used.
struct SettledUsage {
  uint64_t tokens = 0;  // Prompt + completion.
  double cost_usd = 0;
};

// Requests/minute and tokens/minute token buckets and USD budgets per UTC
// day and month, per key and per tenant. Admission reserves one request and
// the estimated tokens (prompt estimate + max_tokens); Settle replaces the
// estimate by the real count and books the cost. Budgets are checked at
// admission against what was spent so far (requests in flight may overshoot
// by their own cost). Limits come with each call, so a reload applies at
// once; the state is kept by key and tenant name. This interface is what a
// shared (e.g. Redis) implementation for several replicas would provide.
//
// Buckets hold one minute's worth (capacity rpm or tpm) and refill evenly
// (rpm/60 or tpm/60 per second). A request whose token estimate exceeds the
// tpm capacity is admitted once the bucket is full and leaves it in debt,
// so it never waits forever and later requests wait for the debt to refill.
// Settle gives back what was reserved but not used, or adds the excess as
// debt. A lowered limit clamps the bucket at the next call; a limit newly set
// starts full. Spend is kept per UTC calendar day and month and starts over
// at midnight UTC and on the first of the month.
// Implementations are thread-safe.
class UsageGovernor {
 public:
  virtual ~UsageGovernor() = default;

  // kResourceExhausted naming the limit that refused (e.g. `key "ci":
  // requests per minute (60) exceeded`); UsageRetryAfter() tells how long
  // until it would pass. Nothing is reserved on refusal.
  virtual absl::StatusOr<UsageReservation> Admit(const UsageSubject& subject,
                                                 uint64_t estimated_tokens) = 0;

  // Exactly once per admitted request, also for failed ones (tokens 0).
  virtual void Settle(UsageReservation reservation, const SettledUsage& usage) = 0;

  // Books spend that happened elsewhere (at start: today's and this month's
  // spend from the audit trail).
  virtual void RecordSpend(const std::string& key, const std::string& tenant, absl::Time when,
                           double cost_usd) = 0;
};

class AuditLog;

// Books into `governor` what the audit trail says was spent this UTC month
// (up to `now`), per key and tenant, so budgets hold across restarts.
absl::Status RestoreSpendFromAudit(AuditLog& audit, absl::Time now, UsageGovernor& governor);

// The in-process implementation: lock-light state per key and tenant (one
// small mutex each, found through a sharded read-mostly map). A subject idle
// for 10 minutes with full buckets, nothing in flight and nothing spent this
// UTC month may be forgotten, which bounds memory by the subjects in use.
// `clock` must outlive the governor.
std::unique_ptr<UsageGovernor> NewInMemoryUsageGovernor(const core::Clock& clock);

// How long a refusal from Admit asks the caller to wait; nullopt for other
// statuses.
std::optional<absl::Duration> UsageRetryAfter(const absl::Status& status);

// Cost in USD of a request at `price` (per million tokens); cached prompt
// tokens (part of prompt_tokens) at the cached price when one is set.
double UsageCostUsd(const v1::Price& price, int64_t prompt_tokens, int64_t completion_tokens,
                    int64_t cached_tokens);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_USAGE_GOVERNOR_H_
