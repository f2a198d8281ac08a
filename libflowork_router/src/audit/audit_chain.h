// Private to libflowork_router: how audit entries are sealed into the hash
// chain, stored in SQLite and verified. Shared by the AuditLog (which writes)
// and VerifyAuditFile (which only reads).
//
// The chain. Entry n is sealed with seq = n and prev_hash = the hash of entry
// n-1 ("" for entry 1). Its canonical bytes are the deterministic protobuf
// serialization (SerializeToString with deterministic output) of the entry
// with `hash` cleared; seq, time and prev_hash are inside them. Then
//   hash = lower-case hex SHA-256(prev_hash as its 64 hex characters || bytes).
// Those exact bytes are stored (column `entry`), and verification hashes the
// stored bytes, never a re-serialization: a verifier does not depend on the
// serializer producing the same bytes again (another protobuf version may
// not), only on SHA-256.
//
// Retention. Pruning deletes a prefix 1..P (or f..P after earlier pruning)
// and, in the same transaction, appends a checkpoint entry at the end of the
// chain (an ordinary chained entry whose `checkpoint` carries P, the hash of
// entry P and the number of rows deleted). A chain whose first stored entry F
// is not entry 1 is intact at its start only when a stored checkpoint has
// pruned_through_seq == F-1, that checkpoint's own hash verifies, and its
// pruned_through_hash equals F's prev_hash. Older checkpoints stay ordinary
// entries until they are pruned in turn.
//
// Columns other than `entry` and `hash` copy fields of the entry for Query and
// Usage; Verify checks that they agree with the stored bytes, so a changed
// column is named too. What a hash chain cannot show: entries cut off the end
// (compare last_seq/last_hash with a copy kept elsewhere to catch that).
#ifndef FLOWORK_ROUTER_SRC_AUDIT_AUDIT_CHAIN_H_
#define FLOWORK_ROUTER_SRC_AUDIT_AUDIT_CHAIN_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/core/internal/sqlite_db.h"
#include "flowork/router/v1/audit.pb.h"

namespace flowork::router::audit_internal {

// Bumped when the table layout changes (PRAGMA user_version).
inline constexpr int kAuditFormatVersion = 1;

// Hex SHA-256(prev_hash || canonical_bytes).
std::string ChainHash(std::string_view prev_hash, std::string_view canonical_bytes);

// Sets seq and prev_hash, serializes the entry canonically (hash cleared),
// then sets entry.hash. Returns the canonical bytes, which are what is stored.
std::string Seal(v1::AuditEntry& entry, uint64_t seq, const std::string& prev_hash);

// Microseconds since the epoch of the entry's time (0 when unset).
int64_t TimeMicros(const v1::AuditEntry& entry);

// Creates the table and indexes when missing, on a writable connection.
absl::Status CreateSchema(core::internal::SqliteDb& db);

// kFailedPrecondition when `db` holds no audit table of a known format.
absl::Status CheckSchema(core::internal::SqliteDb& db);

// Inserts a sealed entry and its canonical bytes.
absl::Status InsertEntry(core::internal::SqliteDb& db, const v1::AuditEntry& sealed,
                         std::string_view canonical_bytes);

// Walks every stored entry in seq order inside one read transaction (see the
// rules above) and reports the first broken one.
absl::StatusOr<v1::VerifyAuditResponse> VerifyChain(core::internal::SqliteDb& db);

}  // namespace flowork::router::audit_internal

#endif  // FLOWORK_ROUTER_SRC_AUDIT_AUDIT_CHAIN_H_
