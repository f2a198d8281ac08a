// Private to libflowork_agent: checks and helpers every SessionStore and
// PinnedMemoryStore implementation shares, so they accept and reject alike.
#ifndef FLOWORK_AGENT_SRC_SESSION_SESSION_COMMON_H_
#define FLOWORK_AGENT_SRC_SESSION_SESSION_COMMON_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/session_store.h"

namespace flowork::agent::internal {

// Checks a session given to Create (id, tenant, agent, no messages).
absl::Status ValidateNewSession(const v1::Session& session);
absl::Status ValidateAppend(const SessionAppend& append);
absl::Status ValidatePinnedScope(const PinnedScope& scope);
// [a-z0-9_-]{1,64}.
absl::Status ValidatePinnedName(std::string_view name);
// A new session id: "ses_" and 16 random hex digits.
std::string NewSessionId();
// Whether `summary`/`through` of an append moves a summary boundary
// (`has_summary`, `current_through`) forward within `message_count` messages.
bool SummaryMovesForward(const SessionAppend& append, bool has_summary, uint64_t current_through,
                         uint64_t message_count);

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_SESSION_SESSION_COMMON_H_
