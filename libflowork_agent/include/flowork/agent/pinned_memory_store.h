#ifndef FLOWORK_AGENT_PINNED_MEMORY_STORE_H_
#define FLOWORK_AGENT_PINNED_MEMORY_STORE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/agent/context_assembler.h"
#include "flowork/agent/v1/agent.pb.h"
#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/task.pb.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// Whose pinned blocks: an agent of a tenant, and one of its sessions for
// blocks kept per session (empty: the agent's own blocks).
struct PinnedScope {
  std::string tenant;
  std::string agent;
  std::string session_id;
};

// A block's size limit when its PinnedBlockSpec gives none.
inline constexpr size_t kDefaultPinnedBlockBytes = 2048;

// One edit of a pinned block.
struct PinnedEdit {
  enum class Kind {
    kSet,      // The block becomes `text`.
    kAppend,   // `text` is added on a new line (the block's first line when empty).
    kReplace,  // The first occurrence of `old_text` becomes `text`.
  };
  // [a-z0-9_-]{1,64}.
  std::string name;
  Kind kind = Kind::kSet;
  std::string text;
  std::string old_text;
  // What the block holds before its first edit.
  std::string initial_text;
  // The edited text may not be longer, in bytes.
  size_t max_bytes = kDefaultPinnedBlockBytes;
  // Identifies the edit ("<task id>/<call id>"): when the block's last edit
  // has this key the edit is not applied again (a tool call performed again
  // after a crash). Empty: always applied.
  std::string edit_key;
};

// The edited text of a block holding `current`. kInvalidArgument, naming the
// block, when the result exceeds max_bytes (saying by how much), `old_text`
// is empty or not found, or the text is not UTF-8. Pure.
absl::StatusOr<std::string> ApplyPinnedEdit(std::string_view current, const PinnedEdit& edit);

// Pinned memory blocks: small named texts an agent keeps always in its
// context (a persona, facts about the user, the plan), edited by the agent
// through tools. Thread-safe; an error leaves stored state as it was.
class PinnedMemoryStore {
 public:
  virtual ~PinnedMemoryStore() = default;

  // The blocks written in exactly `scope`, by name. kInvalidArgument: a
  // tenant or agent over 256 bytes.
  virtual absl::StatusOr<std::vector<v1::PinnedBlock>> List(const PinnedScope& scope) const = 0;

  // Applies `edit` (see ApplyPinnedEdit) atomically and returns the block as
  // stored. Errors of ApplyPinnedEdit, and kInvalidArgument for a bad name
  // or scope.
  virtual absl::StatusOr<v1::PinnedBlock> Edit(const PinnedScope& scope,
                                               const PinnedEdit& edit) = 0;
};

// The pinned blocks `spec` declares for `task`, in the spec's order, with
// their stored text (or initial_text before the first edit), as context
// sections. Blocks with per_session are read in the task's session's scope
// (and left out for a task without a session). Errors are the store's.
absl::StatusOr<std::vector<MemoryBlock>> LoadPinnedBlocks(const PinnedMemoryStore& store,
                                                          const v1::MemorySpec& spec,
                                                          const v1::Task& task);

// A PinnedMemoryStore in memory, for tests and single-process use.
// `clock` must outlive the store.
std::unique_ptr<PinnedMemoryStore> CreateInMemoryPinnedMemoryStore(
    const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_PINNED_MEMORY_STORE_H_
