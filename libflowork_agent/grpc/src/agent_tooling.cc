#include "agent_tooling.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace flowork::agent::internal {

void SpecPolicies::Set(const v1::AgentSpec& spec) {
  absl::MutexLock lock(&mu_);
  specs_[spec.name()] = spec;
}

void SpecPolicies::Remove(const std::string& agent) {
  absl::MutexLock lock(&mu_);
  specs_.erase(agent);
}

std::optional<ApprovalPolicy::Rule> SpecPolicies::Check(const v1::Task& task,
                                                        const v1::ToolCall& call) const {
  absl::MutexLock lock(&mu_);
  auto it = specs_.find(task.agent());
  if (it == specs_.end()) return std::nullopt;
  const v1::ApprovalSpec& approval = it->second.approval();
  if (std::find(approval.tools().begin(), approval.tools().end(), call.name()) ==
      approval.tools().end()) {
    return std::nullopt;
  }
  Rule rule;
  rule.reason = approval.reason().empty() ? absl::StrCat("tool ", call.name(), " requires approval")
                                          : approval.reason();
  if (approval.has_timeout()) {
    const int64_t ms = google::protobuf::util::TimeUtil::DurationToMilliseconds(approval.timeout());
    if (ms > 0) rule.timeout = absl::Milliseconds(ms);
  }
  rule.on_timeout =
      approval.on_timeout() == v1::VERDICT_UNSPECIFIED ? v1::VERDICT_DENY : approval.on_timeout();
  return rule;
}

absl::StatusOr<v1::MemorySpec> SpecPolicies::Memory(std::string_view agent) const {
  absl::MutexLock lock(&mu_);
  auto it = specs_.find(agent);
  if (it == specs_.end()) {
    return absl::NotFoundError(absl::StrCat("agent \"", std::string(agent), "\" not found"));
  }
  return it->second.memory();
}

absl::Status CheckApprovalSpec(const v1::AgentSpec& spec, const std::string& where) {
  for (const std::string& tool : spec.approval().tools()) {
    if (std::find(spec.tools().begin(), spec.tools().end(), tool) == spec.tools().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".approval.tools: \"", tool, "\" is not in tools"));
    }
  }
  const v1::Verdict verdict = spec.approval().on_timeout();
  if (verdict != v1::VERDICT_UNSPECIFIED && verdict != v1::VERDICT_APPROVE &&
      verdict != v1::VERDICT_DENY) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".approval.on_timeout: VERDICT_APPROVE or VERDICT_DENY"));
  }
  if (spec.approval().timeout().seconds() < 0 || spec.approval().timeout().nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".approval.timeout: negative"));
  }
  return absl::OkStatus();
}

}  // namespace flowork::agent::internal
