// Private to the translators: writes an OpenAI chat.completion.chunk stream
// (SSE) for translators whose upstream speaks something else.
#ifndef FLOWORK_ROUTER_SRC_PROVIDERS_OPENAI_CHUNK_WRITER_H_
#define FLOWORK_ROUTER_SRC_PROVIDERS_OPENAI_CHUNK_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "providers/json_wire.h"
#include "providers/translation.h"

namespace flowork::router::wire {

// Each method returns one complete SSE event ("data: ...\n\n"). A value.
class OpenAiChunkWriter {
 public:
  explicit OpenAiChunkWriter(std::string model) : model_(std::move(model)) {}

  void set_id(std::string id) { id_ = std::move(id); }
  void set_created(int64_t created) { created_ = created; }

  // The opening delta {"role":"assistant","content":""}.
  std::string Role() const;
  std::string Text(std::string_view text) const;
  // The first delta of tool call `index`: id, type, name and any arguments.
  std::string ToolCallStart(uint64_t index, std::string_view id, std::string_view name,
                            std::string_view arguments) const;
  // More arguments of tool call `index`.
  std::string ToolCallArguments(uint64_t index, std::string_view arguments) const;
  // An empty delta carrying the finish reason.
  std::string FinishReason(std::string_view finish_reason) const;
  // The usage-only chunk: "choices": [] and "usage".
  std::string Usage(const TokenUsage& usage) const;
  // "data: [DONE]\n\n".
  static std::string Done();

 private:
  std::string Chunk(json::object delta, json::value finish_reason) const;

  std::string model_;
  std::string id_ = "chatcmpl-flowork";
  int64_t created_ = 0;
};

}  // namespace flowork::router::wire

#endif  // FLOWORK_ROUTER_SRC_PROVIDERS_OPENAI_CHUNK_WRITER_H_
