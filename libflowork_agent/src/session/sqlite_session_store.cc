// The SQLite SessionStore and PinnedMemoryStore: tables of their own, so they
// may share a file with the task and memory stores.

#include "flowork/agent/sqlite_session_store.h"

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
#include "session/session_common.h"
#include "store/sqlite_db.h"
#include "store/task_txn.h"  // ToTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;
using internal::SqliteDb;
using internal::SqliteQuery;

// Bump with a migration in OpenStore; a database with a higher version was
// written by a newer Flowork and is refused. Times are int64 nanoseconds.
constexpr int64_t kSchemaVersion = 1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS session_schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  pk INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, never reused
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  labels BLOB NOT NULL,                  -- flowork.agent.v1.Session with only labels set
  summary TEXT NOT NULL,
  summarized_through INTEGER NOT NULL,
  message_count INTEGER NOT NULL,
  create_time INTEGER NOT NULL,
  update_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (tenant, agent, pk);
CREATE TABLE IF NOT EXISTS session_messages (
  session_pk INTEGER NOT NULL,           -- sessions.pk
  seq INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  step_seq INTEGER NOT NULL,
  message BLOB NOT NULL,                 -- flowork.agent.v1.ChatMessage
  create_time INTEGER NOT NULL,
  PRIMARY KEY (session_pk, seq)
);
-- The appends applied, by (task, step): each is applied once.
CREATE TABLE IF NOT EXISTS session_appends (
  session_pk INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  step_seq INTEGER NOT NULL,
  PRIMARY KEY (session_pk, task_id, step_seq)
);
CREATE TABLE IF NOT EXISTS pinned_blocks (
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  session_id TEXT NOT NULL,              -- '': the agent's own block
  name TEXT NOT NULL,
  text TEXT NOT NULL,
  last_edit TEXT NOT NULL,
  update_time INTEGER NOT NULL,
  PRIMARY KEY (tenant, agent, session_id, name)
);
)sql";

absl::Status Configure(SqliteDb& db, const SqliteSessionStoreOptions& options) {
  const int64_t busy_ms = std::clamp<int64_t>(absl::ToInt64Milliseconds(options.busy_timeout), 0,
                                              std::numeric_limits<int>::max());
  const int rc = sqlite3_busy_timeout(db.handle(), static_cast<int>(busy_ms));
  if (rc != SQLITE_OK) return db.Error(rc, "setting the busy timeout");
  if (options.path != ":memory:") {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery wal, db.Prepare("PRAGMA journal_mode = WAL"));
    FLOWORK_ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return absl::UnavailableError(
          absl::StrCat("sqlite \"", options.path, "\": cannot use WAL mode"));
    }
  }
  return db.Exec("PRAGMA synchronous = NORMAL");
}

absl::Status CreateOrCheckSchema(SqliteDb& db) {
  return core::internal::CreateOrCheckSchema(db, "session_schema_version", "session store",
                                             kSchemaVersion, kSchema);
}

absl::StatusOr<std::unique_ptr<SqliteDb>> OpenStore(const SqliteSessionStoreOptions& options) {
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
  return db;
}

int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }
google::protobuf::Timestamp Stamp(int64_t nanos) {
  return internal::ToTimestamp(absl::FromUnixNanos(nanos));
}

absl::Status NotFound(std::string_view id) {
  return absl::NotFoundError(absl::StrCat("session \"", ToAbsl(id), "\" not found"));
}

// A transaction on `db` that rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(SqliteDb& db) : db_(db) {}
  ~Transaction() {
    if (open_) (void)db_.Exec("ROLLBACK");
  }
  absl::Status Begin() {
    FLOWORK_RETURN_IF_ERROR(db_.Exec("BEGIN IMMEDIATE"));
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Commit() {
    FLOWORK_RETURN_IF_ERROR(db_.Exec("COMMIT"));
    open_ = false;
    return absl::OkStatus();
  }

 private:
  SqliteDb& db_;
  bool open_ = false;
};

constexpr char kSessionColumns[] =
    "pk, id, tenant, agent, labels, summary, summarized_through, message_count, create_time, "
    "update_time";

absl::StatusOr<v1::Session> ReadSession(const SqliteDb& db, const SqliteQuery& query) {
  v1::Session session;
  const std::string_view labels = query.Blob(4);
  if (!session.ParseFromArray(labels.data(), static_cast<int>(labels.size()))) {
    return absl::DataLossError(absl::StrCat("sqlite \"", db.path(), "\": session \"",
                                            ToAbsl(query.Text(1)), "\": unreadable labels"));
  }
  session.set_id(std::string(query.Text(1)));
  session.set_tenant(std::string(query.Text(2)));
  session.set_agent(std::string(query.Text(3)));
  session.set_summary(std::string(query.Text(5)));
  session.set_summarized_through(static_cast<uint64_t>(query.Int64(6)));
  session.set_message_count(static_cast<uint64_t>(query.Int64(7)));
  *session.mutable_create_time() = Stamp(query.Int64(8));
  *session.mutable_update_time() = Stamp(query.Int64(9));
  return session;
}

class SqliteSessionStore final : public SessionStore {
 public:
  SqliteSessionStore(std::unique_ptr<SqliteDb> db, const core::Clock& clock)
      : clock_(clock), db_(std::move(db)) {}

  absl::StatusOr<v1::Session> Create(v1::Session session) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateNewSession(session));
    const bool assign = session.id().empty();
    v1::Session labels;
    *labels.mutable_labels() = session.labels();
    const std::string label_blob = labels.SerializeAsString();
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    *session.mutable_create_time() = internal::ToTimestamp(now);
    *session.mutable_update_time() = session.create_time();
    session.set_message_count(0);
    for (int tries = 0;; ++tries) {
      if (assign) session.set_id(internal::NewSessionId());
      FLOWORK_ASSIGN_OR_RETURN(
          SqliteQuery insert,
          db_->Prepare("INSERT OR IGNORE INTO sessions (id, tenant, agent, labels, summary, "
                       "summarized_through, message_count, create_time, update_time) VALUES "
                       "(?1, ?2, ?3, ?4, '', 0, 0, ?5, ?5)"));
      FLOWORK_RETURN_IF_ERROR(insert.BindText(1, session.id())
                                  .BindText(2, session.tenant())
                                  .BindText(3, session.agent())
                                  .BindBlob(4, label_blob)
                                  .Bind(5, Nanos(now))
                                  .Run());
      if (sqlite3_changes(db_->handle()) > 0) return session;
      if (!assign || tries > 8) {
        return absl::AlreadyExistsError(absl::StrCat("session \"", session.id(), "\" exists"));
      }
    }
  }

  absl::StatusOr<v1::Session> Get(std::string_view id) const override {
    absl::MutexLock lock(&mu_);
    return GetLocked(id);
  }

  absl::StatusOr<std::vector<v1::Session>> List(std::string_view tenant, std::string_view agent,
                                                int limit,
                                                std::string_view after_id) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxSessionListLimit));
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare(absl::StrCat(
            "SELECT ", kSessionColumns,
            " FROM sessions WHERE tenant = ?1 AND (?2 = '' OR agent = ?2) AND pk > "
            "coalesce((SELECT pk FROM sessions WHERE id = ?3), 0) ORDER BY pk LIMIT ?4")));
    select.BindText(1, tenant).BindText(2, agent).BindText(3, after_id).Bind(4, limit);
    std::vector<v1::Session> out;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return out;
      FLOWORK_ASSIGN_OR_RETURN(out.emplace_back(), ReadSession(*db_, select));
    }
  }

  absl::StatusOr<bool> Append(std::string_view id, const SessionAppend& append) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateAppend(append));
    absl::MutexLock lock(&mu_);
    Transaction txn(*db_);
    FLOWORK_RETURN_IF_ERROR(txn.Begin());
    FLOWORK_ASSIGN_OR_RETURN(v1::Session session, GetLocked(id));
    FLOWORK_ASSIGN_OR_RETURN(int64_t pk, PkLocked(id));
    if (!append.task_id.empty() || append.step_seq != 0) {
      FLOWORK_ASSIGN_OR_RETURN(
          SqliteQuery key,
          db_->Prepare("INSERT OR IGNORE INTO session_appends (session_pk, task_id, step_seq) "
                       "VALUES (?1, ?2, ?3)"));
      FLOWORK_RETURN_IF_ERROR(key.Bind(1, pk)
                                  .BindText(2, append.task_id)
                                  .Bind(3, static_cast<int64_t>(append.step_seq))
                                  .Run());
      if (sqlite3_changes(db_->handle()) == 0) return false;  // Rolled back: nothing changed.
    }
    const int64_t now = Nanos(clock_.Now());
    uint64_t seq = session.message_count();
    for (const v1::ChatMessage& message : append.messages) {
      const std::string blob = message.SerializeAsString();
      FLOWORK_ASSIGN_OR_RETURN(
          SqliteQuery insert,
          db_->Prepare("INSERT INTO session_messages (session_pk, seq, task_id, step_seq, "
                       "message, create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      FLOWORK_RETURN_IF_ERROR(insert.Bind(1, pk)
                                  .Bind(2, static_cast<int64_t>(++seq))
                                  .BindText(3, append.task_id)
                                  .Bind(4, static_cast<int64_t>(append.step_seq))
                                  .BindBlob(5, blob)
                                  .Bind(6, now)
                                  .Run());
    }
    std::string summary = session.summary();
    uint64_t through = session.summarized_through();
    if (internal::SummaryMovesForward(append, !summary.empty(), through, seq)) {
      summary = append.summary;
      through = append.summarized_through;
    }
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery update,
        db_->Prepare("UPDATE sessions SET message_count = ?2, summary = ?3, "
                     "summarized_through = ?4, update_time = ?5 WHERE pk = ?1"));
    FLOWORK_RETURN_IF_ERROR(update.Bind(1, pk)
                                .Bind(2, static_cast<int64_t>(seq))
                                .BindText(3, summary)
                                .Bind(4, static_cast<int64_t>(through))
                                .Bind(5, now)
                                .Run());
    FLOWORK_RETURN_IF_ERROR(txn.Commit());
    return true;
  }

  absl::StatusOr<std::vector<v1::SessionMessage>> ListMessages(std::string_view id,
                                                               uint64_t after_seq,
                                                               int limit) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxSessionMessagesLimit));
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(int64_t pk, PkLocked(id));
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare("SELECT seq, task_id, step_seq, message, create_time FROM session_messages "
                     "WHERE session_pk = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"));
    select.Bind(1, pk).Bind(2, static_cast<int64_t>(after_seq)).Bind(3, limit);
    std::vector<v1::SessionMessage> out;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return out;
      v1::SessionMessage& message = out.emplace_back();
      message.set_seq(static_cast<uint64_t>(select.Int64(0)));
      message.set_task_id(std::string(select.Text(1)));
      message.set_step_seq(static_cast<uint64_t>(select.Int64(2)));
      const std::string_view blob = select.Blob(3);
      if (!message.mutable_message()->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return absl::DataLossError(absl::StrCat("sqlite \"", db_->path(), "\": session \"",
                                                ToAbsl(id), "\" message ", message.seq(),
                                                ": unreadable"));
      }
      *message.mutable_create_time() = Stamp(select.Int64(4));
    }
  }

 private:
  absl::StatusOr<v1::Session> GetLocked(std::string_view id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare(absl::StrCat("SELECT ", kSessionColumns, " FROM sessions WHERE id = ?1")));
    select.BindText(1, id);
    FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return NotFound(id);
    return ReadSession(*db_, select);
  }
  absl::StatusOr<int64_t> PkLocked(std::string_view id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery select,
                             db_->Prepare("SELECT pk FROM sessions WHERE id = ?1"));
    select.BindText(1, id);
    FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return NotFound(id);
    return select.Int64(0);
  }

  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  const std::unique_ptr<SqliteDb> db_ ABSL_PT_GUARDED_BY(mu_);
};

class SqlitePinnedMemoryStore final : public PinnedMemoryStore {
 public:
  SqlitePinnedMemoryStore(std::unique_ptr<SqliteDb> db, const core::Clock& clock)
      : clock_(clock), db_(std::move(db)) {}

  absl::StatusOr<std::vector<v1::PinnedBlock>> List(const PinnedScope& scope) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedScope(scope));
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare("SELECT name, text, last_edit, update_time FROM pinned_blocks WHERE "
                     "tenant = ?1 AND agent = ?2 AND session_id = ?3 ORDER BY name"));
    select.BindText(1, scope.tenant).BindText(2, scope.agent).BindText(3, scope.session_id);
    std::vector<v1::PinnedBlock> out;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return out;
      v1::PinnedBlock& block = out.emplace_back();
      block.set_tenant(scope.tenant);
      block.set_agent(scope.agent);
      block.set_session_id(scope.session_id);
      block.set_name(std::string(select.Text(0)));
      block.set_text(std::string(select.Text(1)));
      block.set_last_edit(std::string(select.Text(2)));
      *block.mutable_update_time() = Stamp(select.Int64(3));
    }
  }

  absl::StatusOr<v1::PinnedBlock> Edit(const PinnedScope& scope, const PinnedEdit& edit) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedName(edit.name));
    absl::MutexLock lock(&mu_);
    Transaction txn(*db_);
    FLOWORK_RETURN_IF_ERROR(txn.Begin());
    v1::PinnedBlock block;
    block.set_tenant(scope.tenant);
    block.set_agent(scope.agent);
    block.set_session_id(scope.session_id);
    block.set_name(edit.name);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery select,
        db_->Prepare("SELECT text, last_edit, update_time FROM pinned_blocks WHERE tenant = ?1 "
                     "AND agent = ?2 AND session_id = ?3 AND name = ?4"));
    select.BindText(1, scope.tenant)
        .BindText(2, scope.agent)
        .BindText(3, scope.session_id)
        .BindText(4, edit.name);
    FLOWORK_ASSIGN_OR_RETURN(bool row, select.Step());
    std::string current = edit.initial_text;
    if (row) {
      current = std::string(select.Text(0));
      if (!edit.edit_key.empty() && select.Text(1) == edit.edit_key) {
        block.set_text(current);
        block.set_last_edit(edit.edit_key);
        *block.mutable_update_time() = Stamp(select.Int64(2));
        return block;  // Applied before.
      }
    }
    FLOWORK_ASSIGN_OR_RETURN(std::string text, ApplyPinnedEdit(current, edit));
    const int64_t now = Nanos(clock_.Now());
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery upsert,
        db_->Prepare("INSERT INTO pinned_blocks (tenant, agent, session_id, name, text, "
                     "last_edit, update_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT "
                     "(tenant, agent, session_id, name) DO UPDATE SET text = excluded.text, "
                     "last_edit = excluded.last_edit, update_time = excluded.update_time"));
    FLOWORK_RETURN_IF_ERROR(upsert.BindText(1, scope.tenant)
                                .BindText(2, scope.agent)
                                .BindText(3, scope.session_id)
                                .BindText(4, edit.name)
                                .BindText(5, text)
                                .BindText(6, edit.edit_key)
                                .Bind(7, now)
                                .Run());
    FLOWORK_RETURN_IF_ERROR(txn.Commit());
    block.set_text(std::move(text));
    block.set_last_edit(edit.edit_key);
    *block.mutable_update_time() = Stamp(now);
    return block;
  }

 private:
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  const std::unique_ptr<SqliteDb> db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<SessionStore>> CreateSqliteSessionStore(
    const SqliteSessionStoreOptions& options, const core::Clock& clock) {
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, OpenStore(options));
  return std::make_unique<SqliteSessionStore>(std::move(db), clock);
}

absl::StatusOr<std::unique_ptr<PinnedMemoryStore>> CreateSqlitePinnedMemoryStore(
    const SqliteSessionStoreOptions& options, const core::Clock& clock) {
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, OpenStore(options));
  return std::make_unique<SqlitePinnedMemoryStore>(std::move(db), clock);
}

}  // namespace flowork::agent
