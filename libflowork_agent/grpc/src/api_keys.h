// Private to flowork::agent_grpc: who is calling, from the call's API key.
#ifndef FLOWORK_AGENT_GRPC_SRC_API_KEYS_H_
#define FLOWORK_AGENT_GRPC_SRC_API_KEYS_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "flowork/agent/v1/config.pb.h"
#include "grpcpp/server_context.h"

namespace flowork::agent::internal {

// The tenant of anonymous callers when the server runs without auth.
inline constexpr char kAnonymousTenant[] = "default";

// Maps a presented key ("authorization: Bearer <key>" or "x-api-key: <key>")
// to its tenant by the key's SHA-256. An immutable value; thread-safe.
class ApiKeys {
 public:
  // From the config's `auth` and `keys`. kInvalidArgument naming the field:
  // a hash that is not 64 lower-case hex digits, a key without a tenant, the
  // same hash twice, mode keys without keys.
  static absl::StatusOr<ApiKeys> Create(const v1::AgentConfig& config);

  // True when callers need no key (every one is kAnonymousTenant).
  bool anonymous() const { return anonymous_; }

  // The caller's tenant. kUnauthenticated: no key, or an unknown one.
  absl::StatusOr<std::string> Tenant(const grpc::ServerContextBase& context) const;

  // Lower-case hex SHA-256 of `key`.
  static std::string Sha256Hex(std::string_view key);

 private:
  bool anonymous_ = true;
  absl::flat_hash_map<std::string, std::string> tenant_by_hash_;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_API_KEYS_H_
