// Budgets across restarts: this month's spend, read back from the audit trail.
#include "absl/time/civil_time.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/router/audit_log.h"
#include "flowork/router/usage_governor.h"

namespace flowork::router {
namespace {

void SetTimestamp(absl::Time t, google::protobuf::Timestamp& out) {
  out.set_seconds(absl::ToUnixSeconds(t));
}

// Books the spend per key and tenant in [start, end) as if at `when`.
absl::Status Book(AuditLog& audit, absl::Time start, absl::Time end, absl::Time when,
                  UsageGovernor& governor) {
  if (start >= end) return absl::OkStatus();
  v1::GetUsageRequest request;
  SetTimestamp(start, *request.mutable_start());
  SetTimestamp(end, *request.mutable_end());
  request.add_group_by("key");
  request.add_group_by("tenant");
  FLOWORK_ASSIGN_OR_RETURN(v1::GetUsageResponse usage, audit.Usage(request));
  for (const v1::UsageRow& row : usage.rows()) {
    if (row.cost_usd() > 0) governor.RecordSpend(row.key(), row.tenant(), when, row.cost_usd());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RestoreSpendFromAudit(AuditLog& audit, absl::Time now, UsageGovernor& governor) {
  const absl::CivilDay today = absl::ToCivilDay(now, absl::UTCTimeZone());
  const absl::Time day_start = absl::FromCivil(today, absl::UTCTimeZone());
  const absl::Time month_start = absl::FromCivil(absl::CivilMonth(today), absl::UTCTimeZone());
  // Earlier days of the month count against monthly budgets only.
  FLOWORK_RETURN_IF_ERROR(Book(audit, month_start, day_start, month_start, governor));
  return Book(audit, day_start, now + absl::Seconds(1), now, governor);
}

}  // namespace flowork::router
