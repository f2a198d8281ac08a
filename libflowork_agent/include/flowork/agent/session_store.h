#ifndef FLOWORK_AGENT_SESSION_STORE_H_
#define FLOWORK_AGENT_SESSION_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/agent/v1/context.pb.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// Limits every SessionStore enforces.
inline constexpr size_t kMaxSessionIdBytes = 128;
inline constexpr size_t kMaxSessionScopeBytes = 256;
inline constexpr int kMaxSessionListLimit = 1000;
inline constexpr int kMaxSessionMessagesLimit = 1000;

// What one finished task adds to its session, applied at most once per
// (task_id, step_seq) however often it is asked for (a task resumed after a
// crash asks again).
struct SessionAppend {
  // The task and the journal step (its finish step) that append. Both empty
  // and 0: an append from outside any task, never deduplicated.
  std::string task_id;
  uint64_t step_seq = 0;
  // Appended in order, each getting the next seq.
  std::vector<v1::ChatMessage> messages;
  // When not empty: becomes the session's summary of its messages
  // [0, summarized_through] (indices after this append), if that moves the
  // summary boundary forward; otherwise ignored.
  std::string summary;
  uint64_t summarized_through = 0;
};

// Sessions (conversations) of agents, which outlive the tasks that continue
// them. A session belongs to one tenant and one agent. Messages are only ever
// appended. Thread-safe. Every error names the offending field; an error
// leaves stored state as it was.
class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Stores a new session of `session.tenant` and `session.agent` (labels
  // kept) and returns it with create_time and update_time set. The store
  // assigns `id` when it is empty. kInvalidArgument: an id that is not
  // [A-Za-z0-9_.-]{1,128}, a tenant or agent over kMaxSessionScopeBytes, an
  // empty agent, messages or a summary given. kAlreadyExists: the id is taken.
  virtual absl::StatusOr<v1::Session> Create(v1::Session session) = 0;

  // The session without its messages (`message_count` says how many).
  // kNotFound: no session `id`.
  virtual absl::StatusOr<v1::Session> Get(std::string_view id) const = 0;

  // The sessions of `tenant` (and of `agent` when it is not empty), oldest
  // first, without messages, at most `limit`; to page, pass the last id of the
  // previous page as `after_id`. kInvalidArgument: `limit` outside
  // [1, kMaxSessionListLimit].
  virtual absl::StatusOr<std::vector<v1::Session>> List(std::string_view tenant,
                                                        std::string_view agent, int limit = 100,
                                                        std::string_view after_id = {}) const = 0;

  // Appends atomically (all of it or nothing). Returns true when applied,
  // false when this (task_id, step_seq) was applied before (nothing changes).
  // kNotFound: no session `id`. kInvalidArgument: a message whose role is not
  // system, user, assistant or tool.
  virtual absl::StatusOr<bool> Append(std::string_view id, const SessionAppend& append) = 0;

  // The messages with seq > `after_seq`, oldest first, at most `limit`.
  // kNotFound: no session `id`. kInvalidArgument: `limit` outside
  // [1, kMaxSessionMessagesLimit].
  virtual absl::StatusOr<std::vector<v1::SessionMessage>> ListMessages(std::string_view id,
                                                                       uint64_t after_seq = 0,
                                                                       int limit = 100) const = 0;
};

// The session with every message (paged through ListMessages) in
// `Session.messages` and its summary, leaving out the messages appended by
// task `exclude_task_id` (when not empty), so a resumed task sees the
// history as it was before its own turn. A summary is dropped when it covers
// a left-out message. Errors are the store's.
absl::StatusOr<v1::Session> LoadSessionHistory(const SessionStore& store, std::string_view id,
                                               std::string_view exclude_task_id = {});

// A SessionStore in memory, for tests and single-process use; lost with the
// process. `clock` stamps times and must outlive the store.
std::unique_ptr<SessionStore> CreateInMemorySessionStore(
    const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_SESSION_STORE_H_
