#ifndef FLOWORK_ROUTER_KEY_STORE_H_
#define FLOWORK_ROUTER_KEY_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/core/clock.h"
#include "flowork/router/policy.h"
#include "flowork/router/v1/admin.pb.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Options of a KeyStore. Every field documents its default.
struct KeyStoreOptions {
  // SQLite file holding the keys created through the admin API (their
  // SHA-256 and metadata, never the keys). Created when missing. "" keeps
  // them in memory only: they are gone when the store is destroyed.
  std::string path;
  // Stamps creation and decides expiry. Default: the real clock.
  const core::Clock* clock = nullptr;
};

// The client API keys in force: those of the running configuration (read
// from the policy engine's current snapshot, so they follow every reload)
// plus those created through the admin API, which persist in `path`. Names
// are unique across both. A key is only ever held as its SHA-256; the
// plaintext of a created key is returned once, by Create. Thread-safe;
// Identify takes one hash and a reader lock, never disk.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Opens (or creates) the store. `policy` is not owned and must outlive the
  // store.
  static absl::StatusOr<std::unique_ptr<KeyStore>> Open(const KeyStoreOptions& options,
                                                        const PolicyEngine& policy);

  // The caller's key, from `Authorization: Bearer <key>` or `x-api-key:
  // <key>` (pass "" for an absent header). With `auth: {mode: none}`: OK with
  // null. kUnauthenticated when no key was presented, it is unknown, revoked
  // or expired. The key stays valid as long as the returned pointer lives.
  virtual absl::StatusOr<std::shared_ptr<const v1::ApiKey>> Identify(
      std::string_view authorization, std::string_view x_api_key) const = 0;

  // A new random key ("fk-" + 43 base64url characters). kInvalidArgument
  // for a bad request (empty name, allow naming no model or route, negative
  // ttl), kAlreadyExists when the name is taken (by a configured or created
  // key, revoked ones included). Stored before it is returned.
  virtual absl::StatusOr<v1::CreateKeyResponse> Create(const v1::CreateKeyRequest& request) = 0;

  // Revokes a created key at once; revoking it again is OK. kNotFound for an
  // unknown name; kFailedPrecondition for a key of the configuration file
  // (remove it there and reload).
  virtual absl::StatusOr<v1::KeyInfo> Revoke(std::string_view name) = 0;

  // Every key, configured ones first, then created ones (revoked and expired
  // included), each by name. No hash or plaintext.
  virtual std::vector<v1::KeyInfo> List() const = 0;

  // OK when `key` (null: anonymous) may use the model or route `name`;
  // kPermissionDenied naming both otherwise.
  static absl::Status CheckAllowed(const v1::ApiKey* key, std::string_view name) {
    return KeyRing::CheckAllowed(key, name);
  }
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_KEY_STORE_H_
