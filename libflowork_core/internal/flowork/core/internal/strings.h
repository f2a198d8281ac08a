// Private to Flowork's own sources; never installed.
#ifndef FLOWORK_CORE_INTERNAL_STRINGS_H_
#define FLOWORK_CORE_INTERNAL_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace flowork::core::internal {

// Debian's Abseil is built with its own absl::string_view rather than
// std::string_view; these bridge the two without copying.
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }

// ASCII `c` in lower case.
inline char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

// `s` equals `lower` (lower case) ignoring ASCII case. Inline, unlike
// absl::EqualsIgnoreCase (out of line in Debian's shared Abseil): HTTP field
// names are compared a few times per field, and the call cost about 250
// instructions per proxied request (callgrind).
inline bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (LowerAscii(s[i]) != lower[i]) return false;
  }
  return true;
}

// `s` starts with `lower_prefix` (lower case), ignoring ASCII case.
inline bool StartsWithLower(std::string_view s, std::string_view lower_prefix) {
  return s.size() >= lower_prefix.size() &&
         EqualsLower(s.substr(0, lower_prefix.size()), lower_prefix);
}

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_STRINGS_H_
