#include "audit/audit_chain.h"

#include <openssl/evp.h>

#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace flowork::router::audit_internal {
namespace {

using core::internal::SqliteDb;
using core::internal::SqliteQuery;
using core::internal::ToAbsl;

// The columns every reader selects, in this order.
constexpr char kSelectColumns[] =
    "SELECT seq, time_us, request_id, key, tenant, model, outcome, status, cost_usd, "
    "prompt_tokens, completion_tokens, cached_tokens, checkpoint_through, entry, prev_hash, hash "
    "FROM audit_entries";
enum Column {
  kSeq,
  kTimeUs,
  kRequestId,
  kKey,
  kTenant,
  kModel,
  kOutcome,
  kStatus,
  kCostUsd,
  kPromptTokens,
  kCompletionTokens,
  kCachedTokens,
  kCheckpointThrough,
  kEntry,
  kPrevHash,
  kHash,
};

// SHA-256 fetched once: OpenSSL 3 looks an algorithm up on every implicit use.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

// The first copied column that disagrees with the entry's stored bytes, or "".
std::string_view MismatchedColumn(const SqliteQuery& row, const v1::AuditEntry& entry) {
  if (row.Int64(kTimeUs) != TimeMicros(entry)) return "time_us";
  if (row.Text(kRequestId) != entry.request_id()) return "request_id";
  if (row.Text(kKey) != entry.key()) return "key";
  if (row.Text(kTenant) != entry.tenant()) return "tenant";
  if (row.Text(kModel) != entry.model()) return "model";
  if (row.Text(kOutcome) != entry.outcome()) return "outcome";
  if (row.Int64(kStatus) != entry.status()) return "status";
  if (row.Double(kCostUsd) != entry.cost_usd()) return "cost_usd";
  if (row.Int64(kPromptTokens) != entry.prompt_tokens()) return "prompt_tokens";
  if (row.Int64(kCompletionTokens) != entry.completion_tokens()) return "completion_tokens";
  if (row.Int64(kCachedTokens) != entry.cached_tokens()) return "cached_tokens";
  const bool checkpoint = entry.has_checkpoint();
  if (row.IsNull(kCheckpointThrough) == checkpoint ||
      (checkpoint && static_cast<uint64_t>(row.Int64(kCheckpointThrough)) !=
                         entry.checkpoint().pruned_through_seq())) {
    return "checkpoint_through";
  }
  return "";
}

absl::StatusOr<v1::VerifyAuditResponse> WalkChain(SqliteDb& db) {
  v1::VerifyAuditResponse response;
  response.set_ok(true);
  uint64_t checked = 0;
  uint64_t last_seq = 0;
  std::string last_hash;
  auto broken = [&](uint64_t seq, std::string reason) {
    response.set_ok(false);
    response.set_first_broken_seq(seq);
    response.set_reason(std::move(reason));
    response.set_entries_checked(checked);
    response.set_last_seq(last_seq);
    response.set_last_hash(last_hash);
    return response;
  };

  // The start of the chain: entry 1, or the first entry after a pruned prefix,
  // which must link to the hash its checkpoint recorded.
  uint64_t first_seq = 0;
  std::string first_prev_hash;
  {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery first,
                             db.Prepare("SELECT seq, prev_hash FROM audit_entries "
                                        "ORDER BY seq LIMIT 1"));
    FLOWORK_ASSIGN_OR_RETURN(bool found, first.Step());
    if (!found) return response;  // An empty log is intact.
    first_seq = static_cast<uint64_t>(first.Int64(0));
    first_prev_hash = std::string(first.Text(1));
  }
  if (first_seq > 1) {
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery checkpoint,
                             db.Prepare("SELECT seq, entry, prev_hash, hash FROM audit_entries "
                                        "WHERE checkpoint_through = ? ORDER BY seq LIMIT 1"));
    checkpoint.Bind(1, static_cast<int64_t>(first_seq - 1));
    FLOWORK_ASSIGN_OR_RETURN(bool found, checkpoint.Step());
    if (!found) {
      return broken(first_seq, absl::StrCat("entry ", first_seq, ": entries 1..", first_seq - 1,
                                            " are missing and no checkpoint covers them"));
    }
    // A checkpoint whose own hash fails is reported where the walk meets it.
    v1::AuditEntry parsed;
    const std::string_view bytes = checkpoint.Blob(1);
    if (ChainHash(checkpoint.Text(2), bytes) == checkpoint.Text(3) &&
        parsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) &&
        parsed.checkpoint().pruned_through_hash() != first_prev_hash) {
      return broken(
          first_seq,
          absl::StrCat("entry ", first_seq, ": prev_hash does not match the hash of pruned entry ",
                       first_seq - 1, " recorded by checkpoint entry ", checkpoint.Int64(0)));
    }
  }

  FLOWORK_ASSIGN_OR_RETURN(SqliteQuery row,
                           db.Prepare(absl::StrCat(kSelectColumns, " ORDER BY seq")));
  while (true) {
    FLOWORK_ASSIGN_OR_RETURN(bool found, row.Step());
    if (!found) break;
    const auto seq = static_cast<uint64_t>(row.Int64(kSeq));
    const std::string_view bytes = row.Blob(kEntry);
    const std::string_view prev_hash = row.Text(kPrevHash);
    const std::string_view hash = row.Text(kHash);
    const std::string name = absl::StrCat("entry ", seq, ": ");
    if (checked > 0 && seq != last_seq + 1) {
      return broken(seq, seq == last_seq + 2
                             ? absl::StrCat(name, "follows entry ", last_seq, "; entry ",
                                            last_seq + 1, " is missing")
                             : absl::StrCat(name, "follows entry ", last_seq, "; entries ",
                                            last_seq + 1, "..", seq - 1, " are missing"));
    }
    if (ChainHash(prev_hash, bytes) != hash) {
      return broken(seq, absl::StrCat(name, "stored bytes do not match its hash"));
    }
    v1::AuditEntry entry;
    if (!entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return broken(seq, absl::StrCat(name, "stored bytes are not an audit entry"));
    }
    if (entry.seq() != seq) {
      return broken(seq, absl::StrCat(name, "stored bytes are those of entry ", entry.seq()));
    }
    if (!entry.hash().empty() || entry.prev_hash() != prev_hash) {
      return broken(seq, absl::StrCat(name, "column prev_hash does not match its stored bytes"));
    }
    if (checked == 0 && seq == 1 && !prev_hash.empty()) {
      return broken(seq, absl::StrCat(name, "the first entry has a prev_hash"));
    }
    if (checked > 0 && prev_hash != last_hash) {
      return broken(seq, absl::StrCat(name, "prev_hash does not link to entry ", last_seq));
    }
    if (std::string_view column = MismatchedColumn(row, entry); !column.empty()) {
      return broken(
          seq, absl::StrCat(name, "column ", ToAbsl(column), " does not match its stored bytes"));
    }
    ++checked;
    last_seq = seq;
    last_hash = std::string(hash);
  }
  response.set_entries_checked(checked);
  response.set_last_seq(last_seq);
  response.set_last_hash(last_hash);
  return response;
}

}  // namespace

std::string ChainHash(std::string_view prev_hash, std::string_view canonical_bytes) {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                               &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // Fails only without memory; an empty hash then fails verification.
  if (context == nullptr || EVP_DigestInit_ex(context.get(), Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), prev_hash.data(), prev_hash.size()) != 1 ||
      EVP_DigestUpdate(context.get(), canonical_bytes.data(), canonical_bytes.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), digest, &size) != 1) {
    return "";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(size)));
}

std::string Seal(v1::AuditEntry& entry, uint64_t seq, const std::string& prev_hash) {
  entry.set_seq(seq);
  entry.set_prev_hash(prev_hash);
  entry.clear_hash();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    entry.SerializeToCodedStream(&coded);
  }
  entry.set_hash(ChainHash(prev_hash, bytes));
  return bytes;
}

int64_t TimeMicros(const v1::AuditEntry& entry) {
  return entry.time().seconds() * 1'000'000 + entry.time().nanos() / 1'000;
}

absl::Status CreateSchema(SqliteDb& db) {
  FLOWORK_ASSIGN_OR_RETURN(SqliteQuery version, db.Prepare("PRAGMA user_version"));
  FLOWORK_ASSIGN_OR_RETURN(bool found, version.Step());
  const int64_t existing = found ? version.Int64(0) : 0;
  if (existing > kAuditFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit file \"", db.path(), "\" has format version ", existing,
                     "; this build reads up to ", kAuditFormatVersion));
  }
  return db.Exec(absl::StrCat(R"sql(
    CREATE TABLE IF NOT EXISTS audit_entries (
      seq INTEGER PRIMARY KEY,
      time_us INTEGER NOT NULL,
      request_id TEXT NOT NULL,
      key TEXT NOT NULL,
      tenant TEXT NOT NULL,
      model TEXT NOT NULL,
      outcome TEXT NOT NULL,
      status INTEGER NOT NULL,
      cost_usd REAL NOT NULL,
      prompt_tokens INTEGER NOT NULL,
      completion_tokens INTEGER NOT NULL,
      cached_tokens INTEGER NOT NULL,
      checkpoint_through INTEGER,
      entry BLOB NOT NULL,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries(time_us);
    CREATE INDEX IF NOT EXISTS audit_entries_request ON audit_entries(request_id);
    CREATE INDEX IF NOT EXISTS audit_entries_checkpoint ON audit_entries(checkpoint_through)
      WHERE checkpoint_through IS NOT NULL;
    PRAGMA user_version = )sql",
                              kAuditFormatVersion, ";"));
}

absl::Status CheckSchema(SqliteDb& db) {
  FLOWORK_ASSIGN_OR_RETURN(SqliteQuery version, db.Prepare("PRAGMA user_version"));
  FLOWORK_ASSIGN_OR_RETURN(bool found, version.Step());
  const int64_t format = found ? version.Int64(0) : 0;
  FLOWORK_ASSIGN_OR_RETURN(SqliteQuery table,
                           db.Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                      "AND name = 'audit_entries'"));
  FLOWORK_ASSIGN_OR_RETURN(bool has_table, table.Step());
  if (!has_table || format < 1 || format > kAuditFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", db.path(), "\" is not a Flowork audit file",
                     has_table ? absl::StrCat(" of a known format (version ", format, ")") : ""));
  }
  return absl::OkStatus();
}

absl::Status InsertEntry(SqliteDb& db, const v1::AuditEntry& sealed,
                         std::string_view canonical_bytes) {
  FLOWORK_ASSIGN_OR_RETURN(
      SqliteQuery insert,
      db.Prepare("INSERT INTO audit_entries (seq, time_us, request_id, key, tenant, model, "
                 "outcome, status, cost_usd, prompt_tokens, completion_tokens, cached_tokens, "
                 "checkpoint_through, entry, prev_hash, hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  insert.Bind(1, static_cast<int64_t>(sealed.seq()))
      .Bind(2, TimeMicros(sealed))
      .BindText(3, sealed.request_id())
      .BindText(4, sealed.key())
      .BindText(5, sealed.tenant())
      .BindText(6, sealed.model())
      .BindText(7, sealed.outcome())
      .Bind(8, sealed.status())
      .BindDouble(9, sealed.cost_usd())
      .Bind(10, sealed.prompt_tokens())
      .Bind(11, sealed.completion_tokens())
      .Bind(12, sealed.cached_tokens());
  if (sealed.has_checkpoint()) {
    insert.Bind(13, static_cast<int64_t>(sealed.checkpoint().pruned_through_seq()));
  } else {
    insert.BindNull(13);
  }
  insert.BindBlob(14, canonical_bytes).BindText(15, sealed.prev_hash()).BindText(16, sealed.hash());
  return insert.Run();
}

absl::StatusOr<v1::VerifyAuditResponse> VerifyChain(SqliteDb& db) {
  // One read transaction: a consistent snapshot while the writer goes on.
  FLOWORK_RETURN_IF_ERROR(db.Exec("BEGIN"));
  absl::StatusOr<v1::VerifyAuditResponse> result = WalkChain(db);
  absl::Status ended = db.Exec("ROLLBACK");
  if (result.ok() && !ended.ok()) return ended;
  return result;
}

}  // namespace flowork::router::audit_internal
