#include "api_keys.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace flowork::agent::internal {
namespace {

bool IsLowerHexSha256(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The metadata value of `name`, or "".
std::string Metadata(const grpc::ServerContextBase& context, const char* name) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(name);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

std::string ApiKeys::Sha256Hex(std::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

absl::StatusOr<ApiKeys> ApiKeys::Create(const v1::AgentConfig& config) {
  ApiKeys keys;
  v1::ApiAuth::Mode mode = config.auth().mode();
  if (mode == v1::ApiAuth::MODE_UNSPECIFIED) {
    mode = config.keys().empty() ? v1::ApiAuth::MODE_NONE : v1::ApiAuth::MODE_KEYS;
  }
  keys.anonymous_ = mode == v1::ApiAuth::MODE_NONE;
  if (mode == v1::ApiAuth::MODE_KEYS && config.keys().empty()) {
    return absl::InvalidArgumentError("auth.mode: keys, but no keys are configured");
  }
  for (int i = 0; i < config.keys_size(); ++i) {
    const v1::ApiKey& key = config.keys(i);
    const std::string where = absl::StrCat("keys[", i, "]");
    if (!IsLowerHexSha256(key.sha256())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".sha256: must be 64 lower-case hex digits (the key's SHA-256)"));
    }
    if (key.tenant().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".tenant: required"));
    }
    if (!keys.tenant_by_hash_.emplace(key.sha256(), key.tenant()).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".sha256: the same key twice"));
    }
  }
  return keys;
}

absl::StatusOr<std::string> ApiKeys::Tenant(const grpc::ServerContextBase& context) const {
  if (anonymous_) return std::string(kAnonymousTenant);
  std::string key = Metadata(context, "authorization");
  if (!key.empty()) {
    if (!absl::StartsWithIgnoreCase(key, "bearer ")) {
      return absl::UnauthenticatedError("authorization: expected \"Bearer <API key>\"");
    }
    key = std::string(absl::StripAsciiWhitespace(key.substr(7)));
  } else {
    key = Metadata(context, "x-api-key");
  }
  if (key.empty()) {
    return absl::UnauthenticatedError(
        "an API key is required (authorization: Bearer <key>, or x-api-key)");
  }
  auto it = tenant_by_hash_.find(Sha256Hex(key));
  if (it == tenant_by_hash_.end()) return absl::UnauthenticatedError("unknown API key");
  return it->second;
}

}  // namespace flowork::agent::internal
