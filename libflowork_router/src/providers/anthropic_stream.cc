// Anthropic Messages SSE in, OpenAI chat.completion.chunk SSE out.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "providers/json_wire.h"
#include "providers/openai_chunk_writer.h"
#include "providers/stream_base.h"
#include "providers/stream_framing.h"
#include "providers/translation.h"

namespace flowork::router {
namespace {

namespace json = boost::json;
using wire::FindObject;
using wire::FindString;
using wire::SseEvent;
using wire::StringOr;
using wire::View;

class AnthropicToOpenAiStream final : public wire::StreamProgress {
 public:
  AnthropicToOpenAiStream(std::string model, bool forward_usage)
      : writer_(std::move(model)), forward_usage_(forward_usage) {}

  std::string Feed(std::string_view upstream_bytes) override {
    return Guarded([&](std::string& out) {
      for (SseEvent& event : reader_.Feed(upstream_bytes)) Translate(event, out);
    });
  }

  std::string Finish() override {
    return Guarded([&](std::string& out) {
      for (SseEvent& event : reader_.Finish()) Translate(event, out);
      if (saw_finish_ && !saw_end_) Close(out);
    });
  }

 private:
  void Translate(const SseEvent& event, std::string& out) {
    if (event.oversized) {
      ++malformed_;
      return;
    }
    if (!event.has_data) return;
    std::optional<json::value> parsed = wire::ParseJson(event.data);
    if (!parsed.has_value() || !parsed->is_object()) {
      ++malformed_;
      return;
    }
    if (closed_) return;
    const json::object& data = parsed->get_object();
    // The data's own "type" names the event; the "event:" line says the same.
    const std::string_view type = StringOr(data, "type", event.name);
    if (type == "message_start") {
      if (const json::object* message = FindObject(data, "message")) {
        if (const json::string* id = FindString(*message, "id"); id != nullptr && !started_) {
          writer_.set_id(std::string(View(*id)));
        }
        if (const json::object* usage = FindObject(*message, "usage")) UpdateUsage(*usage);
      }
      Start(out);
    } else if (type == "content_block_start") {
      BlockStart(data, out);
    } else if (type == "content_block_delta") {
      BlockDelta(data, out);
    } else if (type == "message_delta") {
      if (const json::object* usage = FindObject(data, "usage")) UpdateUsage(*usage);
      const json::object* delta = FindObject(data, "delta");
      const json::string* stop_reason =
          delta != nullptr ? FindString(*delta, "stop_reason") : nullptr;
      if (stop_reason != nullptr && !saw_finish_) {
        Start(out);
        out += writer_.FinishReason(wire::FinishReasonFromStopReason(View(*stop_reason)));
        saw_finish_ = true;
      }
    } else if (type == "message_stop") {
      saw_end_ = true;
      Close(out);
    } else if (type == "error") {
      out += absl::StrCat("data: ", ErrorToOpenAi(500, event.data), "\n\n");
    }
    // ping, content_block_stop and newer event types need nothing.
  }

  void BlockStart(const json::object& data, std::string& out) {
    const json::object* block = FindObject(data, "content_block");
    const std::optional<uint64_t> index = wire::FindCount(data, "index");
    if (block == nullptr || !index.has_value()) return;
    const std::string_view type = StringOr(*block, "type");
    if (type == "text") {
      Text(StringOr(*block, "text"), out);
    } else if (type == "tool_use") {
      Start(out);
      const uint64_t tool = next_tool_++;
      tool_calls_[*index] = tool;
      const json::object* input = FindObject(*block, "input");
      // Streams send "input": {} and the arguments as deltas.
      const std::string arguments =
          input != nullptr && !input->empty() ? wire::Serialize(*input) : std::string();
      out += writer_.ToolCallStart(tool, StringOr(*block, "id", absl::StrCat("call_", tool)),
                                   StringOr(*block, "name"), arguments);
      saw_content_ = true;
    }
  }

  void BlockDelta(const json::object& data, std::string& out) {
    const json::object* delta = FindObject(data, "delta");
    if (delta == nullptr) return;
    const std::string_view type = StringOr(*delta, "type");
    if (type == "text_delta") {
      Text(StringOr(*delta, "text"), out);
    } else if (type == "input_json_delta") {
      const std::string_view partial = StringOr(*delta, "partial_json");
      const std::optional<uint64_t> index = wire::FindCount(data, "index");
      auto tool = index.has_value() ? tool_calls_.find(*index) : tool_calls_.end();
      if (partial.empty() || tool == tool_calls_.end()) return;
      out += writer_.ToolCallArguments(tool->second, partial);
    }
    // Thinking, signature and citation deltas have no OpenAI counterpart.
  }

  void Text(std::string_view text, std::string& out) {
    if (text.empty()) return;
    Start(out);
    out += writer_.Text(text);
    text_ += text;
    saw_content_ = true;
  }

  void UpdateUsage(const json::object& usage) {
    counts_.Update(usage);
    usage_ = counts_.ToTokenUsage();
  }

  void Start(std::string& out) {
    if (started_) return;
    started_ = true;
    out += writer_.Role();
  }

  // Usage (when asked for) and [DONE]. Once.
  void Close(std::string& out) {
    if (closed_) return;
    closed_ = true;
    Start(out);
    if (forward_usage_) out += writer_.Usage(usage_);
    out += wire::OpenAiChunkWriter::Done();
  }

  wire::OpenAiChunkWriter writer_;
  const bool forward_usage_;
  wire::SseReader reader_;
  bool started_ = false;
  bool closed_ = false;
  wire::AnthropicUsageCounts counts_;
  absl::flat_hash_map<uint64_t, uint64_t> tool_calls_;  // Block index -> tool call index.
  uint64_t next_tool_ = 0;
};

}  // namespace

std::unique_ptr<StreamTranslator> NewAnthropicToOpenAiStream(std::string model,
                                                             bool forward_usage) {
  return std::make_unique<AnthropicToOpenAiStream>(std::move(model), forward_usage);
}

}  // namespace flowork::router
