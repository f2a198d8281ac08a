#ifndef FLOWORK_AGENT_LLM_AGENT_H_
#define FLOWORK_AGENT_LLM_AGENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "flowork/agent/agent.h"
#include "flowork/agent/memory_store.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/v1/agent.pb.h"

namespace flowork::agent {

// Options of a declarative LLM agent. Every field documents its default.
struct LlmAgentOptions {
  // The tools offered to the model, in OpenAI "tools" format (a JSON array).
  // Default "": none.
  std::string tools_json;
  // JSON Schema the final answer must match (then the answer is JSON).
  // A non-matching answer is sent back to the model once to be repaired;
  // a second miss fails the task. Default "": any text.
  std::string output_schema_json;
  // USD per million tokens, for AgentLimits.max_cost_usd. Default 0: free.
  double input_usd_per_mtok = 0;
  double output_usd_per_mtok = 0;
  // The model's context window in tokens. When set, each request is
  // assembled to fit it (AssembleContext: old tool results elided, old turns
  // dropped behind a visible marker), and older turns are first summarised
  // by `summary_model` as a journaled step when too much would be dropped;
  // a summary that fails or cannot be asked for falls back to truncation.
  // Default 0: the whole conversation is sent.
  int64_t context_window = 0;
  // Tokens kept free for the answer. Default 1024.
  int64_t reserved_output_tokens = 1024;
  // The (cheap) model or route that writes summaries. Default "": the
  // agent's own model. Compaction is off when `compaction` is false.
  std::string summary_model;
  bool compaction = true;

  // Where the pinned blocks of spec.memory live (read before every model
  // call, so an edit by a memory_pin_* tool shows in the next request). Not
  // owned; must outlive the agent. Null: the blocks show their initial_text.
  const PinnedMemoryStore* pinned = nullptr;
  // Searched before every model call when spec.memory.retrieve is set: the
  // top retrieve_top_k memories of the task's tenant and agent matching the
  // latest user message go into the "Relevant memories" section. Not owned;
  // must outlive the agent. Null: no retrieval. A failed search is logged
  // and the request goes without the section.
  const MemoryStore* memory = nullptr;
};

// The agent of a kind-llm AgentSpec: a tool-calling loop run as journaled
// steps. Each step asks the model (spec.model, through the runtime's model
// handler) with the system prompt, the task's input and everything the
// journal holds so far; tool calls the model asks for become one tools
// effect (performed in parallel); a plain answer finishes the task. The
// spec's limits end the task with a clear reason: max_steps (the runtime),
// max_tokens and max_cost_usd (here, from the usage the model reported), the
// deadline (the runtime). Thread-safe; stateless between steps.
//
// Context: each request is the system prompt, then the pinned blocks of
// spec.memory (in order), then retrieved memories, then the conversation:
// for a task with a session the session's history (its summary and turns)
// before the task's own input and turns. With a context_window, assembly
// (AssembleContext) keeps them in this priority: system prompt, pinned
// blocks, the newest turn, the summary, retrieved memories, older turns; so
// a long session is compacted or truncated, never failing. Reading the
// pinned and memory stores happens inside Step (small, blocking reads).
//
// Session turn (TurnForSession): every message the task added (its input,
// assistant answers with their tool calls, tool results, repair prompts,
// the final answer), and the newest summary a compaction step wrote.
// kInvalidArgument for malformed tools or schema JSON.
absl::StatusOr<std::shared_ptr<Agent>> CreateLlmAgent(const v1::AgentSpec& spec,
                                                      LlmAgentOptions options = {});

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_LLM_AGENT_H_
