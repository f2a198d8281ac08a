#ifndef FLOWORK_AGENT_CONTEXT_ASSEMBLER_H_
#define FLOWORK_AGENT_CONTEXT_ASSEMBLER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "flowork/agent/token_counter.h"
#include "flowork/agent/v1/context.pb.h"

namespace flowork::agent {

// Memory shown to the model on every request (a persona, facts about the
// user, the task's plan), as a section of the system message.
struct MemoryBlock {
  // The section's heading, such as "user".
  std::string label;
  std::string content;
};

// A memory found for this request (by full-text search, say).
struct RetrievedMemory {
  // Names the memory in the report.
  std::string id;
  std::string content;
  // Higher is more relevant; the top `max_retrieved` are offered, and the
  // lowest scores are dropped first when they do not all fit.
  double score = 0;
};

// What goes into one model request, and the limits it must keep.
struct ContextInputs {
  // The model's context window, in tokens. Default 0: nothing fits, and the
  // result is only the (truncated) system message, marked as not fitting.
  int64_t context_window = 0;
  // Tokens left free for the reply (the request's max_tokens). Default 1024.
  int64_t reserved_output_tokens = 1024;

  // Always kept; when it alone overflows the window it is cut, ending with
  // "[system prompt truncated: N tokens omitted]". Default empty.
  std::string system_prompt;

  // Kept right after the system prompt, in order, each cut to
  // `max_pinned_block_tokens`; a block that no longer fits is dropped.
  // Default empty.
  std::vector<MemoryBlock> pinned_blocks;
  // Default 2048.
  int64_t max_pinned_block_tokens = 2048;

  // At most `max_retrieved` of them, highest score first, taking at most
  // `max_retrieved_tokens` together. Default: empty, 8, and 0 meaning a
  // quarter of the request's budget.
  std::vector<RetrievedMemory> retrieved;
  int max_retrieved = 8;
  int64_t max_retrieved_tokens = 0;

  // The conversation, with its summary. Not owned; must outlive the call.
  // Default nullptr: no conversation.
  const v1::Session* session = nullptr;
};

// Something of the inputs the model does not see as it was given.
struct ContextOmission {
  enum class Kind {
    kTruncated,  // Cut to fit, with a visible marker.
    kElided,     // A tool result replaced by "[tool result elided: N tokens]".
    kDropped,    // Left out.
  };
  Kind kind = Kind::kDropped;
  // "system prompt", "pinned block \"user\"", "retrieved memory \"m7\"",
  // "summary", "messages[12]", "messages[0..9899]".
  std::string what;
  // Its tokens as given, and as sent (0 when dropped).
  int64_t tokens_before = 0;
  int64_t tokens_after = 0;
  // Why, such as "no room in the context window".
  std::string reason;
};

struct AssembledContext {
  // The OpenAI `messages` array, in order: one system message (system prompt,
  // pinned blocks, retrieved memories, summary), the truncation marker
  // "[earlier conversation truncated: N messages]" as a system message when
  // session messages were left out, then the kept session messages oldest
  // first. `pinned` is cleared on all of them.
  std::vector<v1::ChatMessage> messages;
  // counter.CountMessages(messages).
  int64_t total_tokens = 0;
  // context_window - reserved_output_tokens.
  int64_t budget_tokens = 0;
  // total_tokens <= budget_tokens. False only when even the system prompt,
  // cut to its marker, does not fit.
  bool fits = true;
  // Indices of the session messages sent, ascending.
  std::vector<uint64_t> kept_messages;
  // Session messages neither sent nor covered by the summary that was sent
  // (the N of the truncation marker), and their tokens.
  int64_t dropped_messages = 0;
  int64_t dropped_tokens = 0;
  // Everything truncated, elided or dropped: system prompt, pinned blocks,
  // the newest turn, summary and retrieved memories as decided, then session
  // messages by index (dropped runs with one reason as one range).
  std::vector<ContextOmission> omissions;
};

// Builds one model request's messages within the token budget. Never fails:
// however long the conversation, the result is the inputs cut down by these
// rules, in this order of precedence:
//
//  1. The system prompt (cut if it alone overflows).
//  2. Pinned memory blocks, in order.
//  3. The newest turn: the last user or assistant message, or the last
//     assistant message with its tool calls together with the tool results
//     answering it. If it does not fit its tool results are elided, then a
//     lone message's content is cut with "[message truncated: N tokens
//     omitted]"; if it still does not fit, no session message is sent.
//  4. The session summary (dropped whole if it does not fit).
//  5. Retrieved memories, highest score first.
//  6. Pinned session messages, newest first.
//  7. The other turns since the summary, newest first. Tool results older than
//     the newest turn are elided, oldest first, before any turn is dropped;
//     then the oldest turns are dropped, and elided results are restored,
//     newest first, as far as room allows.
//
// A tool message always travels with the assistant message whose tool call
// it answers: both are sent or neither. A tool message without one is never
// sent. Messages the summary covers are sent only when pinned.
//
// Pure and deterministic; linear in the size of the session (plus a binary
// search over any text that must be cut).
AssembledContext AssembleContext(const ContextInputs& inputs, const TokenCounter& counter);

// The messages as OpenAI's chat `messages` JSON array: tool calls as
// {"id","type":"function","function":{"name","arguments":"<json>"}}.
std::string ToOpenAiMessagesJson(const std::vector<v1::ChatMessage>& messages);

struct CompactionOptions {
  // NeedsCompaction: compact once assembly drops at least this many tokens
  // of turns the summary does not cover. Default 1024.
  int64_t min_dropped_tokens = 1024;
  // PlanCompaction keeps at least this many tokens of the newest turns out of
  // the summary (and always the newest turn), so the conversation's recent
  // past stays verbatim. Default 4096.
  int64_t keep_recent_tokens = 4096;
  // The summariser's prompt (instructions, previous summary and transcript)
  // stays within this many tokens; older turns beyond it wait for the next
  // compaction. Default 16384.
  int64_t max_prompt_tokens = 16384;
  // The summary length asked for, in the prompt. Default 512.
  int64_t target_summary_tokens = 512;
};

// True when the assembly dropped enough of the conversation that it is
// worth summarising.
bool NeedsCompaction(const AssembledContext& assembled, const CompactionOptions& options);

// The next summarisation of a session: the oldest messages the summary does
// not cover yet, and the request that asks a model to fold them into it.
struct CompactionPlan {
  // Session messages [first, through] are folded in (pinned ones are left
  // out of the transcript, since they stay verbatim). Meaningless when empty().
  uint64_t first = 0;
  uint64_t through = 0;
  // The summariser request: a system message with the instructions, and a
  // user message with the previous summary and the transcript. Its reply is
  // the new summary, replacing the old one: pass it and `through` to
  // ApplySummary.
  std::vector<v1::ChatMessage> prompt;
  int64_t prompt_tokens = 0;

  bool empty() const { return prompt.empty(); }
};

// Plans the next summarisation: from the message after the summary boundary
// up to where `keep_recent_tokens` of the newest turns begin, never splitting
// a tool call from its results, and no more than fits `max_prompt_tokens`
// (a single message too long for it is cut in the transcript). Empty when
// there is nothing old enough to summarise.
CompactionPlan PlanCompaction(const v1::Session& session, const TokenCounter& counter,
                              const CompactionOptions& options);

// Makes `summary` the session's summary of messages [0, through]. Messages
// stay; assembly leaves out what the summary covers.
// kInvalidArgument, changing nothing, when `summary` is empty, `through` is
// not a message index, does not move the boundary forward, or would separate
// a tool call from its results.
absl::Status ApplySummary(v1::Session& session, std::string_view summary, uint64_t through);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_CONTEXT_ASSEMBLER_H_
