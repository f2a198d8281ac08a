#include "flowork/agent/agent_registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace flowork::agent {
namespace {

bool IsValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

absl::Status CheckName(const std::string& name, const std::string& field) {
  if (!IsValidName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", name, "\" is not a valid name (use [a-z0-9-]+)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentRegistry>> AgentRegistry::Create(
    const std::vector<v1::AgentSpec>& specs) {
  std::unique_ptr<AgentRegistry> registry(new AgentRegistry());
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string field = absl::StrCat("agents[", i, "].name");
    absl::Status valid = CheckName(specs[i].name(), field);
    if (!valid.ok()) return valid;
    absl::StatusOr<v1::AgentSpec> added = registry->Add(specs[i]);
    if (!added.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": duplicate agent \"", specs[i].name(), "\""));
    }
  }
  return registry;
}

absl::StatusOr<v1::AgentSpec> AgentRegistry::Add(v1::AgentSpec spec) {
  absl::Status valid = CheckName(spec.name(), "agent.name");
  if (!valid.ok()) return valid;
  spec.set_version(1);
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = agents_.emplace(spec.name(), spec);
  if (!inserted) {
    return absl::AlreadyExistsError(absl::StrCat("agent \"", spec.name(), "\" already exists"));
  }
  return spec;
}

std::vector<v1::AgentSpec> AgentRegistry::List(v1::AgentSpec::Kind kind) const {
  std::vector<v1::AgentSpec> result;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, spec] : agents_) {
    if (kind == v1::AgentSpec::KIND_UNSPECIFIED || spec.kind() == kind) result.push_back(spec);
  }
  return result;
}

absl::StatusOr<v1::AgentSpec> AgentRegistry::Get(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end())
    return absl::NotFoundError(absl::StrCat("agent \"", name, "\" not found"));
  return it->second;
}

}  // namespace flowork::agent
