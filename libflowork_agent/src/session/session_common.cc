#include "session/session_common.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/strings.h"
#include "memory/memory_common.h"

namespace flowork::agent::internal {
namespace {

using core::internal::ToAbsl;

absl::Status CheckScopeField(std::string_view name, std::string_view value) {
  if (value.size() > kMaxSessionScopeBytes) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(name), ": ", value.size(),
                                                   " bytes, more than ", kMaxSessionScopeBytes));
  }
  if (!IsUtf8(value)) return absl::InvalidArgumentError(absl::StrCat(ToAbsl(name), ": not UTF-8"));
  return absl::OkStatus();
}

bool IsIdChar(char c, bool allow_upper_and_dot) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         (allow_upper_and_dot && ((c >= 'A' && c <= 'Z') || c == '.'));
}

}  // namespace

absl::Status ValidateNewSession(const v1::Session& session) {
  if (session.id().size() > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("session.id: ", session.id().size(),
                                                   " bytes, more than ", kMaxSessionIdBytes));
  }
  for (char c : session.id()) {
    if (!IsIdChar(c, true)) {
      return absl::InvalidArgumentError(
          absl::StrCat("session.id: \"", session.id(), "\" is not [A-Za-z0-9_.-]{1,128}"));
    }
  }
  if (absl::Status s = CheckScopeField("session.tenant", session.tenant()); !s.ok()) return s;
  if (session.agent().empty()) return absl::InvalidArgumentError("session.agent: empty");
  if (absl::Status s = CheckScopeField("session.agent", session.agent()); !s.ok()) return s;
  if (session.messages_size() > 0) {
    return absl::InvalidArgumentError("session.messages: must be empty (use Append)");
  }
  if (!session.summary().empty()) {
    return absl::InvalidArgumentError("session.summary: must be empty (use Append)");
  }
  return absl::OkStatus();
}

absl::Status ValidateAppend(const SessionAppend& append) {
  for (size_t i = 0; i < append.messages.size(); ++i) {
    const std::string& role = append.messages[i].role();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role: \"", role,
                                                     "\" is not system, user, assistant or tool"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePinnedScope(const PinnedScope& scope) {
  if (absl::Status s = CheckScopeField("scope.tenant", scope.tenant); !s.ok()) return s;
  if (absl::Status s = CheckScopeField("scope.agent", scope.agent); !s.ok()) return s;
  return CheckScopeField("scope.session_id", scope.session_id);
}

absl::Status ValidatePinnedName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) ok = ok && IsIdChar(c, false);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("block: \"", ToAbsl(name), "\" is not [a-z0-9_-]{1,64}"));
  }
  return absl::OkStatus();
}

std::string NewSessionId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* random = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::StrFormat("ses_%016x", absl::Uniform<uint64_t>(*random));
}

bool SummaryMovesForward(const SessionAppend& append, bool has_summary, uint64_t current_through,
                         uint64_t message_count) {
  if (append.summary.empty() || append.summarized_through >= message_count) return false;
  return !has_summary || append.summarized_through > current_through;
}

}  // namespace flowork::agent::internal
