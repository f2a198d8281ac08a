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

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_STRINGS_H_
