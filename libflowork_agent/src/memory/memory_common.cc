#include "memory/memory_common.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent::internal {
namespace {

using core::internal::ToAbsl;

constexpr size_t kIdStampDigits = 14;

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

absl::Status CheckScopeField(std::string_view name, std::string_view value) {
  if (value.size() > kMaxMemoryScopeBytes) {
    return absl::InvalidArgumentError(absl::StrCat("scope.", ToAbsl(name), ": ", value.size(),
                                                   " bytes, more than ", kMaxMemoryScopeBytes));
  }
  if (!IsUtf8(value)) {
    return absl::InvalidArgumentError(absl::StrCat("scope.", ToAbsl(name), ": not UTF-8"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if (!IsContinuation(byte)) return false;
      code = (code << 6) | (byte & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((length == 2 && code < 0x80) || (length == 3 && code < 0x800) ||
        (length == 4 && code < 0x10000) || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

absl::Status ValidateScope(const MemoryScope& scope) {
  if (absl::Status status = CheckScopeField("tenant", scope.tenant); !status.ok()) return status;
  return CheckScopeField("agent", scope.agent);
}

absl::Status ValidateMemory(std::string_view text, const std::map<std::string, std::string>& tags) {
  if (absl::StripAsciiWhitespace(ToAbsl(text)).empty()) {
    return absl::InvalidArgumentError("text: empty");
  }
  if (text.size() > kMaxMemoryTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text: ", text.size(), " bytes, more than the limit of ", kMaxMemoryTextBytes));
  }
  if (!IsUtf8(text)) return absl::InvalidArgumentError("text: not UTF-8");
  size_t tag_bytes = 0;
  for (const auto& [key, value] : tags) {
    if (key.empty()) return absl::InvalidArgumentError("tags: a tag has an empty key");
    if (!IsUtf8(key)) return absl::InvalidArgumentError("tags: a key is not UTF-8");
    if (!IsUtf8(value)) {
      return absl::InvalidArgumentError(absl::StrCat("tags[\"", key, "\"]: not UTF-8"));
    }
    tag_bytes += key.size() + value.size();
  }
  if (tag_bytes > kMaxMemoryTagBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tags: ", tag_bytes, " bytes, more than the limit of ", kMaxMemoryTagBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateLimit(int limit, int max) {
  if (limit < 1 || limit > max) {
    return absl::InvalidArgumentError(absl::StrCat("limit: ", limit, " is outside [1, ", max, "]"));
  }
  return absl::OkStatus();
}

std::vector<std::string> Words(std::string_view text, size_t max_words) {
  std::vector<std::string> words;
  absl::flat_hash_set<std::string> seen;
  std::string word;
  auto flush = [&] {
    if (!word.empty() && words.size() < max_words && seen.insert(word).second) {
      words.push_back(word);
    }
    word.clear();
  };
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80 || absl::ascii_isalnum(byte)) {
      word.push_back(absl::ascii_tolower(byte));
    } else {
      flush();
      if (words.size() >= max_words) return words;
    }
  }
  flush();
  return words;
}

std::string Fts5AnyOf(const std::vector<std::string>& words) {
  std::string query;
  for (const std::string& word : words) {
    if (!query.empty()) query += " OR ";
    query += '"';
    for (const char c : word) {
      if (c == '"') query += '"';
      query += c;
    }
    query += '"';
  }
  return query;
}

std::string MemoryIdGenerator::Next(absl::Time now) {
  last_micros_ = std::max(absl::ToUnixMicros(now), last_micros_ + 1);
  return absl::StrFormat("m%014x%08x", static_cast<uint64_t>(last_micros_),
                         absl::Uniform<uint32_t>(random_));
}

void MemoryIdGenerator::Observe(std::string_view id) {
  uint64_t micros = 0;
  if (id.size() < 1 + kIdStampDigits || id[0] != 'm' ||
      !absl::SimpleHexAtoi(ToAbsl(id.substr(1, kIdStampDigits)), &micros)) {
    return;
  }
  last_micros_ = std::max(last_micros_, static_cast<int64_t>(micros));
}

}  // namespace flowork::agent::internal
