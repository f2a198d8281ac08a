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

}  // namespace

absl::StatusOr<std::unique_ptr<AgentRegistry>> AgentRegistry::Create(
    const std::vector<v1::AgentSpec>& specs) {
  std::map<std::string, v1::AgentSpec> agents;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string& name = specs[i].name();
    if (!IsValidName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "agents[", i, "].name: \"", name, "\" is not a valid name (use [a-z0-9-]+)"));
    }
    auto [it, inserted] = agents.emplace(name, specs[i]);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("agents[", i, "].name: duplicate agent \"", name, "\""));
    }
    it->second.set_version(1);
  }
  return std::unique_ptr<AgentRegistry>(new AgentRegistry(std::move(agents)));
}

std::vector<v1::AgentSpec> AgentRegistry::List(v1::AgentSpec::Kind kind) const {
  std::vector<v1::AgentSpec> result;
  for (const auto& [name, spec] : agents_) {
    if (kind == v1::AgentSpec::KIND_UNSPECIFIED || spec.kind() == kind) result.push_back(spec);
  }
  return result;
}

absl::StatusOr<v1::AgentSpec> AgentRegistry::Get(const std::string& name) const {
  auto it = agents_.find(name);
  if (it == agents_.end()) return absl::NotFoundError(absl::StrCat("agent \"", name, "\" not found"));
  return it->second;
}

}  // namespace flowork::agent
