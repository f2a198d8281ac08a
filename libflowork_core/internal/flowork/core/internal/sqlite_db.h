// Private to Flowork's own libraries; never installed. A thin layer over the
// SQLite C API that turns its errors into absl::Status and keeps prepared
// statements for reuse. Its users link SQLite through flowork_core.
#ifndef FLOWORK_CORE_INTERNAL_SQLITE_DB_H_
#define FLOWORK_CORE_INTERNAL_SQLITE_DB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace flowork::core::internal {

class SqliteDb;

// One use of a prepared statement: bind, step, read columns. Resets the
// statement when dropped, so a cached statement never holds a read snapshot
// or a lock between uses. Bound text and blobs are not copied: they must stay
// alive until the query is dropped.
class SqliteQuery {
 public:
  SqliteQuery(SqliteQuery&& other) noexcept;
  SqliteQuery& operator=(SqliteQuery&&) = delete;
  ~SqliteQuery();

  // Parameters count from 1.
  SqliteQuery& Bind(int index, int64_t value);
  SqliteQuery& BindDouble(int index, double value);
  SqliteQuery& BindText(int index, std::string_view value);
  SqliteQuery& BindBlob(int index, std::string_view value);
  SqliteQuery& BindNull(int index);

  // True: a row is ready to read; false: the statement is done.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  absl::Status Run();

  // Columns count from 0.
  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  double Double(int column) const;
  std::string_view Text(int column) const;
  std::string_view Blob(int column) const;

 private:
  friend class SqliteDb;
  SqliteQuery(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void CheckBind(int rc);

  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  int bind_error_ = 0;
};

// One connection. Not thread-safe: one thread at a time.
class SqliteDb {
 public:
  enum class Mode {
    kReadWriteCreate,  // Created when missing.
    kReadOnly,         // Must exist; never written.
  };

  // Opens the database at `path` ("" or ":memory:" for memory).
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                        Mode mode = Mode::kReadWriteCreate);
  ~SqliteDb();

  // Runs SQL text of one or more statements, none returning rows we need.
  absl::Status Exec(std::string_view sql);
  // A statement prepared once per connection and SQL text, ready to bind.
  absl::StatusOr<SqliteQuery> Prepare(std::string_view sql);

  // A status for SQLite result code `rc`, naming the database and `what` was
  // being done: kUnavailable for busy/locked/I-O/open failures,
  // kResourceExhausted for a full disk, kDataLoss for a corrupt file or not a
  // database, kInternal otherwise.
  absl::Status Error(int rc, std::string_view what) const;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  const std::string path_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_;
};

// Versioned schemas, inside the caller's transaction (so a crash never
// leaves the tables without their version). When `version_table` does not
// exist yet, runs `schema` (which creates it) and records `version`. Otherwise
// checks the recorded version: a newer one is kFailedPrecondition (written by
// a newer Flowork; the file is left untouched), an older or missing one
// kDataLoss. `what` names the store in messages, e.g. "task store".
absl::Status CreateOrCheckSchema(SqliteDb& db, std::string_view version_table,
                                 std::string_view what, int64_t version, std::string_view schema);

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_SQLITE_DB_H_
