// Private to libflowork_agent: the checks and text handling every MemoryStore
// implementation shares, so they all accept, reject and search alike.
#ifndef FLOWORK_AGENT_SRC_MEMORY_MEMORY_COMMON_H_
#define FLOWORK_AGENT_SRC_MEMORY_MEMORY_COMMON_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "flowork/agent/memory_store.h"

namespace flowork::agent::internal {

// Only this many distinct query words are searched for.
inline constexpr size_t kMaxQueryWords = 64;

bool IsUtf8(std::string_view text);

absl::Status ValidateScope(const MemoryScope& scope);
absl::Status ValidateMemory(std::string_view text, const std::map<std::string, std::string>& tags);
// kInvalidArgument "limit: N is outside [1, max]".
absl::Status ValidateLimit(int limit, int max);

// The distinct words of `text` in order of first appearance, at most
// `max_words`: runs of ASCII letters and digits, lower-cased, or of bytes of
// non-ASCII characters. Every other ASCII character separates words, so no
// word holds a quote, an operator or a parenthesis.
std::vector<std::string> Words(std::string_view text, size_t max_words);

// An FTS5 MATCH expression that finds rows holding any of `words`, each
// quoted as a string so FTS5 reads it as text, never as syntax ("AND" is the
// word "and", `"` is doubled). Empty for no words.
std::string Fts5AnyOf(const std::vector<std::string>& words);

// Memory ids: "m", 14 hex digits of a microsecond stamp that increases with
// every id, and 8 random hex digits, so ids sort in the order memories were
// stored and stay unique across processes sharing a database.
// Thread-compatible.
class MemoryIdGenerator {
 public:
  std::string Next(absl::Time now);
  // Makes later ids sort after `id`, an id read back from storage.
  void Observe(std::string_view id);

 private:
  int64_t last_micros_ = 0;
  absl::BitGen random_;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_MEMORY_MEMORY_COMMON_H_
