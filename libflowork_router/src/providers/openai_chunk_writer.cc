#include "providers/openai_chunk_writer.h"

#include <utility>

namespace flowork::router::wire {
namespace {

std::string Event(const json::value& data) {
  std::string out = "data: ";
  out += SerializeWith(data, "\n\n");
  return out;
}

}  // namespace

std::string OpenAiChunkWriter::Chunk(json::object delta, json::value finish_reason) const {
  return Event(json::object{
      {"id", J(id_)},
      {"object", "chat.completion.chunk"},
      {"created", created_},
      {"model", J(model_)},
      {"choices", json::array{json::object{{"index", 0},
                                           {"delta", std::move(delta)},
                                           {"finish_reason", std::move(finish_reason)}}}}});
}

std::string OpenAiChunkWriter::Role() const {
  return Chunk({{"role", "assistant"}, {"content", ""}}, nullptr);
}

std::string OpenAiChunkWriter::Text(std::string_view text) const {
  return Chunk({{"content", J(text)}}, nullptr);
}

std::string OpenAiChunkWriter::ToolCallStart(uint64_t index, std::string_view id,
                                             std::string_view name,
                                             std::string_view arguments) const {
  json::object call{{"index", index},
                    {"id", J(id)},
                    {"type", "function"},
                    {"function", {{"name", J(name)}, {"arguments", J(arguments)}}}};
  return Chunk({{"tool_calls", json::array{std::move(call)}}}, nullptr);
}

std::string OpenAiChunkWriter::ToolCallArguments(uint64_t index, std::string_view arguments) const {
  json::object call{{"index", index}, {"function", {{"arguments", J(arguments)}}}};
  return Chunk({{"tool_calls", json::array{std::move(call)}}}, nullptr);
}

std::string OpenAiChunkWriter::FinishReason(std::string_view finish_reason) const {
  return Chunk(json::object(), J(finish_reason));
}

std::string OpenAiChunkWriter::Usage(const TokenUsage& usage) const {
  return Event(json::object{{"id", J(id_)},
                            {"object", "chat.completion.chunk"},
                            {"created", created_},
                            {"model", J(model_)},
                            {"choices", json::array()},
                            {"usage", OpenAiUsageJson(usage)}});
}

std::string OpenAiChunkWriter::Done() { return "data: [DONE]\n\n"; }

}  // namespace flowork::router::wire
