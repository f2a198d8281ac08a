#ifndef FLOWORK_AGENT_MEMORY_STORE_H_
#define FLOWORK_AGENT_MEMORY_STORE_H_

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/agent/v1/memory.pb.h"

namespace flowork::agent {

// Whose memories a call reads or writes.
//
// A scope with an agent owns that agent's memories and also sees the
// tenant-wide ones (those stored with an empty agent); it never sees another
// agent's. A scope with an empty agent is the tenant-wide memory itself. No
// scope ever sees a memory of another tenant. An empty tenant is a tenant like
// any other (single-tenant deployments use it).
struct MemoryScope {
  std::string tenant;
  std::string agent;
};

// One Recall hit.
struct ScoredMemory {
  v1::Memory memory;
  // Relevance to the query: greater than 0, higher is better. The scale is
  // the implementation's (see its factory) and only scores from the same
  // Recall call compare; never compare them across queries or stores.
  double score = 0;
};

// Limits every implementation enforces.
inline constexpr size_t kMaxMemoryTextBytes = 32 * 1024;
// Tag keys and values together, summed over the tags of one memory.
inline constexpr size_t kMaxMemoryTagBytes = 4 * 1024;
inline constexpr size_t kMaxMemoryScopeBytes = 256;
inline constexpr int kMaxRecallLimit = 100;
inline constexpr int kMaxListLimit = 1000;

// Long-lived memory of agents: short texts remembered by an agent (or for
// every agent of a tenant) and recalled later by a free-text query. A
// full-text store implements it today; a vector store can implement it later,
// so nothing here depends on how the texts are indexed. Thread-safe.
//
// Every error names the offending field. kInvalidArgument for bad input
// leaves stored state as it was.
class MemoryStore {
 public:
  virtual ~MemoryStore() = default;

  // Stores `text` with `tags` in `scope` and returns it as stored: the store
  // assigns `id` (URL-safe, unique, increasing in the order memories were
  // stored) and `create_time`. kInvalidArgument: text empty (or only
  // whitespace), longer than kMaxMemoryTextBytes or not UTF-8; a tag with an
  // empty key, tags over kMaxMemoryTagBytes, non-UTF-8 tags; a tenant or agent
  // over kMaxMemoryScopeBytes or not UTF-8.
  virtual absl::StatusOr<v1::Memory> Remember(const MemoryScope& scope, std::string text,
                                              std::map<std::string, std::string> tags = {}) = 0;

  // The memories visible in `scope` that match `query` best, best first
  // (equal scores: the newer first), at most `limit`. `query` is plain text,
  // any text: words in it are searched for, and characters that a search
  // syntax would treat as operators (quotes, `*`, `-`, `AND`, `NEAR(`...) are
  // searched for as text or ignored, never interpreted. A query without
  // words returns nothing. Only its first 64 distinct words count.
  // kInvalidArgument: `limit` outside [1, kMaxRecallLimit].
  virtual absl::StatusOr<std::vector<ScoredMemory>> Recall(const MemoryScope& scope,
                                                           std::string_view query,
                                                           int limit = 5) const = 0;

  // Deletes the memory `id` owned by exactly `scope`: an agent's scope cannot
  // forget tenant-wide memories, only the tenant's scope can. Once it returns,
  // Recall and List no longer find it. kNotFound: no memory `id` in `scope`
  // (another tenant's or agent's memory is not found either).
  virtual absl::Status Forget(const MemoryScope& scope, std::string_view id) = 0;

  // The memories visible in `scope`, newest first, at most `limit`. To page,
  // pass the id of the last memory of the previous page as `before_id`: only
  // memories stored before it are returned (it need not exist any more).
  // kInvalidArgument: `limit` outside [1, kMaxListLimit].
  virtual absl::StatusOr<std::vector<v1::Memory>> List(const MemoryScope& scope, int limit = 100,
                                                       std::string_view before_id = {}) const = 0;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_MEMORY_STORE_H_
