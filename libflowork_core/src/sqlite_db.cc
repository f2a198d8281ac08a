#include "flowork/core/internal/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"

namespace flowork::core::internal {

SqliteQuery::SqliteQuery(SqliteQuery&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_error_(other.bind_error_) {}

SqliteQuery::~SqliteQuery() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void SqliteQuery::CheckBind(int rc) {
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

SqliteQuery& SqliteQuery::Bind(int index, int64_t value) {
  CheckBind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

SqliteQuery& SqliteQuery::BindDouble(int index, double value) {
  CheckBind(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

SqliteQuery& SqliteQuery::BindText(int index, std::string_view value) {
  // Empty text from a null pointer (a default std::string_view) would bind NULL.
  CheckBind(sqlite3_bind_text(stmt_, index, value.empty() ? "" : value.data(),
                              static_cast<int>(value.size()), SQLITE_STATIC));
  return *this;
}

SqliteQuery& SqliteQuery::BindBlob(int index, std::string_view value) {
  // A zero-length blob from a null pointer would bind NULL.
  static const char kEmpty = 0;
  CheckBind(sqlite3_bind_blob(stmt_, index, value.empty() ? &kEmpty : value.data(),
                              static_cast<int>(value.size()), SQLITE_STATIC));
  return *this;
}

SqliteQuery& SqliteQuery::BindNull(int index) {
  CheckBind(sqlite3_bind_null(stmt_, index));
  return *this;
}

absl::StatusOr<bool> SqliteQuery::Step() {
  if (bind_error_ != 0) return db_->Error(bind_error_, "binding a parameter");
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, sqlite3_sql(stmt_));
}

absl::Status SqliteQuery::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  if (*row) return absl::InternalError(absl::StrCat("unexpected row from ", sqlite3_sql(stmt_)));
  return absl::OkStatus();
}

bool SqliteQuery::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t SqliteQuery::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

double SqliteQuery::Double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string_view SqliteQuery::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return {reinterpret_cast<const char*>(text),
          static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::string_view SqliteQuery::Blob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return {};
  return {static_cast<const char*>(blob), static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, Mode mode) {
  sqlite3* db = nullptr;
  // NOMUTEX: each connection is used by one thread at a time (our locks).
  const int flags = (mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY
                                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  std::unique_ptr<SqliteDb> result(new SqliteDb(db, path));
  if (rc != SQLITE_OK) return result->Error(rc, "opening the database");
  sqlite3_extended_result_codes(db, 1);
  return result;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);  // Null-safe.
}

absl::Status SqliteDb::Exec(std::string_view sql) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, text);
  return absl::OkStatus();
}

absl::StatusOr<SqliteQuery> SqliteDb::Prepare(std::string_view sql) {
  auto it = statements_.find(ToAbsl(sql));
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, sql);
    it = statements_.emplace(std::string(sql), stmt).first;
  }
  return SqliteQuery(this, it->second);
}

absl::Status SqliteDb::Error(int rc, std::string_view what) const {
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string message =
      absl::StrCat("sqlite \"", path_, "\": ", ToAbsl(what), ": ", detail, " (code ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status CreateOrCheckSchema(SqliteDb& db, std::string_view version_table,
                                 std::string_view what, int64_t version, std::string_view schema) {
  const std::string table(version_table);
  FLOWORK_ASSIGN_OR_RETURN(
      SqliteQuery exists,
      db.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1"));
  FLOWORK_ASSIGN_OR_RETURN(bool row, exists.BindText(1, table).Step());
  if (!row) return absl::InternalError("count(*) returned no row");
  if (exists.Int64(0) == 0) {
    FLOWORK_RETURN_IF_ERROR(db.Exec(schema));
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery insert,
        db.Prepare(absl::StrCat("INSERT INTO ", table, " (version) VALUES (?1)")));
    return insert.Bind(1, version).Run();
  }
  FLOWORK_ASSIGN_OR_RETURN(SqliteQuery recorded,
                           db.Prepare(absl::StrCat("SELECT max(version) FROM ", table)));
  FLOWORK_ASSIGN_OR_RETURN(row, recorded.Step());
  if (!row || recorded.IsNull(0)) {
    return absl::DataLossError(
        absl::StrCat("sqlite \"", db.path(), "\": the ", table, " table is empty"));
  }
  const int64_t found = recorded.Int64(0);
  if (found > version) {
    return absl::FailedPreconditionError(
        absl::StrCat("sqlite \"", db.path(), "\": ", ToAbsl(what), " schema version ", found,
                     " is newer than this build's ", version,
                     "; it was written by a newer Flowork and is left untouched"));
  }
  if (found < version) {  // No older version was ever released.
    return absl::DataLossError(absl::StrCat("sqlite \"", db.path(), "\": unknown ", ToAbsl(what),
                                            " schema version ", found));
  }
  return absl::OkStatus();
}

}  // namespace flowork::core::internal
