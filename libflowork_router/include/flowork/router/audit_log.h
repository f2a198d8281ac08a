#ifndef FLOWORK_ROUTER_AUDIT_LOG_H_
#define FLOWORK_ROUTER_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/core/clock.h"
#include "flowork/router/v1/audit.pb.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Options of an AuditLog. Every field documents its default.
struct AuditLogOptions {
  // SQLite file; created when missing. Required.
  std::string path;
  // Entries appended and not yet committed (the batch being committed
  // included). Must be positive. Default 8192.
  size_t queue_capacity = 8192;
  // Longest time an appended entry waits before its batch is committed.
  absl::Duration flush_interval = absl::Milliseconds(100);
  // Entries older than this are pruned (behind a checkpoint entry). Default:
  // kept forever. Retention runs at most once a second of `clock`.
  absl::Duration max_age = absl::InfiniteDuration();
  // The oldest entries beyond this count are pruned; the checkpoint entry
  // that replaces them counts too. 0 = no limit.
  uint64_t max_entries = 0;
  // Stamps entries and drives retention. Default: the real clock.
  const core::Clock* clock = nullptr;
};

// What the log has done so far; for /metrics.
struct AuditLogStats {
  uint64_t queued = 0;   // Waiting for the writer now.
  uint64_t written = 0;  // Committed since Open.
  uint64_t dropped = 0;  // Refused by a full queue since Open.
  uint64_t failed = 0;   // Lost to write errors since Open.
};

// The tamper-evident audit trail of one router: entries are appended without
// blocking, chained (each entry's hash is SHA-256 of the previous hash and the
// entry's canonical bytes) and committed by one writer thread in batched
// SQLite transactions. Retention prunes whole prefixes and writes a
// checkpoint entry carrying the hash of the last pruned entry, so Verify still
// walks an unbroken chain. Thread-safe.
class AuditLog {
 public:
  virtual ~AuditLog() = default;  // Commits what was appended, then closes.

  // Opens (or creates) the log at options.path and resumes its chain.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options);

  // Queues `entry`; seq, time (when unset), prev_hash and hash are assigned by
  // the log (a caller's `checkpoint` is cleared). Never blocks on disk. False
  // when the queue is full: the entry is dropped and counted.
  virtual bool Append(v1::AuditEntry entry) = 0;

  // Whether Append would refuse an entry now.
  virtual bool Full() const = 0;

  // Waits until every entry appended before the call is committed, and
  // retention that is due by then has run. When entries were lost to write
  // errors since the last Flush, the latest such error.
  virtual absl::Status Flush() = 0;

  virtual AuditLogStats stats() const = 0;

  // Committed entries matching `request`, oldest first.
  virtual absl::StatusOr<v1::QueryAuditResponse> Query(const v1::QueryAuditRequest& request) = 0;

  // Sums over committed entries (checkpoints excluded); `errors` counts
  // entries whose outcome is not "ok". kInvalidArgument: an unknown group_by.
  virtual absl::StatusOr<v1::GetUsageResponse> Usage(const v1::GetUsageRequest& request) = 0;

  // Walks the committed chain; see VerifyAuditFile.
  virtual absl::StatusOr<v1::VerifyAuditResponse> Verify() = 0;
};

// Walks the chain in the audit file at `path` (without opening it for
// writing) and reports the first entry whose stored bytes, link or hash do
// not match, e.g. "entry 17: stored bytes do not match its hash". Entry n's
// hash is hex SHA-256(entry n-1's hash || the bytes stored for entry n), those
// bytes being its deterministic protobuf serialization with `hash` cleared;
// verification hashes the stored bytes, never a re-serialization. After
// pruning, the first stored entry must link to the pruned_through_hash of the
// checkpoint entry whose pruned_through_seq is just before it. A chain cannot
// show entries cut off its end: compare last_seq/last_hash with a copy kept
// elsewhere for that. An error status only when the file cannot be read at
// all or is not an audit file. Thread-safe.
absl::StatusOr<v1::VerifyAuditResponse> VerifyAuditFile(const std::string& path);

// The options `config` asks for, its documented defaults filled in (path
// ./flowork-audit.db, queue 8192, flush every 100ms); `clock` as in
// AuditLogOptions. on_full, capture_bodies, redact_fields and disabled are for
// the caller. kInvalidArgument names a negative or zero duration. Thread-safe.
absl::StatusOr<AuditLogOptions> AuditLogOptionsFromConfig(const v1::AuditConfig& config,
                                                          const core::Clock* clock = nullptr);

// `json` with the value of every member named one of `fields` (at any depth,
// names compared ignoring ASCII case) replaced by the string "[REDACTED]".
// Text that is not JSON is replaced whole by "[REDACTED]": where its secrets
// are cannot be told. For captured bodies (audit.redact_fields). Thread-safe.
std::string RedactJson(std::string_view json, const std::vector<std::string>& fields);

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_AUDIT_LOG_H_
