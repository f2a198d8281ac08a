// Private to Flowork's libraries: writing HTTP/1.1 heads by hand (the server's
// answers, the client's requests) into one string, sized once. Neither
// absl::StrAppend (it zero-fills and regrows the string on every call) nor
// std::string::append (a capacity check and a memcpy call per piece: about
// 1,400 instructions for a five-field answer head, callgrind).
#ifndef FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_
#define FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_

#include <cassert>
#include <charconv>
#include <cstdint>
#include <cstring>
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

// Writes a head into a string sized once for it, piece by piece through a
// pointer: no capacity check per piece, and pieces of a constant size (the
// literals) copied inline. The caller bounds the head's size up front;
// writing more than the bound is a bug (checked in debug builds).
class HeadWriter {
 public:
  // Longest decimal Decimal writes.
  static constexpr size_t kMaxDecimal = 20;

  // `out` becomes the head: `bound` bytes of room until Finish.
  HeadWriter(std::string& out, size_t bound) : out_(out) {
    out_.resize(bound);
    at_ = out_.data();
    end_ = at_ + bound;
  }
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;

  HeadWriter& Add(std::string_view piece) {
    assert(static_cast<size_t>(end_ - at_) >= piece.size());
    if (piece.empty()) return *this;  // (A null data() must not reach memcpy.)
    std::memcpy(at_, piece.data(), piece.size());
    at_ += piece.size();
    return *this;
  }
  // The line "name: value\r\n" (FieldLinesSize bytes per field).
  HeadWriter& Field(std::string_view name, std::string_view value) {
    using namespace std::string_view_literals;
    return Add(name).Add(": "sv).Add(value).Add("\r\n"sv);
  }
  // `n` in decimal (at most kMaxDecimal bytes).
  HeadWriter& Decimal(uint64_t n) {
    assert(static_cast<size_t>(end_ - at_) >= kMaxDecimal);
    at_ = std::to_chars(at_, end_, n).ptr;
    return *this;
  }
  // Cuts the string to what was written.
  void Finish() { out_.resize(static_cast<size_t>(at_ - out_.data())); }

 private:
  std::string& out_;
  char* at_;
  char* end_;
};

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_HTTP_HEAD_H_
