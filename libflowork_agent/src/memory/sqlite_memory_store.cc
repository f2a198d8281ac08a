#include "flowork/agent/sqlite_memory_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "memory/memory_common.h"
#include "store/sqlite_db.h"
#include "store/task_txn.h"  // ToTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;
using internal::SqliteDb;
using internal::SqliteQuery;

// Bump with a migration in CreateOrCheckSchema; a database with a higher
// version was written by a newer Flowork and is refused.
constexpr int64_t kSchemaVersion = 1;

// Memories in an ordinary table (the source of truth) and an external-content
// FTS5 index over their text, kept in step by triggers in the same
// transaction as every change. Names are prefixed so the tables can share a
// file with the task store. Times are int64 nanoseconds since the epoch.
constexpr char kSchema[] = R"sql(
CREATE TABLE memory_schema_version (version INTEGER NOT NULL);
CREATE TABLE memories (
  pk INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FTS rowid, never reused
  id TEXT NOT NULL UNIQUE,               -- sorts in the order memories were stored
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,                   -- '': tenant-wide
  text TEXT NOT NULL,
  tags BLOB NOT NULL,                    -- flowork.agent.v1.Memory with only tags set
  create_time INTEGER NOT NULL
);
CREATE INDEX memories_by_scope ON memories (tenant, agent, id);
CREATE VIRTUAL TABLE memories_fts USING fts5(
  text, content = 'memories', content_rowid = 'pk',
  tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
  INSERT INTO memories_fts (rowid, text) VALUES (new.pk, new.text);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
  INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.pk, old.text);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN
  INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.pk, old.text);
  INSERT INTO memories_fts (rowid, text) VALUES (new.pk, new.text);
END;
)sql";

// The columns ReadMemory reads, in its order.
constexpr char kMemoryColumns[] = "m.id, m.tenant, m.agent, m.text, m.tags, m.create_time";

absl::StatusOr<v1::Memory> ReadMemory(const SqliteDb& db, const SqliteQuery& query) {
  v1::Memory memory;
  const std::string_view tags = query.Blob(4);
  if (!memory.ParseFromArray(tags.data(), static_cast<int>(tags.size()))) {
    return absl::DataLossError(absl::StrCat("sqlite \"", db.path(), "\": memory \"",
                                            ToAbsl(query.Text(0)), "\": unreadable tags"));
  }
  memory.set_id(std::string(query.Text(0)));
  memory.set_tenant(std::string(query.Text(1)));
  memory.set_agent(std::string(query.Text(2)));
  memory.set_text(std::string(query.Text(3)));
  *memory.mutable_create_time() = internal::ToTimestamp(absl::FromUnixNanos(query.Int64(5)));
  return memory;
}

absl::Status Configure(SqliteDb& db, const SqliteMemoryStoreOptions& options) {
  const int64_t busy_ms = std::clamp<int64_t>(absl::ToInt64Milliseconds(options.busy_timeout), 0,
                                              std::numeric_limits<int>::max());
  const int rc = sqlite3_busy_timeout(db.handle(), static_cast<int>(busy_ms));
  if (rc != SQLITE_OK) return db.Error(rc, "setting the busy timeout");
  if (options.path != ":memory:") {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery wal, db.Prepare("PRAGMA journal_mode = WAL"));
    FLOWORK_ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return absl::UnavailableError(
          absl::StrCat("sqlite \"", options.path, "\": cannot use WAL mode (journal_mode is \"",
                       row ? std::string(wal.Text(0)) : std::string(), "\")"));
    }
  }
  return db.Exec("PRAGMA synchronous = NORMAL");
}

absl::Status CreateOrCheckSchema(SqliteDb& db) {
  return core::internal::CreateOrCheckSchema(db, "memory_schema_version", "memory store",
                                             kSchemaVersion, kSchema);
}

// One connection, used under mu_: memory calls are few and small next to the
// model calls around them, so a reader pool is not worth its complexity yet.
class SqliteMemoryStore final : public MemoryStore {
 public:
  SqliteMemoryStore(std::unique_ptr<SqliteDb> db, const core::Clock& clock)
      : clock_(clock), db_(std::move(db)) {}

  absl::Status LoadLastId() {
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, db_->Prepare("SELECT max(id) FROM memories"));
    FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row && !query.IsNull(0)) ids_.Observe(query.Text(0));
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Memory> Remember(const MemoryScope& scope, std::string text,
                                      std::map<std::string, std::string> tags) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateMemory(text, tags));
    v1::Memory memory;
    memory.mutable_tags()->insert(tags.begin(), tags.end());
    const std::string tag_blob = memory.SerializeAsString();
    memory.set_tenant(scope.tenant);
    memory.set_agent(scope.agent);
    memory.set_text(std::move(text));

    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    memory.set_id(ids_.Next(now));
    *memory.mutable_create_time() = internal::ToTimestamp(now);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery insert,
        db_->Prepare("INSERT INTO memories (id, tenant, agent, text, tags, create_time) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    FLOWORK_RETURN_IF_ERROR(insert.BindText(1, memory.id())
                                .BindText(2, memory.tenant())
                                .BindText(3, memory.agent())
                                .BindText(4, memory.text())
                                .BindBlob(5, tag_blob)
                                .Bind(6, absl::ToUnixNanos(now))
                                .Run());
    return memory;
  }

  absl::StatusOr<std::vector<ScoredMemory>> Recall(const MemoryScope& scope, std::string_view query,
                                                   int limit) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxRecallLimit));
    std::vector<ScoredMemory> hits;
    const std::string match = internal::Fts5AnyOf(internal::Words(query, internal::kMaxQueryWords));
    if (match.empty()) return hits;

    absl::MutexLock lock(&mu_);
    // bm25() is negative, more negative for a better match. The FTS scan
    // drives the join; the scope is filtered on the matching rows.
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare(absl::StrCat(
            "SELECT ", kMemoryColumns,
            ", f.rank FROM (SELECT rowid AS pk, bm25(memories_fts) AS rank FROM memories_fts "
            "WHERE memories_fts MATCH ?1) f CROSS JOIN memories m ON m.pk = f.pk "
            "WHERE m.tenant = ?2 AND m.agent IN (?3, '') ORDER BY f.rank, m.id DESC LIMIT ?4")));
    select.BindText(1, match).BindText(2, scope.tenant).BindText(3, scope.agent).Bind(4, limit);
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      ScoredMemory& hit = hits.emplace_back();
      FLOWORK_ASSIGN_OR_RETURN(hit.memory, ReadMemory(*db_, select));
      hit.score = -select.Double(6);
    }
    return hits;
  }

  absl::Status Forget(const MemoryScope& scope, std::string_view id) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery erase,
        db_->Prepare("DELETE FROM memories WHERE id = ?1 AND tenant = ?2 AND agent = ?3"));
    FLOWORK_RETURN_IF_ERROR(
        erase.BindText(1, id).BindText(2, scope.tenant).BindText(3, scope.agent).Run());
    if (sqlite3_changes(db_->handle()) == 0) {
      return absl::NotFoundError(absl::StrCat("memory \"", ToAbsl(id), "\" not found"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Memory>> List(const MemoryScope& scope, int limit,
                                               std::string_view before_id) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxListLimit));
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare(absl::StrCat("SELECT ", kMemoryColumns,
                                  " FROM memories m WHERE m.tenant = ?1 AND m.agent IN (?2, '') "
                                  "AND (?3 = '' OR m.id < ?3) ORDER BY m.id DESC LIMIT ?4")));
    select.BindText(1, scope.tenant).BindText(2, scope.agent).BindText(3, before_id).Bind(4, limit);
    std::vector<v1::Memory> memories;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return memories;
      FLOWORK_ASSIGN_OR_RETURN(memories.emplace_back(), ReadMemory(*db_, select));
    }
  }

 private:
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  const std::unique_ptr<SqliteDb> db_ ABSL_PT_GUARDED_BY(mu_);
  internal::MemoryIdGenerator ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<MemoryStore>> CreateSqliteMemoryStore(
    const SqliteMemoryStoreOptions& options, const core::Clock& clock) {
  if (options.path.empty()) return absl::InvalidArgumentError("path: empty");
  if (options.busy_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("busy_timeout: negative");
  }
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(options.path));
  FLOWORK_RETURN_IF_ERROR(Configure(*db, options));
  FLOWORK_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  if (absl::Status schema = CreateOrCheckSchema(*db); !schema.ok()) {
    (void)db->Exec("ROLLBACK");
    return schema;
  }
  FLOWORK_RETURN_IF_ERROR(db->Exec("COMMIT"));
  auto store = std::make_unique<SqliteMemoryStore>(std::move(db), clock);
  FLOWORK_RETURN_IF_ERROR(store->LoadLastId());
  return store;
}

}  // namespace flowork::agent
