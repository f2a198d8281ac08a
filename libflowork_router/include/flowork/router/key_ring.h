#ifndef FLOWORK_ROUTER_KEY_RING_H_
#define FLOWORK_ROUTER_KEY_RING_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// The client API keys of one configuration, found by the SHA-256 of the key
// a caller presents; the keys themselves are never stored. Immutable after
// construction; thread-safe.
class KeyRing {
 public:
  // Points into `config`, which must outlive the ring.
  explicit KeyRing(const v1::RouterConfig& config);

  // The caller's key, from `Authorization: Bearer <key>` (OpenAI clients) or
  // `x-api-key: <key>` (Anthropic clients); pass "" for a header that is
  // absent. With `auth: {mode: none}` every caller is anonymous: OK with
  // null. kUnauthenticated when no key was presented or it is unknown.
  absl::StatusOr<const v1::ApiKey*> Identify(std::string_view authorization,
                                             std::string_view x_api_key) const;

  // OK when `key` (null: anonymous) may use the model or route `name`;
  // kPermissionDenied naming both otherwise.
  static absl::Status CheckAllowed(const v1::ApiKey* key, std::string_view name);

  // Lower-case hex SHA-256 of `key`, as `keys[].sha256` holds it.
  static std::string Sha256Hex(std::string_view key);

  // The key a caller presents: `x_api_key`, else what follows "Bearer " in
  // `authorization`; "" when neither holds one. Points into the arguments.
  static std::string_view PresentedKey(std::string_view authorization, std::string_view x_api_key);

  // The configured key whose SHA-256 is `sha256_hex`, or null.
  const v1::ApiKey* FindBySha256(const std::string& sha256_hex) const;

  // Whether the configuration says `auth: {mode: none}`.
  bool open() const { return open_; }

 private:
  bool open_ = false;  // auth mode none.
  absl::flat_hash_map<std::string, const v1::ApiKey*> by_hash_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_KEY_RING_H_
