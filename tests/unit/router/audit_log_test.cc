#include "flowork/router/audit_log.h"

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flowork/router/key_ring.h"
#include "flowork/testing/fake_clock.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The audit file as an attacker (or an operator's sqlite3 shell) sees it.
class RawFile {
 public:
  explicit RawFile(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~RawFile() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
  }

  std::string Blob(uint64_t seq) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "SELECT entry FROM audit_entries WHERE seq = ?", -1, &stmt, nullptr);
    sqlite3_bind_int64(stmt, 1, static_cast<int64_t>(seq));
    std::string blob;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      blob.assign(static_cast<const char*>(sqlite3_column_blob(stmt, 0)),
                  static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    return blob;
  }

  void SetRow(uint64_t seq, const std::string& blob, const std::string& hash) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "UPDATE audit_entries SET entry = ?, hash = ? WHERE seq = ?", -1, &stmt,
                       nullptr);
    sqlite3_bind_blob(stmt, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, hash.data(), static_cast<int>(hash.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 3, static_cast<int64_t>(seq));
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
  }

  void SetBlob(uint64_t seq, const std::string& blob) {
    SetRow(seq, blob, Text(absl::StrCat("SELECT hash FROM audit_entries WHERE seq = ", seq)));
  }

  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
    std::string text;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return text;
  }

 private:
  sqlite3* db_ = nullptr;
};

v1::AuditEntry Entry(const std::string& request_id, const std::string& key = "team-a",
                     const std::string& model = "chat") {
  v1::AuditEntry entry;
  entry.set_request_id(request_id);
  entry.set_key(key);
  entry.set_tenant("acme");
  entry.set_model(model);
  entry.set_outcome("ok");
  entry.set_status(200);
  entry.set_prompt_tokens(10);
  entry.set_completion_tokens(5);
  entry.set_cost_usd(0.25);
  v1::AuditAttempt& attempt = *entry.add_attempts();
  attempt.set_endpoint("m@local");
  attempt.set_status(200);
  return entry;
}

class AuditLogTest : public ::testing::Test {
 protected:
  AuditLogTest() : path_(testing::MakeTempDir() + "/audit.db") {}

  std::unique_ptr<AuditLog> OpenLog(AuditLogOptions options = {}) {
    options.path = path_;
    options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  // Writes entries "r1".."rN" and closes the log.
  void WriteEntries(int n) {
    std::unique_ptr<AuditLog> log = OpenLog();
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= n; ++i) ASSERT_TRUE(log->Append(Entry(absl::StrCat("r", i))));
    ASSERT_TRUE(log->Flush().ok());
  }

  std::vector<v1::AuditEntry> All(AuditLog& log) {
    v1::QueryAuditRequest request;
    request.set_limit(1000);
    absl::StatusOr<v1::QueryAuditResponse> response = log.Query(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    return {response->entries().begin(), response->entries().end()};
  }

  v1::VerifyAuditResponse VerifyFile() {
    absl::StatusOr<v1::VerifyAuditResponse> result = VerifyAuditFile(path_);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : v1::VerifyAuditResponse();
  }

  const std::string path_;
  testing::FakeClock clock_;
};

TEST_F(AuditLogTest, AppendedEntriesAreChainedAndQueryable) {
  std::unique_ptr<AuditLog> log = OpenLog();
  ASSERT_TRUE(log->Append(Entry("r1", "team-a")));
  ASSERT_TRUE(log->Append(Entry("r2", "team-b")));
  ASSERT_TRUE(log->Append(Entry("r3", "team-a")));
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_EQ(log->stats().written, 3u);
  EXPECT_EQ(log->stats().queued, 0u);

  const std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].seq(), 1u);
  EXPECT_EQ(entries[0].prev_hash(), "");
  EXPECT_EQ(entries[0].request_id(), "r1");
  EXPECT_EQ(entries[0].attempts(0).endpoint(), "m@local");
  // The log stamps entries that come without a time.
  EXPECT_EQ(entries[0].time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(entries[1].prev_hash(), entries[0].hash());
  EXPECT_EQ(entries[2].prev_hash(), entries[1].hash());
  EXPECT_EQ(entries[2].hash().size(), 64u);

  v1::QueryAuditRequest by_key;
  by_key.set_key("team-a");
  absl::StatusOr<v1::QueryAuditResponse> team_a = log->Query(by_key);
  ASSERT_TRUE(team_a.ok());
  ASSERT_EQ(team_a->entries_size(), 2);
  EXPECT_EQ(team_a->entries(1).request_id(), "r3");

  v1::QueryAuditRequest by_id;
  by_id.set_request_id("r2");
  EXPECT_EQ(log->Query(by_id)->entries(0).key(), "team-b");
}

TEST_F(AuditLogTest, HashIsSha256OfPrevHashAndTheStoredBytes) {
  WriteEntries(2);
  RawFile file(path_);
  const std::string hash1 = file.Text("SELECT hash FROM audit_entries WHERE seq = 1");
  EXPECT_EQ(hash1, KeyRing::Sha256Hex(file.Blob(1)));
  EXPECT_EQ(file.Text("SELECT hash FROM audit_entries WHERE seq = 2"),
            KeyRing::Sha256Hex(hash1 + file.Blob(2)));
}

TEST_F(AuditLogTest, QueryPagesAndFiltersByTime) {
  std::unique_ptr<AuditLog> log = OpenLog();
  for (int i = 1; i <= 5; ++i) {
    v1::AuditEntry entry = Entry(absl::StrCat("r", i));
    entry.mutable_time()->set_seconds(1000 + i);
    ASSERT_TRUE(log->Append(entry));
  }
  ASSERT_TRUE(log->Flush().ok());

  v1::QueryAuditRequest page;
  page.set_limit(2);
  absl::StatusOr<v1::QueryAuditResponse> first = log->Query(page);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->entries_size(), 2);
  EXPECT_EQ(first->next_after_seq(), 2u);
  page.set_after_seq(4);
  absl::StatusOr<v1::QueryAuditResponse> last = log->Query(page);
  ASSERT_EQ(last->entries_size(), 1);
  EXPECT_EQ(last->entries(0).seq(), 5u);
  EXPECT_EQ(last->next_after_seq(), 0u);

  v1::QueryAuditRequest window;
  window.mutable_start()->set_seconds(1002);
  window.mutable_end()->set_seconds(1004);  // Exclusive.
  absl::StatusOr<v1::QueryAuditResponse> in_window = log->Query(window);
  ASSERT_TRUE(in_window.ok());
  ASSERT_EQ(in_window->entries_size(), 2);
  EXPECT_EQ(in_window->entries(0).request_id(), "r2");
  EXPECT_EQ(in_window->entries(1).request_id(), "r3");
}

TEST_F(AuditLogTest, ClosingCommitsQueuedEntriesAndReopeningResumesTheChain) {
  AuditLogOptions slow;
  slow.flush_interval = absl::Hours(1);  // Only closing commits.
  {
    std::unique_ptr<AuditLog> log = OpenLog(slow);
    ASSERT_TRUE(log->Append(Entry("r1")));
    ASSERT_TRUE(log->Append(Entry("r2")));
  }
  std::unique_ptr<AuditLog> log = OpenLog();
  ASSERT_TRUE(log->Append(Entry("r3")));
  ASSERT_TRUE(log->Flush().ok());
  const std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2].seq(), 3u);
  EXPECT_EQ(entries[2].prev_hash(), entries[1].hash());

  absl::StatusOr<v1::VerifyAuditResponse> verified = log->Verify();
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->ok()) << verified->reason();
  EXPECT_EQ(verified->entries_checked(), 3u);
  EXPECT_EQ(verified->last_seq(), 3u);
  EXPECT_EQ(verified->last_hash(), entries[2].hash());
}

TEST_F(AuditLogTest, OneWriterPerFileASecondIsRefusedUntilTheFirstCloses) {
  std::unique_ptr<AuditLog> first = OpenLog();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Append(Entry("r1")));
  ASSERT_TRUE(first->Flush().ok());
  AuditLogOptions options;
  options.path = path_;
  absl::StatusOr<std::unique_ptr<AuditLog>> second = AuditLog::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("open for writing elsewhere"));
  // Reading it meanwhile is fine.
  EXPECT_TRUE(VerifyFile().ok());
  first.reset();
  std::unique_ptr<AuditLog> reopened = OpenLog();
  ASSERT_NE(reopened, nullptr);
  ASSERT_TRUE(reopened->Append(Entry("r2")));
  ASSERT_TRUE(reopened->Flush().ok());
  EXPECT_EQ(All(*reopened).size(), 2u);
}

TEST_F(AuditLogTest, EntriesAreCommittedWithinTheFlushIntervalWithoutFlush) {
  AuditLogOptions options;
  options.flush_interval = absl::Milliseconds(5);
  std::unique_ptr<AuditLog> log = OpenLog(options);
  ASSERT_TRUE(log->Append(Entry("r1")));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (log->stats().written == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(log->stats().written, 1u);
}

TEST_F(AuditLogTest, AnEmptyLogVerifies) {
  std::unique_ptr<AuditLog> log = OpenLog();
  absl::StatusOr<v1::VerifyAuditResponse> verified = log->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->ok());
  EXPECT_EQ(verified->entries_checked(), 0u);
}

TEST_F(AuditLogTest, OneChangedByteOfAStoredEntryIsNamed) {
  WriteEntries(5);
  EXPECT_TRUE(VerifyFile().ok());
  {
    RawFile file(path_);
    std::string blob = file.Blob(3);
    ASSERT_FALSE(blob.empty());
    blob[blob.size() / 2] ^= 0x01;
    file.SetBlob(3, blob);
  }
  const v1::VerifyAuditResponse verified = VerifyFile();
  EXPECT_FALSE(verified.ok());
  EXPECT_EQ(verified.first_broken_seq(), 3u);
  EXPECT_EQ(verified.reason(), "entry 3: stored bytes do not match its hash");
  EXPECT_EQ(verified.entries_checked(), 2u);
  EXPECT_EQ(verified.last_seq(), 2u);

  // The open log says the same.
  std::unique_ptr<AuditLog> log = OpenLog();
  absl::StatusOr<v1::VerifyAuditResponse> live = log->Verify();
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->first_broken_seq(), 3u);
}

TEST_F(AuditLogTest, AChangedHashOrCopiedColumnIsNamed) {
  WriteEntries(5);
  RawFile file(path_);
  file.Exec("UPDATE audit_entries SET tenant = 'someone-else' WHERE seq = 4");
  EXPECT_EQ(VerifyFile().reason(), "entry 4: column tenant does not match its stored bytes");
  file.Exec("UPDATE audit_entries SET cost_usd = 0 WHERE seq = 2");
  EXPECT_EQ(VerifyFile().reason(), "entry 2: column cost_usd does not match its stored bytes");
  file.Exec("UPDATE audit_entries SET hash = replace(hash, substr(hash, 1, 1), 'x') WHERE seq = 1");
  EXPECT_EQ(VerifyFile().first_broken_seq(), 1u);
  EXPECT_EQ(VerifyFile().reason(), "entry 1: stored bytes do not match its hash");
}

TEST_F(AuditLogTest, ARewrittenAndResealedEntryBreaksTheNextLink) {
  WriteEntries(4);
  {
    RawFile file(path_);
    v1::AuditEntry forged;
    ASSERT_TRUE(forged.ParseFromString(file.Blob(2)));
    forged.set_cost_usd(0);  // Hide the spend, and recompute this entry's hash.
    std::string bytes = forged.SerializeAsString();
    forged.set_hash(KeyRing::Sha256Hex(forged.prev_hash() + bytes));
    file.SetRow(2, bytes, forged.hash());
    file.Exec("UPDATE audit_entries SET cost_usd = 0 WHERE seq = 2");
  }
  const v1::VerifyAuditResponse verified = VerifyFile();
  EXPECT_EQ(verified.first_broken_seq(), 3u);
  EXPECT_EQ(verified.reason(), "entry 3: prev_hash does not link to entry 2");
}

TEST_F(AuditLogTest, ADeletedMiddleOrFirstEntryIsDetected) {
  WriteEntries(5);
  RawFile file(path_);
  file.Exec("DELETE FROM audit_entries WHERE seq = 3");
  v1::VerifyAuditResponse verified = VerifyFile();
  EXPECT_FALSE(verified.ok());
  EXPECT_EQ(verified.first_broken_seq(), 4u);
  EXPECT_EQ(verified.reason(), "entry 4: follows entry 2; entry 3 is missing");

  file.Exec("DELETE FROM audit_entries WHERE seq = 1");
  verified = VerifyFile();
  EXPECT_EQ(verified.first_broken_seq(), 2u);
  EXPECT_EQ(verified.reason(), "entry 2: entries 1..1 are missing and no checkpoint covers them");
}

TEST_F(AuditLogTest, RetentionByCountKeepsTheChainVerifiable) {
  AuditLogOptions options;
  options.max_entries = 5;
  std::unique_ptr<AuditLog> log = OpenLog(options);
  std::vector<std::string> hashes;  // Of r1..r8, before pruning.
  for (int i = 1; i <= 8; ++i) ASSERT_TRUE(log->Append(Entry(absl::StrCat("r", i))));
  ASSERT_TRUE(log->Flush().ok());
  clock_.Advance(absl::Seconds(2));  // Retention runs at most once a second.
  ASSERT_TRUE(log->Flush().ok());

  // Four entries kept, and the checkpoint for r1..r4 makes five.
  std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].seq(), 5u);
  const v1::AuditEntry& checkpoint = entries[4];
  EXPECT_EQ(checkpoint.seq(), 9u);
  ASSERT_TRUE(checkpoint.has_checkpoint());
  EXPECT_EQ(checkpoint.checkpoint().pruned_through_seq(), 4u);
  EXPECT_EQ(checkpoint.checkpoint().pruned_entries(), 4u);
  EXPECT_EQ(checkpoint.checkpoint().pruned_through_hash(), entries[0].prev_hash());
  EXPECT_EQ(checkpoint.prev_hash(), entries[3].hash());
  EXPECT_TRUE(VerifyFile().ok()) << VerifyFile().reason();

  // Usage leaves the checkpoint out.
  absl::StatusOr<v1::GetUsageResponse> usage = log->Usage({});
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->rows(0).requests(), 4u);

  // A second round prunes the first checkpoint too, behind a new one.
  for (int i = 9; i <= 12; ++i) ASSERT_TRUE(log->Append(Entry(absl::StrCat("r", i))));
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(log->Flush().ok());
  entries = All(*log);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].seq(), 10u);
  EXPECT_EQ(entries[4].checkpoint().pruned_through_seq(), 9u);
  const v1::VerifyAuditResponse verified = VerifyFile();
  EXPECT_TRUE(verified.ok()) << verified.reason();
  EXPECT_EQ(verified.entries_checked(), 5u);
  EXPECT_EQ(verified.last_seq(), 14u);
}

TEST_F(AuditLogTest, RetentionByAgePrunesOldEntriesBehindACheckpoint) {
  AuditLogOptions options;
  options.max_age = absl::Hours(1);
  std::unique_ptr<AuditLog> log = OpenLog(options);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(log->Append(Entry(absl::StrCat("old", i))));
  ASSERT_TRUE(log->Flush().ok());
  const std::string hash3 = All(*log)[2].hash();

  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(log->Append(Entry("new1")));
  ASSERT_TRUE(log->Append(Entry("new2")));
  ASSERT_TRUE(log->Flush().ok());

  const std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].request_id(), "new1");
  EXPECT_EQ(entries[1].request_id(), "new2");
  EXPECT_EQ(entries[2].checkpoint().pruned_through_seq(), 3u);
  EXPECT_EQ(entries[2].checkpoint().pruned_through_hash(), hash3);
  absl::StatusOr<v1::VerifyAuditResponse> verified = log->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->ok()) << verified->reason();

  // Without its checkpoint the pruned start no longer verifies.
  log.reset();
  RawFile(path_).Exec("DELETE FROM audit_entries WHERE checkpoint_through IS NOT NULL");
  EXPECT_EQ(VerifyFile().reason(),
            "entry 4: entries 1..3 are missing and no checkpoint covers them");
}

TEST_F(AuditLogTest, ACheckpointThatDoesNotMatchThePrunedEntryIsNamed) {
  AuditLogOptions options;
  options.max_entries = 3;
  {
    std::unique_ptr<AuditLog> log = OpenLog(options);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(log->Append(Entry(absl::StrCat("r", i))));
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(log->Flush().ok());
  }
  // Entries 4, 5 and the checkpoint (6) through 3. Forge entry 4's link.
  RawFile file(path_);
  v1::AuditEntry forged;
  ASSERT_TRUE(forged.ParseFromString(file.Blob(4)));
  forged.set_prev_hash(std::string(64, '0'));
  std::string bytes = forged.SerializeAsString();
  file.Exec("UPDATE audit_entries SET prev_hash = '" + forged.prev_hash() + "' WHERE seq = 4");
  file.SetRow(4, bytes, KeyRing::Sha256Hex(forged.prev_hash() + bytes));
  EXPECT_EQ(VerifyFile().reason(),
            "entry 4: prev_hash does not match the hash of pruned entry 3 recorded by "
            "checkpoint entry 6");
}

TEST_F(AuditLogTest, UsageSumsAndGroups) {
  std::unique_ptr<AuditLog> log = OpenLog();
  v1::AuditEntry a1 = Entry("1", "team-a", "small");
  v1::AuditEntry a2 = Entry("2", "team-a", "large");
  a2.set_cost_usd(1.5);
  a2.set_cached_tokens(3);
  v1::AuditEntry b1 = Entry("3", "team-b", "small");
  b1.set_tenant("globex");
  b1.set_outcome("rejected");
  b1.set_status(429);
  b1.set_prompt_tokens(0);
  b1.set_completion_tokens(0);
  b1.set_cost_usd(0);
  for (const v1::AuditEntry& entry : {a1, a2, b1}) ASSERT_TRUE(log->Append(entry));
  ASSERT_TRUE(log->Flush().ok());

  absl::StatusOr<v1::GetUsageResponse> total = log->Usage({});
  ASSERT_TRUE(total.ok()) << total.status();
  ASSERT_EQ(total->rows_size(), 1);
  EXPECT_EQ(total->rows(0).requests(), 3u);
  EXPECT_EQ(total->rows(0).errors(), 1u);
  EXPECT_EQ(total->rows(0).prompt_tokens(), 20);
  EXPECT_EQ(total->rows(0).completion_tokens(), 10);
  EXPECT_EQ(total->rows(0).cached_tokens(), 3);
  EXPECT_DOUBLE_EQ(total->rows(0).cost_usd(), 1.75);

  v1::GetUsageRequest by_key;
  by_key.add_group_by("key");
  absl::StatusOr<v1::GetUsageResponse> keys = log->Usage(by_key);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->rows_size(), 2);
  EXPECT_EQ(keys->rows(0).key(), "team-a");
  EXPECT_EQ(keys->rows(0).requests(), 2u);
  EXPECT_DOUBLE_EQ(keys->rows(0).cost_usd(), 1.75);
  EXPECT_EQ(keys->rows(1).key(), "team-b");
  EXPECT_EQ(keys->rows(1).errors(), 1u);

  v1::GetUsageRequest small_by_tenant;
  small_by_tenant.set_model("small");
  small_by_tenant.add_group_by("tenant");
  absl::StatusOr<v1::GetUsageResponse> tenants = log->Usage(small_by_tenant);
  ASSERT_TRUE(tenants.ok());
  std::vector<std::string> names;
  for (const v1::UsageRow& row : tenants->rows()) {
    names.push_back(absl::StrCat(row.tenant(), "/", row.model(), "=", row.requests()));
  }
  EXPECT_THAT(names, ElementsAre("acme/small=1", "globex/small=1"));

  v1::GetUsageRequest window;
  window.mutable_end()->set_seconds(absl::ToUnixSeconds(clock_.Now()));  // Before all of them.
  EXPECT_EQ(log->Usage(window)->rows(0).requests(), 0u);

  v1::GetUsageRequest bad;
  bad.add_group_by("key");
  bad.add_group_by("endpoint");
  absl::StatusOr<v1::GetUsageResponse> refused = log->Usage(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("group_by[1]: unknown column \"endpoint\""));
}

TEST_F(AuditLogTest, AFullQueueRefusesAndCountsTheEntry) {
  AuditLogOptions options;
  options.queue_capacity = 3;
  std::unique_ptr<AuditLog> log = OpenLog(options);
  RawFile holder(path_);
  holder.Exec("BEGIN IMMEDIATE");  // The writer cannot commit until this ends.
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(log->Append(Entry(absl::StrCat("r", i))));
  EXPECT_TRUE(log->Full());
  EXPECT_FALSE(log->Append(Entry("r4")));
  AuditLogStats stats = log->stats();
  EXPECT_EQ(stats.dropped, 1u);
  EXPECT_EQ(stats.queued, 3u);
  EXPECT_EQ(stats.written, 0u);

  holder.Exec("COMMIT");
  ASSERT_TRUE(log->Flush().ok());
  stats = log->stats();
  EXPECT_EQ(stats.written, 3u);
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_FALSE(log->Full());
  EXPECT_TRUE(log->Append(Entry("r5")));
}

TEST_F(AuditLogTest, BodiesAreStoredOnlyWhenGiven) {
  std::unique_ptr<AuditLog> log = OpenLog();
  ASSERT_TRUE(log->Append(Entry("without")));
  v1::AuditEntry with = Entry("with");
  with.set_request_body(R"({"messages":[]})");
  with.set_response_body(R"({"choices":[]})");
  ASSERT_TRUE(log->Append(with));
  ASSERT_TRUE(log->Flush().ok());
  const std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_FALSE(entries[0].has_checkpoint());
  EXPECT_EQ(entries[0].request_body(), "");
  EXPECT_EQ(entries[0].response_body(), "");
  EXPECT_EQ(entries[1].request_body(), R"({"messages":[]})");
  EXPECT_EQ(entries[1].response_body(), R"({"choices":[]})");
  EXPECT_THAT(RawFile(path_).Blob(1), ::testing::Not(HasSubstr("messages")));
}

TEST_F(AuditLogTest, CallersCannotForgeChainFields) {
  std::unique_ptr<AuditLog> log = OpenLog();
  v1::AuditEntry forged = Entry("r1");
  forged.set_seq(77);
  forged.set_prev_hash("abc");
  forged.set_hash("def");
  forged.mutable_checkpoint()->set_pruned_through_seq(5);
  ASSERT_TRUE(log->Append(forged));
  ASSERT_TRUE(log->Flush().ok());
  const std::vector<v1::AuditEntry> entries = All(*log);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].seq(), 1u);
  EXPECT_EQ(entries[0].prev_hash(), "");
  EXPECT_FALSE(entries[0].has_checkpoint());
  EXPECT_TRUE(log->Verify()->ok());
}

TEST_F(AuditLogTest, VerifyFileSaysWhenItCannotReadTheFile) {
  EXPECT_FALSE(VerifyAuditFile(path_ + ".missing").ok());
  RawFile(path_).Exec("CREATE TABLE other (x)");
  absl::StatusOr<v1::VerifyAuditResponse> not_audit = VerifyAuditFile(path_);
  EXPECT_EQ(not_audit.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_audit.status().message(), HasSubstr("is not a Flowork audit file"));
  const std::string garbage = testing::MakeTempDir() + "/garbage.db";
  testing::WriteFile(garbage, std::string(4096, 'x'));
  EXPECT_FALSE(VerifyAuditFile(garbage).ok());
}

TEST(AuditLogOptionsTest, OpenRefusesBadOptions) {
  EXPECT_EQ(AuditLog::Open({}).status().code(), absl::StatusCode::kInvalidArgument);
  AuditLogOptions options;
  options.path = testing::MakeTempDir() + "/audit.db";
  options.queue_capacity = 0;
  EXPECT_EQ(AuditLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuditLogOptionsTest, ConfigDefaultsAndDurations) {
  absl::StatusOr<AuditLogOptions> defaults = AuditLogOptionsFromConfig({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->path, "./flowork-audit.db");
  EXPECT_EQ(defaults->queue_capacity, 8192u);
  EXPECT_EQ(defaults->flush_interval, absl::Milliseconds(100));
  EXPECT_EQ(defaults->max_age, absl::InfiniteDuration());

  v1::AuditConfig config;
  config.set_path("/var/lib/flowork/audit.db");
  config.mutable_max_age()->set_seconds(86400);
  config.mutable_flush_interval()->set_nanos(20'000'000);
  config.set_max_entries(1000);
  absl::StatusOr<AuditLogOptions> options = AuditLogOptionsFromConfig(config);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->max_age, absl::Hours(24));
  EXPECT_EQ(options->flush_interval, absl::Milliseconds(20));
  EXPECT_EQ(options->max_entries, 1000u);

  config.mutable_flush_interval()->set_nanos(-1);
  EXPECT_THAT(AuditLogOptionsFromConfig(config).status().message(),
              HasSubstr("audit.flush_interval"));
}

TEST(RedactJsonTest, ReplacesListedFieldsAtAnyDepth) {
  const std::string body =
      R"({"model":"m","api_key":"sk-1","messages":[{"role":"user","Password":{"a":1}}],)"
      R"("meta":{"nested":{"secret":"s","keep":"k"}}})";
  EXPECT_EQ(RedactJson(body, {"api_key", "password", "secret"}),
            R"({"model":"m","api_key":"[REDACTED]","messages":[{"role":"user",)"
            R"("Password":"[REDACTED]"}],"meta":{"nested":{"secret":"[REDACTED]","keep":"k"}}})");
}

TEST(RedactJsonTest, LeavesOtherJsonAloneAndHidesWhatIsNotJson) {
  EXPECT_EQ(RedactJson(R"([1,{"a":"b"}])", {"secret"}), R"([1,{"a":"b"}])");
  EXPECT_EQ(RedactJson("password=hunter2", {"password"}), "[REDACTED]");
}

}  // namespace
}  // namespace flowork::router
