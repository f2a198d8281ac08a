#ifndef FLOWORK_AGENT_SQLITE_MEMORY_STORE_H_
#define FLOWORK_AGENT_SQLITE_MEMORY_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/memory_store.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// Options of the embedded SQLite memory store.
struct SqliteMemoryStoreOptions {
  // The database file, created with its schema when missing (its directory
  // must exist). It may be the task store's file: the memory tables have
  // names of their own. ":memory:" keeps the store in memory for tests; it is
  // gone when the store is destroyed. Required.
  std::string path;

  // How long a call waits for another connection holding the database's
  // write lock before failing with kUnavailable. Default 5 s.
  absl::Duration busy_timeout = absl::Seconds(5);
};

// A MemoryStore in one SQLite database (WAL, synchronous=NORMAL: a memory
// whose Remember returned survives a crash of the process). Memories live in
// an ordinary table; an FTS5 index (porter stemming over unicode61, case and
// diacritics folded) follows it through triggers. Recall ranks with FTS5's
// BM25: a memory matching more of the query's words, rarer words, or the
// words more often relative to its length, ranks higher; words are stemmed,
// so "running" finds "run". The score is -bm25(), greater than 0 and
// unbounded, and depends on the whole index's statistics (so it changes as
// memories are added). Calls are serialised on one connection and block on
// disk: keep them off latency-critical threads.
//
// kInvalidArgument: bad options. kUnavailable: the file cannot be opened or
// set to WAL mode. kDataLoss: not a SQLite database or corrupt.
// kFailedPrecondition: the memory tables were written by a newer Flowork (a
// higher schema version). kInternal: this SQLite lacks FTS5. `clock` stamps
// `create_time`; it must outlive the store.
absl::StatusOr<std::unique_ptr<MemoryStore>> CreateSqliteMemoryStore(
    const SqliteMemoryStoreOptions& options, const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_SQLITE_MEMORY_STORE_H_
