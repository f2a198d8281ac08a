// Ollama /api/chat NDJSON in, OpenAI chat.completion.chunk SSE out.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "flowork/core/internal/strings.h"
#include "providers/json_wire.h"
#include "providers/openai_chunk_writer.h"
#include "providers/stream_base.h"
#include "providers/stream_framing.h"
#include "providers/translation.h"

namespace flowork::router {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;
using wire::FindArray;
using wire::FindObject;
using wire::FindString;
using wire::NdjsonLine;
using wire::StringOr;
using wire::View;

class OllamaToOpenAiStream final : public wire::StreamProgress {
 public:
  OllamaToOpenAiStream(std::string model, bool forward_usage)
      : writer_(std::move(model)), forward_usage_(forward_usage) {}

  std::string Feed(std::string_view upstream_bytes) override {
    return Guarded([&](std::string& out) {
      for (NdjsonLine& line : reader_.Feed(upstream_bytes)) Translate(line, out);
    });
  }

  // A final line without its newline still counts: done:true ends both the
  // answer and the stream, so nothing else is ever owed.
  std::string Finish() override {
    return Guarded([&](std::string& out) {
      for (NdjsonLine& line : reader_.Finish()) Translate(line, out);
    });
  }

 private:
  void Translate(const NdjsonLine& line, std::string& out) {
    std::optional<json::value> parsed = line.oversized ? std::nullopt : wire::ParseJson(line.text);
    if (!parsed.has_value() || !parsed->is_object()) {
      ++malformed_;
      return;
    }
    if (saw_end_) return;
    const json::object& data = parsed->get_object();
    if (const json::value* error = data.if_contains("error");
        error != nullptr && !error->is_null()) {
      out += absl::StrCat("data: ", ErrorToOpenAi(500, line.text), "\n\n");
      return;
    }
    Start(data, out);
    if (const json::object* message = FindObject(data, "message")) {
      if (const json::string* content = FindString(*message, "content");
          content != nullptr && !content->empty()) {
        out += writer_.Text(View(*content));
        text_ += View(*content);
        saw_content_ = true;
      }
      if (const json::array* calls = FindArray(*message, "tool_calls")) {
        for (const json::value& value : *calls) {
          const json::object* call = value.if_object();
          const json::object* function = call != nullptr ? FindObject(*call, "function") : nullptr;
          if (function == nullptr) continue;
          ToolCall(*call, *function, out);
        }
      }
    }
    const json::value* done = data.if_contains("done");
    if (done != nullptr && done->is_bool() && done->get_bool()) {
      saw_finish_ = true;
      saw_end_ = true;
      usage_.reported = true;
      usage_.prompt_tokens = wire::FindCount(data, "prompt_eval_count").value_or(0);
      usage_.completion_tokens = wire::FindCount(data, "eval_count").value_or(0);
      const std::string_view finish_reason = next_tool_ > 0 ? "tool_calls"
                                             : StringOr(data, "done_reason") == "length" ? "length"
                                                                                         : "stop";
      out += writer_.FinishReason(finish_reason);
      if (forward_usage_) out += writer_.Usage(usage_);
      out += wire::OpenAiChunkWriter::Done();
    }
  }

  // Ollama sends each call whole, arguments as an object.
  void ToolCall(const json::object& call, const json::object& function, std::string& out) {
    const uint64_t tool = next_tool_++;
    const json::value* arguments = function.if_contains("arguments");
    std::string serialized = "{}";
    if (arguments != nullptr && arguments->is_string()) {
      serialized = View(arguments->get_string());
    } else if (arguments != nullptr && !arguments->is_null()) {
      serialized = wire::Serialize(*arguments);
    }
    const std::string id(StringOr(call, "id", absl::StrCat("call_", tool)));
    out += writer_.ToolCallStart(tool, id, StringOr(function, "name"), serialized);
    saw_content_ = true;
  }

  void Start(const json::object& data, std::string& out) {
    if (started_) return;
    started_ = true;
    absl::Time created;
    std::string error;
    if (absl::ParseTime(absl::RFC3339_full, ToAbsl(StringOr(data, "created_at")), &created,
                        &error)) {
      writer_.set_created(absl::ToUnixSeconds(created));
    }
    out += writer_.Role();
  }

  wire::OpenAiChunkWriter writer_;
  const bool forward_usage_;
  wire::NdjsonReader reader_;
  bool started_ = false;
  uint64_t next_tool_ = 0;
};

}  // namespace

std::unique_ptr<StreamTranslator> NewOllamaToOpenAiStream(std::string model, bool forward_usage) {
  return std::make_unique<OllamaToOpenAiStream>(std::move(model), forward_usage);
}

}  // namespace flowork::router
