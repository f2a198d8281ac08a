// Pinned block edits, the in-memory PinnedMemoryStore, and LoadPinnedBlocks.

#include "flowork/agent/pinned_memory_store.h"

#include <map>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "memory/memory_common.h"
#include "session/session_common.h"
#include "store/task_txn.h"  // ToTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;

class InMemoryPinnedMemoryStore final : public PinnedMemoryStore {
 public:
  explicit InMemoryPinnedMemoryStore(const core::Clock& clock) : clock_(clock) {}

  absl::StatusOr<std::vector<v1::PinnedBlock>> List(const PinnedScope& scope) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedScope(scope));
    absl::MutexLock lock(&mu_);
    std::vector<v1::PinnedBlock> out;
    for (auto it = blocks_.lower_bound(Key(scope, "")); it != blocks_.end(); ++it) {
      const auto& [tenant, agent, session, name] = it->first;
      if (tenant != scope.tenant || agent != scope.agent || session != scope.session_id) break;
      out.push_back(it->second);
    }
    return out;
  }

  absl::StatusOr<v1::PinnedBlock> Edit(const PinnedScope& scope, const PinnedEdit& edit) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedScope(scope));
    FLOWORK_RETURN_IF_ERROR(internal::ValidatePinnedName(edit.name));
    absl::MutexLock lock(&mu_);
    auto it = blocks_.find(Key(scope, edit.name));
    if (it != blocks_.end() && !edit.edit_key.empty() && it->second.last_edit() == edit.edit_key) {
      return it->second;  // Applied before.
    }
    const std::string current = it != blocks_.end() ? it->second.text() : edit.initial_text;
    FLOWORK_ASSIGN_OR_RETURN(std::string text, ApplyPinnedEdit(current, edit));
    v1::PinnedBlock& block = blocks_[Key(scope, edit.name)];
    block.set_tenant(scope.tenant);
    block.set_agent(scope.agent);
    block.set_session_id(scope.session_id);
    block.set_name(edit.name);
    block.set_text(std::move(text));
    block.set_last_edit(edit.edit_key);
    *block.mutable_update_time() = internal::ToTimestamp(clock_.Now());
    return block;
  }

 private:
  using BlockKey = std::tuple<std::string, std::string, std::string, std::string>;
  static BlockKey Key(const PinnedScope& scope, std::string_view name) {
    return {scope.tenant, scope.agent, scope.session_id, std::string(name)};
  }
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<BlockKey, v1::PinnedBlock> blocks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::string> ApplyPinnedEdit(std::string_view current, const PinnedEdit& edit) {
  const std::string block = absl::StrCat("block \"", edit.name, "\"");
  if (!internal::IsUtf8(edit.text) || !internal::IsUtf8(edit.old_text)) {
    return absl::InvalidArgumentError(absl::StrCat(block, ": the text is not UTF-8"));
  }
  std::string result;
  switch (edit.kind) {
    case PinnedEdit::Kind::kSet:
      result = edit.text;
      break;
    case PinnedEdit::Kind::kAppend:
      result = current.empty() ? edit.text : absl::StrCat(ToAbsl(current), "\n", edit.text);
      break;
    case PinnedEdit::Kind::kReplace: {
      if (edit.old_text.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(block, ": old_text is empty"));
      }
      const size_t at = current.find(edit.old_text);
      if (at == std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(block, ": old_text \"", edit.old_text, "\" is not in the block"));
      }
      result = absl::StrCat(ToAbsl(current.substr(0, at)), edit.text,
                            ToAbsl(current.substr(at + edit.old_text.size())));
      break;
    }
  }
  if (result.size() > edit.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        block, ": the edited text would be ", result.size(), " bytes, over the block's limit of ",
        edit.max_bytes, " by ", result.size() - edit.max_bytes,
        "; shorten it (memory_pin_set or memory_pin_replace) and try again"));
  }
  return result;
}

absl::StatusOr<std::vector<MemoryBlock>> LoadPinnedBlocks(const PinnedMemoryStore& store,
                                                          const v1::MemorySpec& spec,
                                                          const v1::Task& task) {
  std::vector<MemoryBlock> out;
  if (spec.pinned_blocks_size() == 0) return out;
  std::map<std::string, std::string> agent_blocks, session_blocks;
  PinnedScope scope{.tenant = task.tenant(), .agent = task.agent()};
  FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::PinnedBlock> stored, store.List(scope));
  for (v1::PinnedBlock& b : stored) agent_blocks[b.name()] = std::move(*b.mutable_text());
  if (!task.session_id().empty()) {
    scope.session_id = task.session_id();
    FLOWORK_ASSIGN_OR_RETURN(stored, store.List(scope));
    for (v1::PinnedBlock& b : stored) session_blocks[b.name()] = std::move(*b.mutable_text());
  }
  for (const v1::PinnedBlockSpec& block : spec.pinned_blocks()) {
    if (block.per_session() && task.session_id().empty()) continue;
    const auto& from = block.per_session() ? session_blocks : agent_blocks;
    auto it = from.find(block.name());
    out.push_back(MemoryBlock{.label = block.name(),
                              .content = it != from.end() ? it->second : block.initial_text()});
  }
  return out;
}

std::unique_ptr<PinnedMemoryStore> CreateInMemoryPinnedMemoryStore(const core::Clock& clock) {
  return std::make_unique<InMemoryPinnedMemoryStore>(clock);
}

}  // namespace flowork::agent
