// The AuditLog: a bounded queue in front of one writer thread that seals
// entries into the chain (audit_chain.h) and commits them in batched SQLite
// transactions, and prunes old entries behind checkpoint entries.
#include "flowork/router/audit_log.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "audit/audit_chain.h"
#include "flowork/core/internal/sqlite_db.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/logging.h"

namespace flowork::router {
namespace {

using core::internal::SqliteDb;
using core::internal::SqliteQuery;

// Entries per transaction at most (and at most half the queue: entries being
// committed still count against the capacity, and the other half keeps taking
// appends meanwhile).
constexpr size_t kMaxBatch = 2048;
// The writer starts a batch before flush_interval once this many wait.
constexpr size_t kBatchTrigger = 1024;
// How often (on the log's clock) the writer looks for entries to prune. The
// log exceeds max_entries / max_age by at most this much traffic.
constexpr absl::Duration kRetentionInterval = absl::Seconds(1);
// A connection holding the write lock (an operator's sqlite3 shell, a backup)
// is waited for in steps of this long; the entries are not lost meanwhile.
constexpr int kBusyTimeoutMs = 200;
// A closing log waits this many steps for such a lock before it gives up.
constexpr int kBusyStepsWhenClosing = 10;

constexpr char kDefaultPath[] = "./flowork-audit.db";
constexpr uint32_t kDefaultQueueCapacity = 8192;
constexpr absl::Duration kDefaultFlushInterval = absl::Milliseconds(100);

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp result;
  const int64_t seconds = absl::ToUnixSeconds(time);
  result.set_seconds(seconds);
  result.set_nanos(
      static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return result;
}

int64_t Micros(const google::protobuf::Timestamp& time) {
  return time.seconds() * 1'000'000 + time.nanos() / 1'000;
}

bool LastErrorWasBusy(const SqliteDb& db) {
  return (sqlite3_errcode(db.handle()) & 0xff) == SQLITE_BUSY;
}

// WHERE clauses and their parameters, shared by Query and Usage.
class SqlFilter {
 public:
  void Equals(std::string_view column, const std::string& value) {
    if (value.empty()) return;
    Add(absl::StrCat(std::string(column), " = ?"), value);
  }
  void TimeRange(const google::protobuf::Timestamp* start, const google::protobuf::Timestamp* end) {
    if (start != nullptr) Add("time_us >= ?", Micros(*start));
    if (end != nullptr) Add("time_us < ?", Micros(*end));
  }
  void Add(std::string clause, std::variant<int64_t, std::string> value) {
    clauses_.push_back(std::move(clause));
    values_.push_back(std::move(value));
  }
  void AddClause(std::string clause) { clauses_.push_back(std::move(clause)); }

  std::string Where() const {
    return clauses_.empty() ? "" : absl::StrCat(" WHERE ", absl::StrJoin(clauses_, " AND "));
  }
  // Binds the parameters from index 1; returns the next free index.
  int Bind(SqliteQuery& query) const {
    int index = 1;
    for (const auto& value : values_) {
      if (const auto* number = std::get_if<int64_t>(&value)) {
        query.Bind(index++, *number);
      } else {
        query.BindText(index++, std::get<std::string>(value));
      }
    }
    return index;
  }

 private:
  std::vector<std::string> clauses_;
  std::vector<std::variant<int64_t, std::string>> values_;
};

// Where the chain stands; the writer thread's own.
struct ChainHead {
  uint64_t first_seq = 0;  // The oldest stored entry; 0 when the log is empty.
  uint64_t seq = 0;        // The newest.
  std::string hash;        // Its hash; "" when the log is empty.
};

absl::StatusOr<ChainHead> ReadChainHead(SqliteDb& db) {
  ChainHead head;
  FLOWORK_ASSIGN_OR_RETURN(
      SqliteQuery bounds,
      db.Prepare("SELECT MIN(seq), MAX(seq), (SELECT hash FROM audit_entries ORDER BY seq DESC "
                 "LIMIT 1) FROM audit_entries"));
  FLOWORK_ASSIGN_OR_RETURN(bool found, bounds.Step());
  if (found && !bounds.IsNull(0)) {
    head.first_seq = static_cast<uint64_t>(bounds.Int64(0));
    head.seq = static_cast<uint64_t>(bounds.Int64(1));
    head.hash = std::string(bounds.Text(2));
  }
  return head;
}

// An exclusive flock(2) held while the log is open: one process appends to
// a chain. (SQLite's own locks last a transaction; two writers would each
// extend the chain from the head they read and fork it.) It locks a file
// beside the database, never the database itself: closing any descriptor of
// the database would drop the POSIX locks SQLite holds on it in this
// process. Released by the kernel if the process dies.
class WriterLock {
 public:
  static absl::StatusOr<std::unique_ptr<WriterLock>> Acquire(const std::string& database) {
    const std::string path = database + "-writer.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      const int error = errno;
      return absl::Status(absl::ErrnoToStatusCode(error),
                          absl::StrCat("audit log ", database, ": cannot open its lock file ", path,
                                       ": ", std::strerror(error)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "audit log ", database,
            " is open for writing elsewhere (another router, or an agent's embedded router): "
            "give each its own audit.path"));
      }
      return absl::Status(
          absl::ErrnoToStatusCode(error),
          absl::StrCat("audit log ", database, ": cannot lock ", path, ": ", std::strerror(error)));
    }
    return std::unique_ptr<WriterLock>(new WriterLock(fd));
  }
  ~WriterLock() { ::close(fd_); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  explicit WriterLock(int fd) : fd_(fd) {}
  const int fd_;
};

class SqliteAuditLog final : public AuditLog {
 public:
  SqliteAuditLog(const AuditLogOptions& options, std::unique_ptr<WriterLock> lock,
                 std::unique_ptr<SqliteDb> writer_db, std::unique_ptr<SqliteDb> reader_db,
                 ChainHead head)
      : lock_(std::move(lock)),
        options_(options),
        clock_(options.clock != nullptr ? *options.clock : core::Clock::Real()),
        batch_trigger_(std::clamp<size_t>(options.queue_capacity / 4, 1, kBatchTrigger)),
        max_batch_(std::clamp<size_t>(options.queue_capacity / 2, 1, kMaxBatch)),
        retention_(options.max_entries > 0 || options.max_age != absl::InfiniteDuration()),
        writer_db_(std::move(writer_db)),
        head_(std::move(head)),
        reader_db_(std::move(reader_db)) {
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~SqliteAuditLog() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    writer_.join();
  }

  bool Append(v1::AuditEntry entry) override {
    if (!entry.has_time()) *entry.mutable_time() = ToTimestamp(clock_.Now());
    entry.clear_checkpoint();  // Only retention writes checkpoints.
    absl::MutexLock lock(&mu_);
    if (queue_.size() + in_flight_ >= options_.queue_capacity) {
      ++dropped_;
      return false;
    }
    queue_.push_back(std::move(entry));
    ++accepted_;
    return true;
  }

  bool Full() const override {
    absl::MutexLock lock(&mu_);
    return queue_.size() + in_flight_ >= options_.queue_capacity;
  }

  absl::Status Flush() override {
    absl::MutexLock lock(&mu_);
    const uint64_t target = accepted_;
    // Also waits for a writer cycle that starts after this call, so what the
    // cycle does after committing (retention when due) is done too.
    const uint64_t request = ++flush_requests_;
    auto done = [this, target, request]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return settled_ >= target && flushes_served_ >= request;
    };
    mu_.Await(absl::Condition(&done));
    if (failed_ > failed_reported_) {
      failed_reported_ = failed_;
      return last_error_;
    }
    return absl::OkStatus();
  }

  AuditLogStats stats() const override {
    absl::MutexLock lock(&mu_);
    return {.queued = queue_.size() + in_flight_,
            .written = written_,
            .dropped = dropped_,
            .failed = failed_};
  }

  absl::StatusOr<v1::QueryAuditResponse> Query(const v1::QueryAuditRequest& request) override {
    const uint32_t limit = request.limit() == 0 ? 100 : std::min<uint32_t>(request.limit(), 1000);
    SqlFilter filter;
    filter.Add("seq > ?", static_cast<int64_t>(request.after_seq()));
    filter.TimeRange(request.has_start() ? &request.start() : nullptr,
                     request.has_end() ? &request.end() : nullptr);
    filter.Equals("request_id", request.request_id());
    filter.Equals("key", request.key());
    filter.Equals("tenant", request.tenant());
    filter.Equals("model", request.model());
    filter.Equals("outcome", request.outcome());

    absl::MutexLock lock(&reader_mu_);
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, reader_db_->Prepare(absl::StrCat(
                                                    "SELECT seq, entry, hash FROM audit_entries",
                                                    filter.Where(), " ORDER BY seq LIMIT ?")));
    query.Bind(filter.Bind(query),
               static_cast<int64_t>(limit) + 1);  // One more: is there a next page?
    v1::QueryAuditResponse response;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool found, query.Step());
      if (!found) break;
      if (static_cast<uint32_t>(response.entries_size()) == limit) {
        response.set_next_after_seq(response.entries(response.entries_size() - 1).seq());
        break;
      }
      const std::string_view bytes = query.Blob(1);
      v1::AuditEntry& entry = *response.add_entries();
      if (!entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(
            absl::StrCat("audit entry ", query.Int64(0), " cannot be read; run VerifyAudit"));
      }
      entry.set_hash(std::string(query.Text(2)));
    }
    return response;
  }

  absl::StatusOr<v1::GetUsageResponse> Usage(const v1::GetUsageRequest& request) override {
    std::vector<std::string> groups;
    for (int i = 0; i < request.group_by_size(); ++i) {
      const std::string& column = request.group_by(i);
      if (column != "key" && column != "tenant" && column != "model") {
        return absl::InvalidArgumentError(absl::StrCat("group_by[", i, "]: unknown column \"",
                                                       column, "\"; use key, tenant or model"));
      }
      if (std::find(groups.begin(), groups.end(), column) == groups.end()) groups.push_back(column);
    }
    SqlFilter filter;
    filter.AddClause("checkpoint_through IS NULL");
    filter.TimeRange(request.has_start() ? &request.start() : nullptr,
                     request.has_end() ? &request.end() : nullptr);
    filter.Equals("key", request.key());
    filter.Equals("tenant", request.tenant());
    filter.Equals("model", request.model());
    const std::string group_list = absl::StrJoin(groups, ", ");
    // Errors: every request that did not end "ok" (rejected or failed).
    const std::string sql = absl::StrCat(
        "SELECT ", group_list, groups.empty() ? "" : ", ",
        "COUNT(*), SUM(outcome != 'ok'), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cached_tokens), SUM(cost_usd) FROM audit_entries",
        filter.Where(),
        groups.empty() ? "" : absl::StrCat(" GROUP BY ", group_list, " ORDER BY ", group_list));

    absl::MutexLock lock(&reader_mu_);
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query, reader_db_->Prepare(sql));
    filter.Bind(query);
    v1::GetUsageResponse response;
    while (true) {
      FLOWORK_ASSIGN_OR_RETURN(bool found, query.Step());
      if (!found) break;
      v1::UsageRow& row = *response.add_rows();
      // Columns not grouped by show the filter, if any.
      row.set_key(request.key());
      row.set_tenant(request.tenant());
      row.set_model(request.model());
      int column = 0;
      for (const std::string& group : groups) {
        std::string value(query.Text(column++));
        if (group == "key") row.set_key(std::move(value));
        if (group == "tenant") row.set_tenant(std::move(value));
        if (group == "model") row.set_model(std::move(value));
      }
      row.set_requests(static_cast<uint64_t>(query.Int64(column++)));
      row.set_errors(static_cast<uint64_t>(query.Int64(column++)));
      row.set_prompt_tokens(query.Int64(column++));
      row.set_completion_tokens(query.Int64(column++));
      row.set_cached_tokens(query.Int64(column++));
      row.set_cost_usd(query.Double(column++));
    }
    return response;
  }

  absl::StatusOr<v1::VerifyAuditResponse> Verify() override {
    absl::MutexLock lock(&reader_mu_);
    return audit_internal::VerifyChain(*reader_db_);
  }

 private:
  bool Stopping() const {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  void WriterLoop() {
    std::vector<v1::AuditEntry> batch;
    while (true) {
      uint64_t serving = 0;  // The Flush requests this cycle answers.
      absl::Time now;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || flush_requests_ > flushes_served_ || queue_.size() >= batch_trigger_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready), options_.flush_interval);
        if (stopping_ && queue_.empty()) return;
        const size_t n = std::min(queue_.size(), max_batch_);
        batch.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(n)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
        in_flight_ = n;
        serving = flush_requests_;
        // Read with the batch: retention that is due now sees at least every
        // entry appended before this moment.
        now = clock_.Now();
      }
      const absl::Status committed = batch.empty() ? absl::OkStatus() : CommitWithRetry(batch);
      if (!committed.ok()) {
        core::Log(core::LogLevel::kError, "audit entries lost",
                  {{"entries", absl::StrCat(batch.size())}, {"error", committed.message()}});
      }
      if (retention_ && now >= next_retention_) {
        const absl::Status pruned = RunRetention(now);
        if (!pruned.ok()) {
          core::Log(core::LogLevel::kWarning, "audit retention failed; retrying later",
                    {{"error", pruned.message()}});
        }
      }
      {
        absl::MutexLock lock(&mu_);
        settled_ += in_flight_;
        if (committed.ok()) {
          written_ += in_flight_;
        } else {
          failed_ += in_flight_;
          last_error_ = committed;
        }
        in_flight_ = 0;
        flushes_served_ = std::max(flushes_served_, serving);
      }
      batch.clear();
    }
  }

  absl::Status CommitWithRetry(std::vector<v1::AuditEntry>& batch) {
    for (int step = 1;; ++step) {
      bool busy = false;
      absl::Status status = CommitBatch(batch, busy);
      if (status.ok() || !busy) return status;
      if (step >= kBusyStepsWhenClosing && Stopping()) return status;
    }
  }

  // Seals `batch` after the head and inserts it in one transaction; the head
  // moves only when it commits. `busy`: another connection held the lock.
  absl::Status CommitBatch(std::vector<v1::AuditEntry>& batch, bool& busy) {
    FLOWORK_RETURN_IF_ERROR(Begin(busy));
    uint64_t seq = head_.seq;
    std::string hash = head_.hash;
    for (v1::AuditEntry& entry : batch) {
      const std::string bytes = audit_internal::Seal(entry, ++seq, hash);
      absl::Status inserted = audit_internal::InsertEntry(*writer_db_, entry, bytes);
      if (!inserted.ok()) return Abort(std::move(inserted), busy);
      hash = entry.hash();
    }
    absl::Status done = writer_db_->Exec("COMMIT");
    if (!done.ok()) return Abort(std::move(done), busy);
    if (head_.first_seq == 0) head_.first_seq = head_.seq + 1;
    head_.seq = seq;
    head_.hash = std::move(hash);
    return absl::OkStatus();
  }

  absl::Status Begin(bool& busy) {
    absl::Status begun = writer_db_->Exec("BEGIN IMMEDIATE");
    busy = !begun.ok() && LastErrorWasBusy(*writer_db_);
    return begun;
  }

  absl::Status Abort(absl::Status error, bool& busy) {
    busy = LastErrorWasBusy(*writer_db_);
    (void)writer_db_->Exec("ROLLBACK");  // Fails only when SQLite already rolled back.
    return error;
  }

  // Deletes the prefix beyond max_entries / older than max_age and appends a
  // checkpoint entry for it, in one transaction. At most max_entries rows stay,
  // the checkpoint included; age prunes up to the first entry young enough to
  // keep.
  absl::Status RunRetention(absl::Time now) {
    next_retention_ = now + kRetentionInterval;
    if (head_.first_seq == 0) return absl::OkStatus();
    uint64_t through = 0;
    const uint64_t rows = head_.seq - head_.first_seq + 1;
    if (options_.max_entries > 0 && rows > options_.max_entries) {
      through = head_.seq - (options_.max_entries - 1);
    }
    if (options_.max_age != absl::InfiniteDuration()) {
      FLOWORK_ASSIGN_OR_RETURN(SqliteQuery young,
                               writer_db_->Prepare("SELECT seq FROM audit_entries WHERE seq >= ? "
                                                   "AND time_us >= ? ORDER BY seq LIMIT 1"));
      young.Bind(1, static_cast<int64_t>(head_.first_seq))
          .Bind(2, absl::ToUnixMicros(now - options_.max_age));
      FLOWORK_ASSIGN_OR_RETURN(bool found, young.Step());
      const uint64_t keep_from = found ? static_cast<uint64_t>(young.Int64(0)) : head_.seq + 1;
      through = std::max(through, keep_from - 1);
    }
    if (through < head_.first_seq) return absl::OkStatus();

    bool busy = false;
    FLOWORK_RETURN_IF_ERROR(Begin(busy));
    absl::StatusOr<v1::AuditEntry> checkpoint = Prune(through, now);
    if (!checkpoint.ok()) return Abort(checkpoint.status(), busy);
    const std::string bytes = audit_internal::Seal(*checkpoint, head_.seq + 1, head_.hash);
    absl::Status done = audit_internal::InsertEntry(*writer_db_, *checkpoint, bytes);
    if (done.ok()) done = writer_db_->Exec("COMMIT");
    if (!done.ok()) return Abort(std::move(done), busy);
    head_.first_seq = through + 1;
    head_.seq = checkpoint->seq();
    head_.hash = checkpoint->hash();
    return absl::OkStatus();
  }

  // Inside the retention transaction: deletes entries up to `through`; the
  // checkpoint entry that must follow.
  absl::StatusOr<v1::AuditEntry> Prune(uint64_t through, absl::Time now) {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery last,
                             writer_db_->Prepare("SELECT hash FROM audit_entries WHERE seq = ?"));
    last.Bind(1, static_cast<int64_t>(through));
    FLOWORK_ASSIGN_OR_RETURN(bool found, last.Step());
    if (!found) return absl::DataLossError(absl::StrCat("audit entry ", through, " is missing"));
    v1::AuditEntry entry;
    *entry.mutable_time() = ToTimestamp(now);
    entry.mutable_checkpoint()->set_pruned_through_seq(through);
    entry.mutable_checkpoint()->set_pruned_through_hash(std::string(last.Text(0)));
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery remove,
                             writer_db_->Prepare("DELETE FROM audit_entries WHERE seq <= ?"));
    remove.Bind(1, static_cast<int64_t>(through));
    FLOWORK_RETURN_IF_ERROR(remove.Run());
    entry.mutable_checkpoint()->set_pruned_entries(
        static_cast<uint64_t>(sqlite3_changes64(writer_db_->handle())));
    return entry;
  }

  const std::unique_ptr<WriterLock> lock_;  // First: released after the databases close.
  const AuditLogOptions options_;
  const core::Clock& clock_;
  const size_t batch_trigger_;
  const size_t max_batch_;
  const bool retention_;

  // The writer thread's own.
  std::unique_ptr<SqliteDb> writer_db_;
  ChainHead head_;
  absl::Time next_retention_ = absl::InfinitePast();

  mutable absl::Mutex mu_;
  std::deque<v1::AuditEntry> queue_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // Taken by the writer, not yet settled.
  uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t settled_ ABSL_GUARDED_BY(mu_) = 0;  // Accepted and then committed or lost.
  uint64_t flush_requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushes_served_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_reported_ ABSL_GUARDED_BY(mu_) = 0;  // By Flush.
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Query, Usage and Verify read through their own connection (WAL lets them
  // run while the writer commits).
  absl::Mutex reader_mu_;
  std::unique_ptr<SqliteDb> reader_db_ ABSL_GUARDED_BY(reader_mu_);

  std::thread writer_;  // Last: started once everything above exists.
};

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditLogOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("audit log: path is required");
  if (options.queue_capacity == 0) {
    return absl::InvalidArgumentError("audit log: queue_capacity must be positive");
  }
  if (options.flush_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("audit log: flush_interval must be positive");
  }
  if (options.max_age <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("audit log: max_age must be positive");
  }
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<WriterLock> lock, WriterLock::Acquire(options.path));
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> writer, SqliteDb::Open(options.path));
  sqlite3_busy_timeout(writer->handle(), kBusyTimeoutMs);
  // WAL: readers never block the writer. synchronous=NORMAL: a commit survives
  // a crash of the process; a power cut may lose the last ones, never the
  // chain's integrity.
  FLOWORK_RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"));
  FLOWORK_RETURN_IF_ERROR(audit_internal::CreateSchema(*writer));
  FLOWORK_ASSIGN_OR_RETURN(ChainHead head, ReadChainHead(*writer));
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> reader, SqliteDb::Open(options.path));
  sqlite3_busy_timeout(reader->handle(), kBusyTimeoutMs);
  FLOWORK_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = 1"));
  return std::make_unique<SqliteAuditLog>(options, std::move(lock), std::move(writer),
                                          std::move(reader), std::move(head));
}

absl::StatusOr<v1::VerifyAuditResponse> VerifyAuditFile(const std::string& path) {
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                           SqliteDb::Open(path, SqliteDb::Mode::kReadOnly));
  sqlite3_busy_timeout(db->handle(), kBusyTimeoutMs);
  FLOWORK_RETURN_IF_ERROR(audit_internal::CheckSchema(*db));
  return audit_internal::VerifyChain(*db);
}

absl::StatusOr<AuditLogOptions> AuditLogOptionsFromConfig(const v1::AuditConfig& config,
                                                          const core::Clock* clock) {
  AuditLogOptions options;
  options.path = config.path().empty() ? kDefaultPath : config.path();
  options.queue_capacity =
      config.queue_capacity() == 0 ? kDefaultQueueCapacity : config.queue_capacity();
  options.max_entries = config.max_entries();
  options.clock = clock;
  auto duration = [](const google::protobuf::Duration& d) {
    return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  };
  options.flush_interval =
      config.has_flush_interval() ? duration(config.flush_interval()) : kDefaultFlushInterval;
  if (options.flush_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("audit.flush_interval: must be positive");
  }
  if (config.has_max_age()) {
    options.max_age = duration(config.max_age());
    if (options.max_age <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("audit.max_age: must be positive");
    }
  }
  return options;
}

}  // namespace flowork::router
