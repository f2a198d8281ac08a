// Private: hashes that are the same in every process and on every run (unlike
// absl::Hash, which is seeded per process), so plans are reproducible.
#ifndef FLOWORK_ROUTER_SRC_POLICY_STABLE_HASH_H_
#define FLOWORK_ROUTER_SRC_POLICY_STABLE_HASH_H_

#include <cstdint>
#include <string_view>

namespace flowork::router {

// SplitMix64's finaliser: a strong 64-bit mix.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes, then mixed.
inline uint64_t StableHash(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return Mix64(h);
}

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_SRC_POLICY_STABLE_HASH_H_
