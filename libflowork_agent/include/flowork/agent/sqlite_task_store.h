#ifndef FLOWORK_AGENT_SQLITE_TASK_STORE_H_
#define FLOWORK_AGENT_SQLITE_TASK_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/task_store.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// Options of the embedded SQLite task store.
struct SqliteTaskStoreOptions {
  // The database file, created with its schema when missing (its directory
  // must exist). ":memory:" keeps the store in memory for tests; it is gone
  // when the store is destroyed. Required.
  std::string path;

  enum class Sync {
    // WAL with synchronous=NORMAL: a write whose result was delivered survives
    // a crash or SIGKILL of the process; an OS crash or power loss may lose the
    // last commits but never corrupts the database. Commits do not fsync.
    kNormal,
    // WAL with synchronous=FULL: every commit fsyncs the WAL before results
    // are delivered, so writes survive power loss too. Group commit shares one
    // fsync among all the writes of a batch.
    kFull,
  };
  // Default kNormal.
  Sync sync = Sync::kNormal;

  // How long a write waits for another process holding the database's write
  // lock before failing with kUnavailable. Default 5 s.
  absl::Duration busy_timeout = absl::Seconds(5);

  // Most writes committed in one transaction. Default 256.
  int max_batch = 256;

  // Most connections reading at once (readers never block the writer). Default 4.
  int read_connections = 4;
};

// A TaskStore in one SQLite database file, for one server. Writes queue for
// one writer thread that commits whatever has queued up as one transaction
// (group commit), each write in its own SAVEPOINT so a failing one rolls back
// only itself; so throughput grows with the number of writes in flight.
//
// kInvalidArgument: bad options. kUnavailable: the file cannot be opened or
// set to WAL mode. kDataLoss: the file is not a SQLite database or is
// corrupt. kFailedPrecondition: the database was written by a newer
// Flowork (a higher schema version); this build refuses to touch it.
// `clock` stamps times and measures ages; it must outlive the store.
absl::StatusOr<std::unique_ptr<TaskStore>> CreateSqliteTaskStore(
    const SqliteTaskStoreOptions& options, const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_SQLITE_TASK_STORE_H_
