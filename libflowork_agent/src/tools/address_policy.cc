#include "tools/address_policy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent::tools {
namespace {

struct V4Range {
  uint32_t base;
  int bits;
  const char* kind;
};

constexpr uint32_t Ip4(int a, int b, int c, int d) {
  return (static_cast<uint32_t>(a) << 24) | (static_cast<uint32_t>(b) << 16) |
         (static_cast<uint32_t>(c) << 8) | static_cast<uint32_t>(d);
}

constexpr std::array<V4Range, 16> kNonPublicV4 = {{
    {Ip4(0, 0, 0, 0), 8, "unspecified (0.0.0.0/8)"},
    {Ip4(10, 0, 0, 0), 8, "private"},
    {Ip4(100, 64, 0, 0), 10, "carrier-grade NAT"},
    {Ip4(127, 0, 0, 0), 8, "loopback"},
    {Ip4(169, 254, 0, 0), 16, "link-local (cloud metadata)"},
    {Ip4(172, 16, 0, 0), 12, "private"},
    {Ip4(192, 0, 0, 0), 24, "IETF protocol assignments"},
    {Ip4(192, 0, 2, 0), 24, "documentation"},
    {Ip4(192, 88, 99, 0), 24, "6to4 relay"},
    {Ip4(192, 168, 0, 0), 16, "private"},
    {Ip4(198, 18, 0, 0), 15, "benchmarking"},
    {Ip4(198, 51, 100, 0), 24, "documentation"},
    {Ip4(203, 0, 113, 0), 24, "documentation"},
    {Ip4(224, 0, 0, 0), 4, "multicast"},
    {Ip4(240, 0, 0, 0), 4, "reserved"},
    {Ip4(255, 255, 255, 255), 32, "broadcast"},
}};

std::optional<std::string> V4Kind(uint32_t ip) {
  for (const V4Range& range : kNonPublicV4) {
    const uint32_t mask = range.bits == 0 ? 0 : ~uint32_t{0} << (32 - range.bits);
    if ((ip & mask) == range.base) return std::string(range.kind);
  }
  return std::nullopt;
}

uint32_t V4At(const uint8_t* bytes) { return Ip4(bytes[0], bytes[1], bytes[2], bytes[3]); }

bool HasPrefix(const uint8_t* bytes, std::initializer_list<uint8_t> prefix, int bits) {
  int i = 0;
  for (uint8_t want : prefix) {
    const int left = bits - 8 * i;
    if (left <= 0) break;
    const uint8_t mask = left >= 8 ? 0xFF : static_cast<uint8_t>(0xFF << (8 - left));
    if ((bytes[i] & mask) != (want & mask)) return false;
    ++i;
  }
  return true;
}

std::optional<std::string> V6Kind(const uint8_t* b) {
  static constexpr uint8_t kZero[16] = {};
  if (std::memcmp(b, kZero, 16) == 0) return "unspecified (::)";
  if (std::memcmp(b, kZero, 15) == 0 && b[15] == 1) return "loopback";
  // ::ffff:a.b.c.d (mapped) and 64:ff9b::a.b.c.d (NAT64) reach an IPv4 host.
  if (std::memcmp(b, kZero, 10) == 0 && b[10] == 0xFF && b[11] == 0xFF) {
    if (auto kind = V4Kind(V4At(b + 12))) return absl::StrCat("IPv4-mapped ", *kind);
    return std::nullopt;
  }
  if (HasPrefix(b, {0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0}, 96)) {
    if (auto kind = V4Kind(V4At(b + 12))) return absl::StrCat("NAT64 ", *kind);
    return std::nullopt;
  }
  if (HasPrefix(b, {0x20, 0x02}, 16)) {
    if (auto kind = V4Kind(V4At(b + 2))) return absl::StrCat("6to4 ", *kind);
    return std::nullopt;
  }
  if (std::memcmp(b, kZero, 12) == 0) return "IPv4-compatible (deprecated)";
  if (HasPrefix(b, {0x00, 0x64, 0xFF, 0x9B, 0x00, 0x01}, 48)) return "local NAT64";
  if (HasPrefix(b, {0x01, 0x00, 0, 0, 0, 0, 0, 0}, 64)) return "discard";
  if (HasPrefix(b, {0x20, 0x01, 0x0D, 0xB8}, 32)) return "documentation";
  if (HasPrefix(b, {0x20, 0x01, 0x00, 0x00}, 32)) return "Teredo";
  if (HasPrefix(b, {0xFC}, 7)) return "unique-local";
  if (HasPrefix(b, {0xFE, 0x80}, 10)) return "link-local";
  if (HasPrefix(b, {0xFE, 0xC0}, 10)) return "site-local";
  if (HasPrefix(b, {0xFF}, 8)) return "multicast";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> NonPublicAddressKind(std::string_view ip) {
  const std::string text(ip);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return V4Kind(ntohl(v4.s_addr));
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return V6Kind(v6.s6_addr);
  return "not an IP address";
}

bool HostMatches(std::string_view host_text, std::string_view pattern_text) {
  const absl::string_view host = core::internal::ToAbsl(host_text);
  const absl::string_view pattern = core::internal::ToAbsl(pattern_text);
  if (absl::StartsWith(pattern, "*.")) {
    const absl::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && absl::EndsWithIgnoreCase(host, suffix);
  }
  return absl::EqualsIgnoreCase(host, pattern);
}

absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("host \"", host, "\" does not resolve: ", gai_strerror(rc)));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = nullptr;
    if (a->ai_family == AF_INET) {
      raw = &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
    } else if (a->ai_family == AF_INET6) {
      raw = &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(a->ai_family, raw, text, sizeof(text)) == nullptr) continue;
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  freeaddrinfo(found);
  if (addresses.empty()) {
    return absl::UnavailableError(absl::StrCat("host \"", host, "\" has no IP address"));
  }
  return addresses;
}

}  // namespace flowork::agent::tools
