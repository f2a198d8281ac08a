#include "flowork/agent/sqlite_task_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "group_commit_store.h"
#include "sqlite_db.h"
#include "task_txn.h"

namespace flowork::agent {
namespace {

using internal::KeyedTask;
using internal::SqliteDb;
using internal::SqliteQuery;
using internal::TaskRow;

// Bump with a migration in EnsureSchema; a database with a higher version was
// written by a newer Flowork and is refused.
constexpr int64_t kSchemaVersion = 1;

// Tasks: the columns queries select on or an update changes, plus the task as
// submitted in task_specs, written once, so per-step updates rewrite only a
// small row whatever the input's size. Steps: one row per (task, seq) holding
// the serialized StepRecord. Times are int64 nanoseconds since the epoch.
constexpr char kSchema[] = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE tasks (
  pk INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order, never reused
  id TEXT NOT NULL UNIQUE,
  agent TEXT NOT NULL,
  tenant TEXT NOT NULL,
  parent_id TEXT,                        -- NULL: none
  idempotency_key TEXT,                  -- NULL: none
  state INTEGER NOT NULL,                -- flowork.agent.v1.TaskState
  create_time INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  step_count INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  cancel_requested INTEGER NOT NULL,
  not_before INTEGER,                    -- NULL: none
  error TEXT NOT NULL,
  output BLOB                            -- google.protobuf.Value; NULL: none
);
CREATE UNIQUE INDEX tasks_by_idempotency_key ON tasks (tenant, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_by_state ON tasks (state);
CREATE INDEX tasks_by_agent ON tasks (agent);
CREATE INDEX tasks_by_tenant ON tasks (tenant);
CREATE TABLE task_specs (
  task_pk INTEGER PRIMARY KEY,           -- tasks.pk
  spec BLOB NOT NULL                     -- flowork.agent.v1.Task as submitted
);
CREATE TABLE steps (
  task_pk INTEGER NOT NULL,              -- tasks.pk
  seq INTEGER NOT NULL,
  record BLOB NOT NULL,                  -- flowork.agent.v1.StepRecord, task_id left out
  PRIMARY KEY (task_pk, seq)
);
)sql";

constexpr char kFinalStates[] = "(9, 10, 11, 12)";  // SUCCEEDED FAILED CANCELLED TIMED_OUT

// The columns ReadTask reads, in its order.
constexpr char kSelectTask[] =
    "SELECT t.pk, t.state, t.update_time, t.step_count, t.attempt, t.cancel_requested, "
    "t.not_before, t.error, t.output, s.spec FROM tasks t JOIN task_specs s ON s.task_pk = t.pk ";

int64_t ToNanos(absl::Time time) { return absl::ToUnixNanos(time); }

absl::StatusOr<KeyedTask> ReadTask(const SqliteDb& db, const SqliteQuery& query) {
  KeyedTask result;
  result.key = query.Int64(0);
  const std::string_view spec = query.Blob(9);
  if (!result.task.ParseFromArray(spec.data(), static_cast<int>(spec.size()))) {
    return absl::DataLossError(
        absl::StrCat("sqlite \"", db.path(), "\": task ", result.key, ": unreadable spec"));
  }
  v1::Task& task = result.task;
  task.set_state(static_cast<v1::TaskState>(query.Int64(1)));
  *task.mutable_update_time() = internal::ToTimestamp(absl::FromUnixNanos(query.Int64(2)));
  task.set_step_count(static_cast<uint64_t>(query.Int64(3)));
  task.set_attempt(static_cast<int32_t>(query.Int64(4)));
  task.set_cancel_requested(query.Int64(5) != 0);
  if (query.IsNull(6)) {
    task.clear_not_before();
  } else {
    *task.mutable_not_before() = internal::ToTimestamp(absl::FromUnixNanos(query.Int64(6)));
  }
  task.set_error(std::string(query.Text(7)));
  if (query.IsNull(8)) {
    task.clear_output();
  } else {
    const std::string_view output = query.Blob(8);
    if (!task.mutable_output()->ParseFromArray(output.data(), static_cast<int>(output.size()))) {
      return absl::DataLossError(
          absl::StrCat("sqlite \"", db.path(), "\": task ", result.key, ": unreadable output"));
    }
  }
  return result;
}

absl::StatusOr<std::vector<KeyedTask>> ReadTasks(const SqliteDb& db, SqliteQuery& query) {
  std::vector<KeyedTask> tasks;
  while (true) {
    FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return tasks;
    FLOWORK_ASSIGN_OR_RETURN(tasks.emplace_back(), ReadTask(db, query));
  }
}

std::vector<v1::Task> WithoutKeys(std::vector<KeyedTask> keyed) {
  std::vector<v1::Task> tasks;
  tasks.reserve(keyed.size());
  for (KeyedTask& task : keyed) tasks.push_back(std::move(task.task));
  return tasks;
}

absl::Status Configure(SqliteDb& db, const SqliteTaskStoreOptions& options, bool writer) {
  const int64_t busy_ms = std::clamp<int64_t>(absl::ToInt64Milliseconds(options.busy_timeout), 0,
                                              std::numeric_limits<int>::max());
  const int rc = sqlite3_busy_timeout(db.handle(), static_cast<int>(busy_ms));
  if (rc != SQLITE_OK) return db.Error(rc, "setting the busy timeout");
  if (!writer) return db.Exec("PRAGMA query_only = 1");
  if (options.path != ":memory:") {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery wal, db.Prepare("PRAGMA journal_mode = WAL"));
    FLOWORK_ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return absl::UnavailableError(
          absl::StrCat("sqlite \"", options.path, "\": cannot use WAL mode (journal_mode is \"",
                       row ? std::string(wal.Text(0)) : std::string(), "\")"));
    }
  }
  return db.Exec(options.sync == SqliteTaskStoreOptions::Sync::kFull
                     ? "PRAGMA synchronous = FULL"
                     : "PRAGMA synchronous = NORMAL");
}

absl::Status CreateOrCheckSchema(SqliteDb& db) {
  return core::internal::CreateOrCheckSchema(db, "schema_version", "task store", kSchemaVersion,
                                             kSchema);
}

// One writer connection, used by the store's writer thread under writer_mu_,
// and a pool of read connections; a ":memory:" database has only the writer
// connection, which its readers share (under the same mutex).
class SqliteBackend final : public internal::StoreBackend, private internal::TaskTxn {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteBackend>> Open(
      const SqliteTaskStoreOptions& options) {
    FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> writer, SqliteDb::Open(options.path));
    FLOWORK_RETURN_IF_ERROR(Configure(*writer, options, /*writer=*/true));
    FLOWORK_RETURN_IF_ERROR(writer->Exec("BEGIN IMMEDIATE"));
    absl::Status schema = CreateOrCheckSchema(*writer);
    if (!schema.ok()) {
      (void)writer->Exec("ROLLBACK");
      return schema;
    }
    FLOWORK_RETURN_IF_ERROR(writer->Exec("COMMIT"));
    return std::unique_ptr<SqliteBackend>(new SqliteBackend(options, std::move(writer)));
  }

  void RunBatch(absl::Span<const std::unique_ptr<internal::WriteOp>> ops,
                absl::Span<absl::Status> results) override {
    absl::MutexLock lock(&writer_mu_);
    SqliteDb& db = *writer_;
    if (absl::Status begun = Statement(db, "BEGIN IMMEDIATE"); !begun.ok()) {
      for (absl::Status& result : results) result = begun;
      return;
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      absl::Status control = Statement(db, "SAVEPOINT op");
      if (control.ok()) {
        results[i] = ops[i]->Run(*this);
        if (!results[i].ok()) {
          if (sqlite3_get_autocommit(db.handle())) {
            // SQLite rolled the whole transaction back (I/O error, full disk):
            // the ops before this one are lost too, and the rest never ran.
            FailBatch(results, results[i]);
            return;
          }
          control = Statement(db, "ROLLBACK TO op");
        }
        if (control.ok()) control = Statement(db, "RELEASE op");
      }
      if (!control.ok()) {
        (void)Statement(db, "ROLLBACK");
        FailBatch(results, control);
        return;
      }
    }
    if (absl::Status committed = Statement(db, "COMMIT"); !committed.ok()) {
      if (!sqlite3_get_autocommit(db.handle())) (void)Statement(db, "ROLLBACK");
      FailBatch(results, committed);
    }
  }

  absl::StatusOr<v1::Task> Get(std::string_view id) override {
    return WithReader([&](SqliteDb& db) -> absl::StatusOr<v1::Task> {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                               db.Prepare(absl::StrCat(kSelectTask, "WHERE t.id = ?1")));
      query.BindText(1, id);
      FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) return internal::TaskNotFound(id);
      FLOWORK_ASSIGN_OR_RETURN(KeyedTask task, ReadTask(db, query));
      return std::move(task.task);
    });
  }

  absl::StatusOr<std::vector<KeyedTask>> List(const TaskFilter& filter, int64_t after_key,
                                              int limit) override {
    std::string sql = absl::StrCat(kSelectTask, "WHERE t.pk > ?1");
    if (!filter.agent.empty()) absl::StrAppend(&sql, " AND t.agent = ?2");
    if (!filter.tenant.empty()) absl::StrAppend(&sql, " AND t.tenant = ?3");
    if (!filter.states.empty()) {
      // Literals (validated enum values) so the state index can be used; the
      // set is normalised to keep the number of distinct statements small.
      std::set<int> states(filter.states.begin(), filter.states.end());
      absl::StrAppend(&sql, " AND t.state IN (", absl::StrJoin(states, ", "), ")");
    }
    absl::StrAppend(&sql, " ORDER BY t.pk LIMIT ?4");
    return WithReader([&](SqliteDb& db) -> absl::StatusOr<std::vector<KeyedTask>> {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, db.Prepare(sql));
      query.Bind(1, after_key).Bind(4, limit);
      if (!filter.agent.empty()) query.BindText(2, filter.agent);
      if (!filter.tenant.empty()) query.BindText(3, filter.tenant);
      return ReadTasks(db, query);
    });
  }

  absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                      uint64_t after_seq) override {
    return WithReader([&](SqliteDb& db) -> absl::StatusOr<std::vector<v1::StepRecord>> {
      // One statement, so the task's existence and its steps come from one snapshot.
      FLOWORK_ASSIGN_OR_RETURN(
          SqliteQuery query,
          db.Prepare("SELECT s.record FROM tasks t LEFT JOIN steps s ON s.task_pk = t.pk AND "
                     "s.seq > ?2 WHERE t.id = ?1 ORDER BY s.seq"));
      query.BindText(1, task_id).Bind(2, ClampSeq(after_seq));
      std::vector<v1::StepRecord> steps;
      bool found = false;
      while (true) {
        FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
        if (!row) break;
        found = true;
        if (query.IsNull(0)) continue;  // The task, without steps after after_seq.
        const std::string_view record = query.Blob(0);
        v1::StepRecord& step = steps.emplace_back();
        if (!step.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
          return absl::DataLossError(absl::StrCat("sqlite \"", db.path(), "\": task \"",
                                                  std::string(task_id), "\": unreadable step"));
        }
        step.set_task_id(std::string(task_id));
      }
      if (!found) return internal::TaskNotFound(task_id);
      return steps;
    });
  }

  absl::StatusOr<std::vector<v1::Task>> ListUnfinished() override {
    return WithReader([&](SqliteDb& db) -> absl::StatusOr<std::vector<v1::Task>> {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                               db.Prepare(absl::StrCat(kSelectTask, "WHERE t.state NOT IN ",
                                                       kFinalStates, " ORDER BY t.pk")));
      FLOWORK_ASSIGN_OR_RETURN(std::vector<KeyedTask> tasks, ReadTasks(db, query));
      return WithoutKeys(std::move(tasks));
    });
  }

  absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) override {
    return WithReader([&](SqliteDb& db) -> absl::StatusOr<std::vector<std::string>> {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                               db.Prepare("SELECT id FROM tasks WHERE parent_id = ?1 ORDER BY pk"));
      query.BindText(1, parent_id);
      std::vector<std::string> ids;
      while (true) {
        FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
        if (!row) return ids;
        ids.emplace_back(query.Text(0));
      }
    });
  }

 private:
  SqliteBackend(const SqliteTaskStoreOptions& options, std::unique_ptr<SqliteDb> writer)
      : options_(options),
        shared_connection_(options.path == ":memory:"),
        writer_(std::move(writer)) {}

  static int64_t ClampSeq(uint64_t seq) {
    return static_cast<int64_t>(
        std::min<uint64_t>(seq, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
  }

  static absl::Status Statement(SqliteDb& db, std::string_view sql) {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, db.Prepare(sql));
    return query.Run();
  }

  // Every op that succeeded fails with `cause` instead: its writes are gone.
  static void FailBatch(absl::Span<absl::Status> results, const absl::Status& cause) {
    const absl::Status lost(cause.code(),
                            absl::StrCat("the write batch was rolled back: ", cause.message()));
    for (absl::Status& result : results) {
      if (result.ok()) result = lost;
    }
  }

  // Runs `read` on a read connection (the writer's, for ":memory:").
  template <typename Read>
  auto WithReader(Read read) -> decltype(read(std::declval<SqliteDb&>())) {
    if (shared_connection_) {
      absl::MutexLock lock(&writer_mu_);
      return read(*writer_);
    }
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = AcquireReader();
    if (!db.ok()) return db.status();
    auto result = read(**db);
    ReleaseReader(*std::move(db));
    return result;
  }

  absl::StatusOr<std::unique_ptr<SqliteDb>> AcquireReader() {
    {
      absl::MutexLock lock(&pool_mu_);
      pool_mu_.Await(absl::Condition(this, &SqliteBackend::ReaderAvailable));
      if (!idle_readers_.empty()) {
        std::unique_ptr<SqliteDb> db = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return db;
      }
      ++open_readers_;
    }
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(options_.path);
    if (db.ok()) {
      absl::Status configured = Configure(**db, options_, /*writer=*/false);
      if (!configured.ok()) db = configured;
    }
    if (!db.ok()) {
      absl::MutexLock lock(&pool_mu_);
      --open_readers_;
    }
    return db;
  }

  bool ReaderAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
    return !idle_readers_.empty() || open_readers_ < options_.read_connections;
  }

  void ReleaseReader(std::unique_ptr<SqliteDb> db) {
    absl::MutexLock lock(&pool_mu_);
    idle_readers_.push_back(std::move(db));
  }

  // TaskTxn, on the writer connection inside RunBatch (writer_mu_ held).

  absl::StatusOr<TaskRow> LoadTask(std::string_view id) override {
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery query,
        writer_->Prepare("SELECT pk, state, step_count, attempt, cancel_requested, not_before, "
                         "error, update_time FROM tasks WHERE id = ?1"));
    query.BindText(1, id);
    FLOWORK_ASSIGN_OR_RETURN(bool found, query.Step());
    if (!found) return internal::TaskNotFound(id);
    TaskRow row;
    row.key = query.Int64(0);
    row.id = std::string(id);
    row.state = static_cast<v1::TaskState>(query.Int64(1));
    row.step_count = static_cast<uint64_t>(query.Int64(2));
    row.attempt = static_cast<int32_t>(query.Int64(3));
    row.cancel_requested = query.Int64(4) != 0;
    if (!query.IsNull(5)) row.not_before = absl::FromUnixNanos(query.Int64(5));
    row.error = std::string(query.Text(6));
    row.update_time = absl::FromUnixNanos(query.Int64(7));
    return row;
  }

  absl::Status StoreTask(const TaskRow& row, const google::protobuf::Value* output) override {
    const std::string serialized_output = output != nullptr ? output->SerializeAsString() : "";
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery query,
        writer_->Prepare(output != nullptr
                             ? "UPDATE tasks SET state = ?2, step_count = ?3, attempt = ?4, "
                               "cancel_requested = ?5, not_before = ?6, error = ?7, "
                               "update_time = ?8, output = ?9 WHERE pk = ?1"
                             : "UPDATE tasks SET state = ?2, step_count = ?3, attempt = ?4, "
                               "cancel_requested = ?5, not_before = ?6, error = ?7, "
                               "update_time = ?8 WHERE pk = ?1"));
    query.Bind(1, row.key)
        .Bind(2, row.state)
        .Bind(3, static_cast<int64_t>(row.step_count))
        .Bind(4, row.attempt)
        .Bind(5, row.cancel_requested ? 1 : 0)
        .BindText(7, row.error)
        .Bind(8, ToNanos(row.update_time));
    if (row.not_before) {
      query.Bind(6, ToNanos(*row.not_before));
    } else {
      query.BindNull(6);
    }
    if (output != nullptr) query.BindBlob(9, serialized_output);
    return query.Run();
  }

  absl::StatusOr<v1::StepRecord> LoadStep(int64_t task_key, uint64_t seq) override {
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery query,
        writer_->Prepare("SELECT record FROM steps WHERE task_pk = ?1 AND seq = ?2"));
    query.Bind(1, task_key).Bind(2, ClampSeq(seq));
    FLOWORK_ASSIGN_OR_RETURN(bool found, query.Step());
    if (!found) {
      return absl::DataLossError(absl::StrCat("sqlite \"", writer_->path(), "\": task ", task_key,
                                              ": step ", seq, " is missing from the journal"));
    }
    const std::string_view record = query.Blob(0);
    v1::StepRecord step;
    if (!step.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
      return absl::DataLossError(absl::StrCat("sqlite \"", writer_->path(), "\": task ", task_key,
                                              ": step ", seq, " is unreadable"));
    }
    return step;
  }

  absl::Status InsertStep(int64_t task_key, const v1::StepRecord& step) override {
    return WriteStep("INSERT INTO steps (task_pk, seq, record) VALUES (?1, ?2, ?3)", task_key,
                     step);
  }

  absl::Status UpdateStep(int64_t task_key, const v1::StepRecord& step) override {
    return WriteStep("UPDATE steps SET record = ?3 WHERE task_pk = ?1 AND seq = ?2", task_key,
                     step);
  }

  absl::Status WriteStep(std::string_view sql, int64_t task_key, const v1::StepRecord& step) {
    // The task id is the row's key; not stored again in every record.
    v1::StepRecord stored = step;
    stored.clear_task_id();
    const std::string record = stored.SerializeAsString();
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, writer_->Prepare(sql));
    query.Bind(1, task_key).Bind(2, ClampSeq(step.seq())).BindBlob(3, record);
    return query.Run();
  }

  absl::StatusOr<std::optional<v1::Task>> FindByIdempotencyKey(std::string_view tenant,
                                                               std::string_view key) override {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                             writer_->Prepare(absl::StrCat(
                                 kSelectTask, "WHERE t.tenant = ?1 AND t.idempotency_key = ?2")));
    query.BindText(1, tenant).BindText(2, key);
    FLOWORK_ASSIGN_OR_RETURN(bool found, query.Step());
    if (!found) return std::nullopt;
    FLOWORK_ASSIGN_OR_RETURN(KeyedTask task, ReadTask(*writer_, query));
    return std::move(task.task);
  }

  absl::StatusOr<bool> TaskExists(std::string_view id) override {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                             writer_->Prepare("SELECT 1 FROM tasks WHERE id = ?1"));
    query.BindText(1, id);
    return query.Step();
  }

  absl::Status InsertTask(const v1::Task& task) override {
    {
      FLOWORK_ASSIGN_OR_RETURN(
          SqliteQuery query,
          writer_->Prepare("INSERT INTO tasks (id, agent, tenant, parent_id, idempotency_key, "
                           "state, create_time, update_time, step_count, attempt, "
                           "cancel_requested, not_before, error, output) VALUES (?1, ?2, ?3, ?4, "
                           "?5, ?6, ?7, ?7, 0, 0, 0, ?8, '', NULL)"));
      query.BindText(1, task.id())
          .BindText(2, task.agent())
          .BindText(3, task.tenant())
          .Bind(6, task.state())
          .Bind(7, ToNanos(internal::FromTimestamp(task.create_time())));
      if (task.parent_id().empty()) {
        query.BindNull(4);
      } else {
        query.BindText(4, task.parent_id());
      }
      if (task.idempotency_key().empty()) {
        query.BindNull(5);
      } else {
        query.BindText(5, task.idempotency_key());
      }
      if (task.has_not_before()) {
        query.Bind(8, ToNanos(internal::FromTimestamp(task.not_before())));
      } else {
        query.BindNull(8);
      }
      FLOWORK_RETURN_IF_ERROR(query.Run());
    }
    const std::string spec = task.SerializeAsString();
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery query,
        writer_->Prepare("INSERT INTO task_specs (task_pk, spec) VALUES (?1, ?2)"));
    query.Bind(1, sqlite3_last_insert_rowid(writer_->handle())).BindBlob(2, spec);
    return query.Run();
  }

  absl::StatusOr<int64_t> PruneFinished(std::optional<absl::Time> finished_before,
                                        std::optional<int64_t> keep_newest,
                                        int64_t limit) override {
    std::vector<std::string> conditions;
    if (finished_before) conditions.push_back("update_time < ?1");
    if (keep_newest) {
      conditions.push_back(absl::StrCat("pk NOT IN (SELECT pk FROM tasks WHERE state IN ",
                                        kFinalStates,
                                        " ORDER BY update_time DESC, pk DESC LIMIT ?2)"));
    }
    if (conditions.empty()) return 0;
    std::vector<int64_t> doomed;
    {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                               writer_->Prepare(absl::StrCat(
                                   "SELECT pk FROM tasks WHERE state IN ", kFinalStates, " AND (",
                                   absl::StrJoin(conditions, " OR "), ") ORDER BY pk LIMIT ?3")));
      if (finished_before) query.Bind(1, ToNanos(*finished_before));
      if (keep_newest) query.Bind(2, *keep_newest);
      query.Bind(3, limit);
      while (true) {
        FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
        if (!row) break;
        doomed.push_back(query.Int64(0));
      }
    }
    for (int64_t pk : doomed) {
      for (const char* sql :
           {"DELETE FROM steps WHERE task_pk = ?1", "DELETE FROM task_specs WHERE task_pk = ?1",
            "DELETE FROM tasks WHERE pk = ?1"}) {
        FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, writer_->Prepare(sql));
        FLOWORK_RETURN_IF_ERROR(query.Bind(1, pk).Run());
      }
    }
    return static_cast<int64_t>(doomed.size());
  }

  const SqliteTaskStoreOptions options_;
  const bool shared_connection_;

  // Used by the writer thread in RunBatch (TaskTxn methods run inside it), and
  // by readers of a ":memory:" database.
  absl::Mutex writer_mu_;
  const std::unique_ptr<SqliteDb> writer_;

  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);
  int open_readers_ ABSL_GUARDED_BY(pool_mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TaskStore>> CreateSqliteTaskStore(
    const SqliteTaskStoreOptions& options, const core::Clock& clock) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("options.path: required (a file, or \":memory:\")");
  }
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.max_batch: ", options.max_batch, " is less than 1"));
  }
  if (options.read_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.read_connections: ", options.read_connections, " is less than 1"));
  }
  if (options.busy_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("options.busy_timeout: negative");
  }
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteBackend> backend, SqliteBackend::Open(options));
  return std::make_unique<internal::GroupCommitTaskStore>(std::move(backend), clock,
                                                          options.max_batch);
}

}  // namespace flowork::agent
