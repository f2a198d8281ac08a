// The in-memory SessionStore, and LoadSessionHistory for every store.

#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/session_store.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "memory/memory_common.h"
#include "session/session_common.h"
#include "store/task_txn.h"  // ToTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;

absl::Status NotFound(std::string_view id) {
  return absl::NotFoundError(absl::StrCat("session \"", ToAbsl(id), "\" not found"));
}

class InMemorySessionStore final : public SessionStore {
 public:
  explicit InMemorySessionStore(const core::Clock& clock) : clock_(clock) {}

  absl::StatusOr<v1::Session> Create(v1::Session session) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateNewSession(session));
    absl::MutexLock lock(&mu_);
    if (session.id().empty()) {
      do {
        session.set_id(internal::NewSessionId());
      } while (sessions_.count(session.id()) > 0);
    } else if (sessions_.count(session.id()) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("session \"", session.id(), "\" exists"));
    }
    *session.mutable_create_time() = internal::ToTimestamp(clock_.Now());
    *session.mutable_update_time() = session.create_time();
    session.set_message_count(0);
    Entry& entry = sessions_[session.id()];
    entry.order = next_order_++;
    entry.session = session;
    return session;
  }

  absl::StatusOr<v1::Session> Get(std::string_view id) const override {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) return NotFound(id);
    return it->second.session;
  }

  absl::StatusOr<std::vector<v1::Session>> List(std::string_view tenant, std::string_view agent,
                                                int limit,
                                                std::string_view after_id) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxSessionListLimit));
    absl::MutexLock lock(&mu_);
    uint64_t after = 0;
    if (!after_id.empty()) {
      if (auto it = sessions_.find(std::string(after_id)); it != sessions_.end()) {
        after = it->second.order + 1;
      }
    }
    std::map<uint64_t, const v1::Session*> ordered;
    for (const auto& [id, entry] : sessions_) {
      if (entry.order < after || entry.session.tenant() != tenant) continue;
      if (!agent.empty() && entry.session.agent() != agent) continue;
      ordered[entry.order] = &entry.session;
    }
    std::vector<v1::Session> out;
    for (const auto& [order, session] : ordered) {
      if (static_cast<int>(out.size()) == limit) break;
      out.push_back(*session);
    }
    return out;
  }

  absl::StatusOr<bool> Append(std::string_view id, const SessionAppend& append) override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateAppend(append));
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) return NotFound(id);
    Entry& entry = it->second;
    const bool keyed = !append.task_id.empty() || append.step_seq != 0;
    const std::string key = absl::StrCat(append.task_id, "/", append.step_seq);
    if (keyed && entry.applied.contains(key)) return false;
    const absl::Time now = clock_.Now();
    for (const v1::ChatMessage& message : append.messages) {
      v1::SessionMessage& stored = entry.messages.emplace_back();
      stored.set_seq(entry.messages.size());
      *stored.mutable_message() = message;
      stored.set_task_id(append.task_id);
      stored.set_step_seq(append.step_seq);
      *stored.mutable_create_time() = internal::ToTimestamp(now);
    }
    v1::Session& session = entry.session;
    session.set_message_count(entry.messages.size());
    if (internal::SummaryMovesForward(append, !session.summary().empty(),
                                      session.summarized_through(), session.message_count())) {
      session.set_summary(append.summary);
      session.set_summarized_through(append.summarized_through);
    }
    *session.mutable_update_time() = internal::ToTimestamp(now);
    if (keyed) entry.applied.insert(key);
    return true;
  }

  absl::StatusOr<std::vector<v1::SessionMessage>> ListMessages(std::string_view id,
                                                               uint64_t after_seq,
                                                               int limit) const override {
    FLOWORK_RETURN_IF_ERROR(internal::ValidateLimit(limit, kMaxSessionMessagesLimit));
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) return NotFound(id);
    std::vector<v1::SessionMessage> out;
    const std::vector<v1::SessionMessage>& all = it->second.messages;
    for (size_t i = after_seq; i < all.size() && static_cast<int>(out.size()) < limit; ++i) {
      out.push_back(all[i]);
    }
    return out;
  }

 private:
  struct Entry {
    uint64_t order = 0;
    v1::Session session;
    std::vector<v1::SessionMessage> messages;
    absl::flat_hash_set<std::string> applied;
  };
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

std::unique_ptr<SessionStore> CreateInMemorySessionStore(const core::Clock& clock) {
  return std::make_unique<InMemorySessionStore>(clock);
}

absl::StatusOr<v1::Session> LoadSessionHistory(const SessionStore& store, std::string_view id,
                                               std::string_view exclude_task_id) {
  FLOWORK_ASSIGN_OR_RETURN(v1::Session session, store.Get(id));
  uint64_t after = 0;
  // Index in the full list of the first message left out, if any.
  std::optional<uint64_t> first_left_out;
  uint64_t index = 0;
  while (true) {
    FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::SessionMessage> page,
                             store.ListMessages(id, after, kMaxSessionMessagesLimit));
    if (page.empty()) break;
    for (v1::SessionMessage& message : page) {
      after = message.seq();
      if (!exclude_task_id.empty() && message.task_id() == exclude_task_id) {
        if (!first_left_out) first_left_out = index;
      } else {
        *session.add_messages() = std::move(*message.mutable_message());
      }
      ++index;
    }
  }
  if (first_left_out && !session.summary().empty() &&
      session.summarized_through() >= *first_left_out) {
    session.clear_summary();
    session.clear_summarized_through();
  }
  if (!session.summary().empty() &&
      session.summarized_through() >= static_cast<uint64_t>(session.messages_size())) {
    session.clear_summary();
    session.clear_summarized_through();
  }
  return session;
}

}  // namespace flowork::agent
