#include "flowork/agent/in_memory_memory_store.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "memory/memory_common.h"
#include "store/task_txn.h"  // ToTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;

bool Visible(const MemoryScope& scope, const v1::Memory& memory) {
  return memory.tenant() == scope.tenant &&
         (memory.agent().empty() || memory.agent() == scope.agent);
}

class InMemoryMemoryStore final : public MemoryStore {
 public:
  explicit InMemoryMemoryStore(const core::Clock& clock) : clock_(clock) {}

  absl::StatusOr<v1::Memory> Remember(const MemoryScope& scope, std::string text,
                                      std::map<std::string, std::string> tags) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateMemory(text, tags));
    Entry entry;
    const std::vector<std::string> words =
        internal::Words(text, std::numeric_limits<size_t>::max());
    entry.words.insert(words.begin(), words.end());
    entry.memory.set_tenant(scope.tenant);
    entry.memory.set_agent(scope.agent);
    entry.memory.set_text(std::move(text));
    entry.memory.mutable_tags()->insert(tags.begin(), tags.end());

    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    entry.memory.set_id(ids_.Next(now));
    *entry.memory.mutable_create_time() = internal::ToTimestamp(now);
    v1::Memory result = entry.memory;
    std::string id = result.id();
    memories_.emplace(std::move(id), std::move(entry));
    return result;
  }

  absl::StatusOr<std::vector<ScoredMemory>> Recall(const MemoryScope& scope, std::string_view query,
                                                   int limit) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxRecallLimit));
    const std::vector<std::string> words = internal::Words(query, internal::kMaxQueryWords);
    std::vector<ScoredMemory> hits;
    if (words.empty()) return hits;

    absl::MutexLock lock(&mu_);
    // Newest first, so the stable sort leaves equal scores newest first.
    for (auto it = memories_.rbegin(); it != memories_.rend(); ++it) {
      const Entry& entry = it->second;
      if (!Visible(scope, entry.memory)) continue;
      const auto found = std::count_if(words.begin(), words.end(), [&](const std::string& word) {
        return entry.words.contains(word);
      });
      if (found == 0) continue;
      hits.push_back(
          {entry.memory, static_cast<double>(found) / static_cast<double>(words.size())});
    }
    std::stable_sort(hits.begin(), hits.end(), [](const ScoredMemory& a, const ScoredMemory& b) {
      return a.score > b.score;
    });
    if (hits.size() > static_cast<size_t>(limit)) hits.resize(static_cast<size_t>(limit));
    return hits;
  }

  absl::Status Forget(const MemoryScope& scope, std::string_view id) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    absl::MutexLock lock(&mu_);
    auto it = memories_.find(id);
    if (it == memories_.end() || it->second.memory.tenant() != scope.tenant ||
        it->second.memory.agent() != scope.agent) {
      return absl::NotFoundError(absl::StrCat("memory \"", ToAbsl(id), "\" not found"));
    }
    memories_.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Memory>> List(const MemoryScope& scope, int limit,
                                               std::string_view before_id) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxListLimit));
    absl::MutexLock lock(&mu_);
    std::vector<v1::Memory> result;
    auto end = before_id.empty() ? memories_.end() : memories_.lower_bound(before_id);
    for (auto it = std::make_reverse_iterator(end);
         it != memories_.rend() && result.size() < static_cast<size_t>(limit); ++it) {
      if (Visible(scope, it->second.memory)) result.push_back(it->second.memory);
    }
    return result;
  }

 private:
  struct Entry {
    v1::Memory memory;
    absl::flat_hash_set<std::string> words;
  };

  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  // By id, so in the order memories were stored.
  std::map<std::string, Entry, std::less<>> memories_ ABSL_GUARDED_BY(mu_);
  internal::MemoryIdGenerator ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<MemoryStore> CreateInMemoryMemoryStore(const core::Clock& clock) {
  return std::make_unique<InMemoryMemoryStore>(clock);
}

}  // namespace flowork::agent
