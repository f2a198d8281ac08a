#include "flowork/router/config_history.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/logging.h"

namespace flowork::router {

ConfigHistory::ConfigHistory(PolicyEngine& policy, v1::RouterConfig initial, size_t keep)
    : policy_(policy), keep_(std::max<size_t>(keep, 1)) {
  versions_.push_back({1, std::make_shared<const v1::RouterConfig>(std::move(initial))});
}

ConfigHistory::Version ConfigHistory::Current() const {
  absl::ReaderMutexLock lock(&mu_);
  return versions_.back();
}

std::vector<uint64_t> ConfigHistory::Versions() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<uint64_t> out;
  for (const Version& v : versions_) out.push_back(v.version);
  return out;
}

std::vector<std::string> ConfigHistory::Validate(const v1::RouterConfig& config) const {
  v1::RouterConfig copy = config;
  absl::Status status;
  {
    absl::ReaderMutexLock lock(&mu_);
    status = RestoreRedacted(copy);
  }
  if (status.ok()) {
    // Compile it the way ApplyConfig would, on scratch stats.
    EndpointStats scratch(policy_.stats().clock());
    status = Policy::Create(copy, scratch).status();
  }
  if (status.ok()) return {};
  return absl::StrSplit(std::string(status.message()), '\n', absl::SkipWhitespace());
}

absl::Status ConfigHistory::RestoreRedacted(v1::RouterConfig& config) const {
  const v1::RouterConfig& running = *versions_.back().config;
  std::vector<std::string> problems;
  auto restore = [&](auto& keys, const auto& running_keys, std::string_view field) {
    for (int i = 0; i < keys.size(); ++i) {
      auto& key = keys[i];
      if (key.sha256() != kRedacted) continue;
      auto it = std::find_if(running_keys.begin(), running_keys.end(),
                             [&](const auto& k) { return k.name() == key.name(); });
      if (it == running_keys.end()) {
        problems.push_back(absl::StrCat(std::string(field), "[", i, "].sha256: ", kRedacted,
                                        " but no running key is named \"", key.name(), "\""));
      } else {
        key.set_sha256(it->sha256());
      }
    }
  };
  restore(*config.mutable_keys(), running.keys(), "keys");
  restore(*config.mutable_admin_keys(), running.admin_keys(), "admin_keys");
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

absl::StatusOr<uint64_t> ConfigHistory::Apply(v1::RouterConfig config, uint64_t expected_version) {
  absl::MutexLock lock(&mu_);
  const uint64_t running = versions_.back().version;
  if (expected_version != 0 && expected_version != running) {
    return absl::FailedPreconditionError(absl::StrCat("expected version ", expected_version,
                                                      " but version ", running, " is running"));
  }
  FLOWORK_RETURN_IF_ERROR(RestoreRedacted(config));
  return ApplyLocked(std::move(config));
}

absl::StatusOr<uint64_t> ConfigHistory::Rollback(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (version == 0) {
    if (versions_.size() < 2) {
      return absl::NotFoundError(
          absl::StrCat("no version before the running one (", versions_.back().version, ")"));
    }
    version = versions_[versions_.size() - 2].version;
  }
  auto it = std::find_if(versions_.begin(), versions_.end(),
                         [&](const Version& v) { return v.version == version; });
  if (it == versions_.end()) {
    return absl::NotFoundError(absl::StrCat("version ", version,
                                            " is not kept (kept: ", versions_.front().version,
                                            " to ", versions_.back().version, ")"));
  }
  return ApplyLocked(*it->config);
}

absl::StatusOr<uint64_t> ConfigHistory::ApplyLocked(v1::RouterConfig config) {
  // Validates fully and compiles before anything is swapped.
  FLOWORK_RETURN_IF_ERROR(policy_.ApplyConfig(config));
  const v1::RouterConfig& running = *versions_.back().config;
  if (config.listen().SerializeAsString() != running.listen().SerializeAsString() ||
      config.key_store() != running.key_store()) {
    core::Log(core::LogLevel::kWarning,
              "listen addresses and key_store change only on restart; the new values wait");
  }
  const uint64_t version = versions_.back().version + 1;
  versions_.push_back({version, std::make_shared<const v1::RouterConfig>(std::move(config))});
  while (versions_.size() > keep_) versions_.pop_front();
  return version;
}

}  // namespace flowork::router
