// Private to Flowork's libraries: writing HTTP/1.1 heads by hand (the server's
// answers, the client's requests) into one string, sized once. absl::StrAppend
// is not used here: without libc++'s uninitialized resize it zero-fills and
// regrows the string on every call.
#ifndef FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_
#define FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowork/core/internal/strings.h"

namespace flowork::core::internal {

// Whether the writer of a head sets field `name` itself: the message framing
// and the connection's fate are never taken from the caller's fields.
inline bool IsFramingField(std::string_view name) {
  switch (name.size()) {  // Most names are none of these lengths.
    case 10:
      return EqualsLower(name, "connection");
    case 14:
      return EqualsLower(name, "content-length");
    case 17:
      return EqualsLower(name, "transfer-encoding");
    default:
      return false;
  }
}

// Bytes `fields` take written as "name: value\r\n" lines.
inline size_t FieldLinesSize(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t size = 0;
  for (const auto& [name, value] : fields) size += name.size() + value.size() + 4;
  return size;
}

// Appends the line "name: value\r\n".
inline void AppendField(std::string& head, std::string_view name, std::string_view value) {
  head.append(name).append(": ", 2).append(value).append("\r\n", 2);
}

// Appends `n` in decimal.
inline void AppendDecimal(std::string& head, uint64_t n) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof(digits), n).ptr;
  head.append(digits, static_cast<size_t>(end - digits));
}

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_
