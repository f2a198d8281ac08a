#ifndef FLOWORK_AGENT_SQLITE_SESSION_STORE_H_
#define FLOWORK_AGENT_SQLITE_SESSION_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/session_store.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// Options of the embedded SQLite session and pinned-memory stores.
struct SqliteSessionStoreOptions {
  // The database file, created with its schema when missing (its directory
  // must exist). It may be the task or memory store's file: the tables have
  // names of their own. ":memory:" keeps the store in memory for tests.
  // Required.
  std::string path;
  // How long a call waits for another connection holding the write lock
  // before failing with kUnavailable. Default 5 s.
  absl::Duration busy_timeout = absl::Seconds(5);
};

// A SessionStore in one SQLite database (WAL, synchronous=NORMAL: an append
// that returned survives a crash of the process). Each append is one
// transaction together with its (task_id, step_seq) key, so it is applied
// once. Calls are serialised on one connection and block on disk.
//
// kInvalidArgument: bad options. kUnavailable: the file cannot be opened.
// kDataLoss: not a SQLite database. kFailedPrecondition: the tables were
// written by a newer Flowork. `clock` must outlive the store.
absl::StatusOr<std::unique_ptr<SessionStore>> CreateSqliteSessionStore(
    const SqliteSessionStoreOptions& options, const core::Clock& clock = core::Clock::Real());

// A PinnedMemoryStore in one SQLite database, with the same options, errors
// and durability as CreateSqliteSessionStore (it may share its file).
absl::StatusOr<std::unique_ptr<PinnedMemoryStore>> CreateSqlitePinnedMemoryStore(
    const SqliteSessionStoreOptions& options, const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_SQLITE_SESSION_STORE_H_
