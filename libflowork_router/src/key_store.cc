#include "flowork/router/key_store.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "google/protobuf/util/time_util.h"

namespace flowork::router {
namespace {

using core::internal::ToAbsl;
using google::protobuf::util::TimeUtil;

// A key created through the admin API, as Identify and List see it.
struct CreatedKey {
  std::shared_ptr<const v1::ApiKey> key;  // sha256 set; never the plaintext.
  absl::Time create_time;
  absl::Time expire_time = absl::InfiniteFuture();
  bool revoked = false;
};

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

v1::KeyInfo InfoOf(const v1::ApiKey& key, std::string_view source) {
  v1::KeyInfo info;
  info.set_name(key.name());
  info.set_tenant(key.tenant());
  *info.mutable_allow() = key.allow();
  *info.mutable_zones() = key.zones();
  if (key.has_limits()) *info.mutable_limits() = key.limits();
  if (key.has_budget()) *info.mutable_budget() = key.budget();
  info.set_source(std::string(source));
  return info;
}

v1::KeyInfo InfoOf(const CreatedKey& created) {
  v1::KeyInfo info = InfoOf(*created.key, "admin");
  *info.mutable_create_time() = ToTimestamp(created.create_time);
  if (created.expire_time != absl::InfiniteFuture()) {
    *info.mutable_expire_time() = ToTimestamp(created.expire_time);
  }
  info.set_revoked(created.revoked);
  return info;
}

// One sqlite3 handle with the few statements the store needs. Not
// thread-safe: the store serialises its writes.
class KeyFile {
 public:
  static absl::StatusOr<std::unique_ptr<KeyFile>> Open(const std::string& path) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    auto file = std::unique_ptr<KeyFile>(new KeyFile(db, path));
    if (rc != SQLITE_OK) return file->Error(rc, "open");
    sqlite3_busy_timeout(db, 5000);
    FLOWORK_RETURN_IF_ERROR(
        file->Exec("PRAGMA journal_mode=WAL;"
                   "CREATE TABLE IF NOT EXISTS admin_keys("
                   " name TEXT PRIMARY KEY,"
                   " sha256 TEXT NOT NULL UNIQUE,"
                   " spec BLOB NOT NULL,"  // v1.ApiKey, binary.
                   " create_unix_nanos INTEGER NOT NULL,"
                   " expire_unix_nanos INTEGER,"     // NULL: never.
                   " revoke_unix_nanos INTEGER)"));  // NULL: in force.
    return file;
  }

  ~KeyFile() { sqlite3_close_v2(db_); }

  absl::Status Load(std::vector<CreatedKey>& out) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_,
                                "SELECT spec, create_unix_nanos, expire_unix_nanos, "
                                "revoke_unix_nanos FROM admin_keys ORDER BY name",
                                -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "read");
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      v1::ApiKey key;
      if (!key.ParseFromArray(sqlite3_column_blob(stmt, 0), sqlite3_column_bytes(stmt, 0))) {
        sqlite3_finalize(stmt);
        return absl::DataLossError(absl::StrCat(path_, ": a key record does not parse"));
      }
      CreatedKey created;
      created.key = std::make_shared<const v1::ApiKey>(std::move(key));
      created.create_time = absl::FromUnixNanos(sqlite3_column_int64(stmt, 1));
      if (sqlite3_column_type(stmt, 2) != SQLITE_NULL) {
        created.expire_time = absl::FromUnixNanos(sqlite3_column_int64(stmt, 2));
      }
      created.revoked = sqlite3_column_type(stmt, 3) != SQLITE_NULL;
      out.push_back(std::move(created));
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, "read");
  }

  absl::Status Insert(const CreatedKey& created) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_,
                                "INSERT INTO admin_keys(name, sha256, spec, create_unix_nanos, "
                                "expire_unix_nanos) VALUES(?, ?, ?, ?, ?)",
                                -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "write");
    const std::string spec = created.key->SerializeAsString();
    sqlite3_bind_text(stmt, 1, created.key->name().data(),
                      static_cast<int>(created.key->name().size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, created.key->sha256().data(),
                      static_cast<int>(created.key->sha256().size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(stmt, 3, spec.data(), static_cast<int>(spec.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 4, absl::ToUnixNanos(created.create_time));
    if (created.expire_time == absl::InfiniteFuture()) {
      sqlite3_bind_null(stmt, 5);
    } else {
      sqlite3_bind_int64(stmt, 5, absl::ToUnixNanos(created.expire_time));
    }
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(
          absl::StrCat("key name \"", created.key->name(), "\" is taken in ", path_));
    }
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, "write");
  }

  absl::Status MarkRevoked(const std::string& name, absl::Time when) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(
        db_,
        "UPDATE admin_keys SET revoke_unix_nanos = ? WHERE name = ? AND revoke_unix_nanos IS NULL",
        -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "write");
    sqlite3_bind_int64(stmt, 1, absl::ToUnixNanos(when));
    sqlite3_bind_text(stmt, 2, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, "write");
  }

 private:
  KeyFile(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  absl::Status Exec(const char* sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    sqlite3_free(message);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, "initialise");
  }

  absl::Status Error(int rc, std::string_view what) const {
    return absl::UnavailableError(absl::StrCat("key store ", path_, ": cannot ", ToAbsl(what), ": ",
                                               db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
  }

  sqlite3* db_;
  const std::string path_;
};

class KeyStoreImpl final : public KeyStore {
 public:
  KeyStoreImpl(const PolicyEngine& policy, const core::Clock& clock, std::unique_ptr<KeyFile> file)
      : policy_(policy), clock_(clock), file_(std::move(file)) {}

  void Adopt(std::vector<CreatedKey> keys) {
    absl::MutexLock lock(&mu_);
    for (CreatedKey& created : keys) {
      by_name_[created.key->name()] = created.key->sha256();
      by_hash_[created.key->sha256()] = std::move(created);
    }
  }

  absl::StatusOr<std::shared_ptr<const v1::ApiKey>> Identify(
      std::string_view authorization, std::string_view x_api_key) const override {
    std::shared_ptr<const Policy> snapshot = policy_.Current();
    if (snapshot->keys().open()) return nullptr;
    const std::string_view presented = KeyRing::PresentedKey(authorization, x_api_key);
    if (presented.empty()) {
      return absl::UnauthenticatedError(
          "no API key: send it as \"Authorization: Bearer <key>\" or \"x-api-key: <key>\"");
    }
    const std::string hash = KeyRing::Sha256Hex(presented);
    if (const v1::ApiKey* key = snapshot->keys().FindBySha256(hash)) {
      // Shares ownership of the snapshot the key lives in.
      return std::shared_ptr<const v1::ApiKey>(std::move(snapshot), key);
    }
    absl::ReaderMutexLock lock(&mu_);
    auto it = by_hash_.find(hash);
    if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown API key");
    const CreatedKey& created = it->second;
    if (created.revoked) {
      return absl::UnauthenticatedError(
          absl::StrCat("API key \"", created.key->name(), "\" was revoked"));
    }
    if (clock_.Now() >= created.expire_time) {
      return absl::UnauthenticatedError(absl::StrCat(
          "API key \"", created.key->name(), "\" expired at ",
          absl::FormatTime(absl::RFC3339_sec, created.expire_time, absl::UTCTimeZone())));
    }
    return created.key;
  }

  absl::StatusOr<v1::CreateKeyResponse> Create(const v1::CreateKeyRequest& request) override {
    const std::shared_ptr<const Policy> snapshot = policy_.Current();
    FLOWORK_RETURN_IF_ERROR(CheckRequest(request, snapshot->config()));
    unsigned char random[32];
    if (RAND_bytes(random, sizeof(random)) != 1) {
      return absl::InternalError("cannot generate a key: no randomness from OpenSSL");
    }
    std::string plaintext =
        absl::StrCat("fk-", absl::WebSafeBase64Escape(absl::string_view(
                                reinterpret_cast<const char*>(random), sizeof(random))));
    v1::ApiKey key;
    key.set_name(request.name());
    key.set_sha256(KeyRing::Sha256Hex(plaintext));
    key.set_tenant(request.tenant());
    *key.mutable_allow() = request.allow();
    *key.mutable_zones() = request.zones();
    if (request.has_limits()) *key.mutable_limits() = request.limits();
    if (request.has_budget()) *key.mutable_budget() = request.budget();
    CreatedKey created;
    created.key = std::make_shared<const v1::ApiKey>(std::move(key));
    created.create_time = clock_.Now();
    if (request.has_ttl()) {
      created.expire_time =
          created.create_time + absl::Nanoseconds(TimeUtil::DurationToNanoseconds(request.ttl()));
    }
    absl::MutexLock write(&write_mu_);  // One writer: the clash check holds until the insert.
    for (const v1::ApiKey& configured : snapshot->config().keys()) {
      if (configured.name() == request.name()) {
        return absl::AlreadyExistsError(
            absl::StrCat("key name \"", request.name(), "\" is taken by a configured key"));
      }
    }
    {
      absl::ReaderMutexLock lock(&mu_);
      if (by_name_.contains(request.name())) {
        return absl::AlreadyExistsError(absl::StrCat(
            "key name \"", request.name(), "\" is taken (revoked keys keep their names)"));
      }
    }
    if (file_) FLOWORK_RETURN_IF_ERROR(file_->Insert(created));
    v1::CreateKeyResponse response;
    *response.mutable_key() = InfoOf(created);
    response.set_plaintext(std::move(plaintext));
    absl::MutexLock lock(&mu_);
    by_name_[request.name()] = created.key->sha256();
    by_hash_[created.key->sha256()] = std::move(created);
    return response;
  }

  absl::StatusOr<v1::KeyInfo> Revoke(std::string_view name) override {
    const std::shared_ptr<const Policy> snapshot = policy_.Current();
    for (const v1::ApiKey& configured : snapshot->config().keys()) {
      if (configured.name() == name) {
        return absl::FailedPreconditionError(
            absl::StrCat("key \"", ToAbsl(name),
                         "\" comes from the configuration file: remove it there and reload"));
      }
    }
    absl::MutexLock write(&write_mu_);
    std::string hash;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = by_name_.find(std::string(name));
      if (it == by_name_.end()) {
        return absl::NotFoundError(absl::StrCat("no key named \"", ToAbsl(name), "\""));
      }
      hash = it->second;
      if (by_hash_.at(hash).revoked) return InfoOf(by_hash_.at(hash));
    }
    if (file_) FLOWORK_RETURN_IF_ERROR(file_->MarkRevoked(std::string(name), clock_.Now()));
    absl::MutexLock lock(&mu_);
    CreatedKey& created = by_hash_.at(hash);
    created.revoked = true;
    return InfoOf(created);
  }

  std::vector<v1::KeyInfo> List() const override {
    std::vector<v1::KeyInfo> keys;
    const std::shared_ptr<const Policy> snapshot = policy_.Current();
    for (const v1::ApiKey& configured : snapshot->config().keys()) {
      keys.push_back(InfoOf(configured, "config"));
    }
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, hash] : by_name_) keys.push_back(InfoOf(by_hash_.at(hash)));
    return keys;
  }

 private:
  static absl::Status CheckRequest(const v1::CreateKeyRequest& request,
                                   const v1::RouterConfig& config) {
    if (request.name().empty()) return absl::InvalidArgumentError("name: required");
    if (request.name().size() > 128) {
      return absl::InvalidArgumentError("name: longer than 128 characters");
    }
    for (int i = 0; i < request.allow_size(); ++i) {
      const std::string& name = request.allow(i);
      const bool known = std::any_of(config.models().begin(), config.models().end(),
                                     [&](const v1::Model& m) { return m.name() == name; }) ||
                         std::any_of(config.routes().begin(), config.routes().end(),
                                     [&](const v1::Route& r) { return r.name() == name; });
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat("allow[", i, "]: unknown model or route \"", name, "\""));
      }
    }
    if (request.has_ttl() && TimeUtil::DurationToNanoseconds(request.ttl()) <= 0) {
      return absl::InvalidArgumentError("ttl: must be positive (leave it unset for no expiry)");
    }
    return absl::OkStatus();
  }

  const PolicyEngine& policy_;
  const core::Clock& clock_;
  absl::Mutex write_mu_;                 // Serialises Create and Revoke.
  const std::unique_ptr<KeyFile> file_;  // Null: in memory only.
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(write_mu_);
  absl::flat_hash_map<std::string, CreatedKey> by_hash_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_name_ ABSL_GUARDED_BY(mu_);  // name -> sha256.
};

}  // namespace

absl::StatusOr<std::unique_ptr<KeyStore>> KeyStore::Open(const KeyStoreOptions& options,
                                                         const PolicyEngine& policy) {
  std::unique_ptr<KeyFile> file;
  std::vector<CreatedKey> keys;
  if (!options.path.empty()) {
    FLOWORK_ASSIGN_OR_RETURN(file, KeyFile::Open(options.path));
    FLOWORK_RETURN_IF_ERROR(file->Load(keys));
  }
  auto store = std::make_unique<KeyStoreImpl>(
      policy, options.clock ? *options.clock : core::Clock::Real(), std::move(file));
  store->Adopt(std::move(keys));
  return store;
}

}  // namespace flowork::router
