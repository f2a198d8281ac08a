#ifndef FLOWORK_AGENT_MEMORY_TOOLS_H_
#define FLOWORK_AGENT_MEMORY_TOOLS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "flowork/agent/memory_store.h"
#include "flowork/agent/v1/effect.pb.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// A tool as a model sees it: what an OpenAI "function" tool declares.
struct MemoryToolDefinition {
  std::string name;
  std::string description;
  // JSON Schema of the arguments object.
  google::protobuf::Struct parameters;
};

// The "remember" and "recall" tools, which let an agent's model store and
// search the agent's memory. Thread-safe as its store is.
//
//   remember {"text": "...", "tags": {"k": "v"}}   -> {"id": "..."}
//   recall   {"query": "...", "limit": 5}           -> {"memories": [{"id", "text",
//                                                       "tags", "score", "create_time",
//                                                       "shared"}]}
//
// `tags` and `limit` are optional; `limit` is 1 to kMaxRecallLimit, default 5.
// `shared` is true for a tenant-wide memory. Arguments may be an object or a
// string holding a JSON object (OpenAI sends tool arguments as a string).
class MemoryTools {
 public:
  static constexpr std::string_view kRemember = "remember";
  static constexpr std::string_view kRecall = "recall";

  // `store` must outlive the tools.
  explicit MemoryTools(MemoryStore& store) : store_(store) {}

  // The definitions of both tools, to offer to a model.
  static std::vector<MemoryToolDefinition> Definitions();

  // Runs `call` in `scope` and returns its result, carrying `call.id`.
  // Mistakes the model can fix (a missing or mistyped argument, text too long)
  // come back as a result with `error` set, naming the argument. kNotFound: a
  // tool other than these two. Other errors are the store's (kUnavailable,
  // kDataLoss...), for the caller to retry or fail the step.
  absl::StatusOr<v1::ToolResult> Call(const MemoryScope& scope, const v1::ToolCall& call) const;

 private:
  MemoryStore& store_;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_MEMORY_TOOLS_H_
