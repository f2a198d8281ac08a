#ifndef FLOWORK_ROUTER_CONFIG_HISTORY_H_
#define FLOWORK_ROUTER_CONFIG_HISTORY_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "flowork/router/policy.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// What GetConfig shows instead of a key's SHA-256. Applying a configuration
// that holds it keeps the running hash of the key of that name.
inline constexpr char kRedacted[] = "[REDACTED]";

// The configurations a router has run, numbered 1, 2, 3... in the order they
// were applied, newest running. Every change of configuration (the admin
// API's ApplyConfig and RollbackConfig, SIGHUP, a watched file) goes through
// Apply, so each gets a version and the same checks: an invalid configuration
// changes nothing. Requests in flight finish on the snapshot they started
// with. Thread-safe; Apply and Rollback are serialised.
class ConfigHistory {
 public:
  // A configuration and the version it ran as.
  struct Version {
    uint64_t version = 0;
    std::shared_ptr<const v1::RouterConfig> config;
  };

  // `policy` (not owned; must outlive this) runs `initial`, which becomes
  // version 1. The last `keep` (at least 1) applied configurations can be
  // rolled back to.
  ConfigHistory(PolicyEngine& policy, v1::RouterConfig initial, size_t keep = 10);

  // The running configuration and its version.
  Version Current() const;

  // The problems of `config`, one per entry, each naming the field
  // (`routes[2].candidates[0]: unknown model "x"`); empty when it is valid.
  // Compiles it as Apply would, without touching the running one.
  std::vector<std::string> Validate(const v1::RouterConfig& config) const;

  // Validates `config` and swaps it in as the next version. Key hashes given
  // as kRedacted keep the running key's hash. kInvalidArgument listing every
  // problem (nothing changed); kFailedPrecondition when `expected_version`
  // is not 0 and not the running version. Listener and key_store changes are
  // accepted but only take effect on restart (a warning is logged).
  absl::StatusOr<uint64_t> Apply(v1::RouterConfig config, uint64_t expected_version = 0);

  // Applies the configuration of an earlier `version` again, as a new
  // version (0: the one before the running one). kNotFound when that version
  // is not among the kept ones.
  absl::StatusOr<uint64_t> Rollback(uint64_t version = 0);

  // The kept versions, oldest first.
  std::vector<uint64_t> Versions() const;

 private:
  absl::Status RestoreRedacted(v1::RouterConfig& config) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> ApplyLocked(v1::RouterConfig config) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PolicyEngine& policy_;
  const size_t keep_;
  mutable absl::Mutex mu_;
  std::deque<Version> versions_ ABSL_GUARDED_BY(mu_);  // Oldest first; back() runs.
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_CONFIG_HISTORY_H_
