#ifndef FLOWORK_AGENT_TOKEN_COUNTER_H_
#define FLOWORK_AGENT_TOKEN_COUNTER_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "flowork/agent/v1/context.pb.h"

namespace flowork::agent {

// How many tokens text and chat messages take in a model's prompt.
//
// Context assembly relies on counts being subadditive over whitespace: the
// count of `a + "\n\n" + b`, for `a` and `b` without leading or trailing
// whitespace, is at most the sum of the three counts. The estimators below
// are; a real tokenizer plugged in here almost always is.
//
// Implementations are immutable and thread-safe.
class TokenCounter {
 public:
  virtual ~TokenCounter() = default;

  // A short name for reports, such as "estimate/gpt".
  virtual std::string_view name() const = 0;

  // Tokens of `text` on its own; 0 for empty text.
  virtual int64_t CountText(std::string_view text) const = 0;

  // Tokens one message adds to a chat request: content, name, tool calls
  // with their arguments, and the chat format's per-message overhead.
  // `pinned` costs nothing (it is never sent).
  virtual int64_t CountMessage(const v1::ChatMessage& message) const = 0;

  // Tokens a chat request costs once, beyond its messages: the primer of the
  // reply (OpenAI: 3) and any begin-of-sequence token.
  virtual int64_t RequestOverhead() const = 0;

  // RequestOverhead() plus CountMessage of each message.
  int64_t CountMessages(const std::vector<v1::ChatMessage>& messages) const;
};

// The tokenizer families estimated separately.
enum class ModelFamily {
  kGpt,      // OpenAI gpt-*, chatgpt-*, o1/o3/o4 (cl100k_base / o200k_base).
  kClaude,   // Anthropic claude-*.
  kLlama,    // Meta Llama 2/3/4, CodeLlama.
  kMistral,  // Mistral, Mixtral, Codestral, Ministral, Pixtral.
  kQwen,     // Alibaba Qwen.
  kGemma,    // Google Gemma, and Gemini (same SentencePiece vocabulary family).
  kDefault,  // Anything else: the most conservative estimate.
};

// The family of a model name, matched case-insensitively on substrings so
// provider prefixes and tags pass ("openai/gpt-4o", "llama3.1:8b",
// "anthropic.claude-3-5-sonnet"). o-series names are recognised by their last
// path component ("o1", "o3-mini", "openai/o4-mini").
ModelFamily ModelFamilyOf(std::string_view model);

// A calibrated estimator for the model's family (no tokenizer ships with
// Flowork). Estimates lean high: on the cl100k reference texts of
// docs/agents.md ("Context assembly") the gpt estimator is 0 to +17% on
// English prose and chats, up to +40% on code, and -17% only on a sentence
// built around an invented word; the other families scale up from it.
// Deterministic, no allocation, linear in the text. The counters have static
// storage duration.
const TokenCounter& TokenCounterFor(std::string_view model);
const TokenCounter& TokenCounterFor(ModelFamily family);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_TOKEN_COUNTER_H_
