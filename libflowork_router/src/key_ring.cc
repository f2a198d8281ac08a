#include "flowork/router/key_ring.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::router {

using core::internal::ToAbsl;

KeyRing::KeyRing(const v1::RouterConfig& config)
    : open_(config.auth().mode() == v1::AuthConfig::MODE_NONE) {
  for (const v1::ApiKey& key : config.keys()) by_hash_[key.sha256()] = &key;
}

std::string KeyRing::Sha256Hex(std::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  std::string hex;
  hex.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char byte : digest) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return hex;
}

std::string_view KeyRing::PresentedKey(std::string_view authorization, std::string_view x_api_key) {
  std::string_view presented = x_api_key;
  if (presented.empty() && absl::StartsWithIgnoreCase(ToAbsl(authorization), "bearer ")) {
    presented = authorization.substr(7);
  }
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  return presented;
}

const v1::ApiKey* KeyRing::FindBySha256(const std::string& sha256_hex) const {
  auto it = by_hash_.find(sha256_hex);
  return it == by_hash_.end() ? nullptr : it->second;
}

absl::StatusOr<const v1::ApiKey*> KeyRing::Identify(std::string_view authorization,
                                                    std::string_view x_api_key) const {
  if (open_) return nullptr;
  const std::string_view presented = PresentedKey(authorization, x_api_key);
  if (presented.empty()) {
    return absl::UnauthenticatedError(
        "no API key: send it as \"Authorization: Bearer <key>\" or \"x-api-key: <key>\"");
  }
  auto it = by_hash_.find(Sha256Hex(presented));
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown API key");
  return it->second;
}

absl::Status KeyRing::CheckAllowed(const v1::ApiKey* key, std::string_view name) {
  if (key == nullptr || key->allow().empty()) return absl::OkStatus();
  if (std::find(key->allow().begin(), key->allow().end(), name) != key->allow().end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("key ", key->name(), " may not use `", ToAbsl(name), "`"));
}

}  // namespace flowork::router
