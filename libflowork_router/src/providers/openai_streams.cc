// Streams whose upstream speaks OpenAI: the pass-through inspector and the
// translation to Anthropic events.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"
#include "providers/json_wire.h"
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
using wire::J;
using wire::SseEvent;
using wire::StringOr;
using wire::View;

constexpr std::string_view kDone = "data: [DONE]\n\n";

bool IsDone(std::string_view data) { return absl::StripAsciiWhitespace(ToAbsl(data)) == "[DONE]"; }

// The choice a single-answer client reads: index 0.
const json::object* FirstChoice(const json::object& chunk) {
  const json::array* choices = FindArray(chunk, "choices");
  if (choices == nullptr) return nullptr;
  for (const json::value& value : *choices) {
    const json::object* choice = value.if_object();
    if (choice != nullptr && wire::FindCount(*choice, "index").value_or(0) == 0) return choice;
  }
  return nullptr;
}

bool NonEmptyString(const json::object& object, std::string_view key) {
  const json::string* value = FindString(object, key);
  return value != nullptr && !value->empty();
}

// ---- OpenAI in, OpenAI out --------------------------------------------------

class OpenAiStreamInspector final : public wire::StreamProgress {
 public:
  explicit OpenAiStreamInspector(bool forward_usage) : forward_usage_(forward_usage) {}

  std::string Feed(std::string_view upstream_bytes) override {
    return Guarded([&](std::string& out) {
      for (SseEvent& event : reader_.Feed(upstream_bytes)) Inspect(event, out);
    });
  }

  std::string Finish() override {
    return Guarded([&](std::string& out) {
      for (SseEvent& event : reader_.Finish()) Inspect(event, out);
      if (saw_finish_ && !saw_end_ && !finished_) out += kDone;
      finished_ = true;
    });
  }

 private:
  // Appends the event's own bytes to `out` unless it is dropped.
  void Inspect(const SseEvent& event, std::string& out) {
    if (event.oversized) {
      ++malformed_;
      return;
    }
    if (!event.has_data) {  // Comments and keep-alives.
      out += event.raw;
      return;
    }
    if (IsDone(event.data)) {
      saw_end_ = true;
      out += event.raw;
      return;
    }
    std::optional<json::value> parsed = wire::ParseJson(event.data);
    if (!parsed.has_value() || !parsed->is_object()) {
      ++malformed_;
      return;
    }
    const json::object& chunk = parsed->get_object();
    const json::object* usage = FindObject(chunk, "usage");
    if (usage != nullptr) usage_ = wire::ReadOpenAiUsage(*usage);
    if (const json::object* choice = FirstChoice(chunk)) Observe(*choice);
    const json::array* choices = FindArray(chunk, "choices");
    const bool usage_only = usage != nullptr && choices != nullptr && choices->empty();
    if (usage_only && !forward_usage_) return;
    out += event.raw;
  }

  void Observe(const json::object& choice) {
    if (const json::object* delta = FindObject(choice, "delta")) {
      if (const json::string* content = FindString(*delta, "content");
          content != nullptr && !content->empty()) {
        text_ += View(*content);
        saw_content_ = true;
      }
      const json::array* calls = FindArray(*delta, "tool_calls");
      if ((calls != nullptr && !calls->empty()) || NonEmptyString(*delta, "reasoning_content") ||
          NonEmptyString(*delta, "reasoning") || NonEmptyString(*delta, "refusal")) {
        saw_content_ = true;
      }
    }
    if (FindString(choice, "finish_reason") != nullptr) saw_finish_ = true;
  }

  const bool forward_usage_;
  wire::SseReader reader_;
  bool finished_ = false;
};

// ---- OpenAI in, Anthropic out -----------------------------------------------

std::string AnthropicEvent(std::string_view name, const json::object& data) {
  return absl::StrCat("event: ", ToAbsl(name), "\ndata: ", wire::SerializeWith(data, "\n\n"));
}

class OpenAiToAnthropicStream final : public wire::StreamProgress {
 public:
  explicit OpenAiToAnthropicStream(std::string model) : model_(std::move(model)) {}

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
  enum class Block { kNone, kText, kToolUse };

  void Translate(const SseEvent& event, std::string& out) {
    if (event.oversized) {
      ++malformed_;
      return;
    }
    if (!event.has_data) return;
    if (IsDone(event.data)) {
      saw_end_ = true;
      Close(out);
      return;
    }
    std::optional<json::value> parsed = wire::ParseJson(event.data);
    if (!parsed.has_value() || !parsed->is_object()) {
      ++malformed_;
      return;
    }
    if (closed_) return;
    const json::object& chunk = parsed->get_object();
    if (const json::value* error = chunk.if_contains("error");
        error != nullptr && !error->is_null()) {
      out += absl::StrCat("event: error\ndata: ", ErrorToAnthropic(500, event.data), "\n\n");
      return;
    }
    if (const json::object* usage = FindObject(chunk, "usage")) {
      usage_ = wire::ReadOpenAiUsage(*usage);
    }
    Start(StringOr(chunk, "id", "msg_flowork"), out);
    const json::object* choice = FirstChoice(chunk);
    if (choice == nullptr) return;
    if (const json::object* delta = FindObject(*choice, "delta")) {
      if (const json::string* content = FindString(*delta, "content");
          content != nullptr && !content->empty()) {
        Text(View(*content), out);
      }
      if (const json::array* calls = FindArray(*delta, "tool_calls")) {
        for (size_t position = 0; position < calls->size(); ++position) {
          if (const json::object* call = (*calls)[position].if_object()) {
            ToolCall(*call, position, out);
          }
        }
      }
    }
    if (const json::string* finish = FindString(*choice, "finish_reason")) {
      stop_reason_ = wire::StopReasonFromFinishReason(View(*finish));
      saw_finish_ = true;
    }
  }

  void Start(std::string_view id, std::string& out) {
    if (started_) return;
    started_ = true;
    out += AnthropicEvent("message_start",
                          {{"type", "message_start"},
                           {"message",
                            {{"id", J(id)},
                             {"type", "message"},
                             {"role", "assistant"},
                             {"model", model_},
                             {"content", json::array()},
                             {"stop_reason", nullptr},
                             {"stop_sequence", nullptr},
                             // Known only at the end; message_delta carries the counts.
                             {"usage", {{"input_tokens", 0}, {"output_tokens", 0}}}}}});
  }

  void Text(std::string_view text, std::string& out) {
    if (open_ != Block::kText) {
      CloseBlock(out);
      OpenBlock(Block::kText, {{"type", "text"}, {"text", ""}}, out);
    }
    out += AnthropicEvent("content_block_delta",
                          {{"type", "content_block_delta"},
                           {"index", open_index_},
                           {"delta", {{"type", "text_delta"}, {"text", J(text)}}}});
    text_ += text;
    saw_content_ = true;
  }

  void ToolCall(const json::object& call, size_t position, std::string& out) {
    const uint64_t tool = wire::FindCount(call, "index").value_or(position);
    const json::object* function = FindObject(call, "function");
    auto known = tool_blocks_.find(tool);
    if (known == tool_blocks_.end()) {
      CloseBlock(out);
      const std::string id(StringOr(call, "id", absl::StrCat("toolu_", tool)));
      const std::string_view name = function != nullptr ? StringOr(*function, "name") : "";
      OpenBlock(Block::kToolUse,
                {{"type", "tool_use"}, {"id", id}, {"name", J(name)}, {"input", json::object()}},
                out);
      known = tool_blocks_.emplace(tool, open_index_).first;
    }
    saw_content_ = true;
    const std::string_view arguments = function != nullptr ? StringOr(*function, "arguments") : "";
    if (arguments.empty()) return;
    // A late piece of an earlier call still goes to that call's block.
    out +=
        AnthropicEvent("content_block_delta",
                       {{"type", "content_block_delta"},
                        {"index", known->second},
                        {"delta", {{"type", "input_json_delta"}, {"partial_json", J(arguments)}}}});
  }

  void OpenBlock(Block kind, json::object block, std::string& out) {
    open_ = kind;
    open_index_ = next_index_++;
    out += AnthropicEvent("content_block_start", {{"type", "content_block_start"},
                                                  {"index", open_index_},
                                                  {"content_block", std::move(block)}});
  }

  void CloseBlock(std::string& out) {
    if (open_ == Block::kNone) return;
    out += AnthropicEvent("content_block_stop",
                          {{"type", "content_block_stop"}, {"index", open_index_}});
    open_ = Block::kNone;
  }

  // Ends the client's message: the open block, the stop reason and usage,
  // message_stop. Once.
  void Close(std::string& out) {
    if (closed_) return;
    closed_ = true;
    Start("msg_flowork", out);
    CloseBlock(out);
    out += AnthropicEvent(
        "message_delta", {{"type", "message_delta"},
                          {"delta", {{"stop_reason", J(stop_reason_)}, {"stop_sequence", nullptr}}},
                          {"usage", wire::AnthropicUsageJson(usage_)}});
    out += AnthropicEvent("message_stop", {{"type", "message_stop"}});
  }

  const std::string model_;
  wire::SseReader reader_;
  bool started_ = false;
  bool closed_ = false;
  Block open_ = Block::kNone;
  uint64_t open_index_ = 0;  // Of the open block.
  uint64_t next_index_ = 0;
  absl::flat_hash_map<uint64_t, uint64_t> tool_blocks_;  // OpenAI tool index -> block.
  std::string_view stop_reason_ = "end_turn";
};

}  // namespace

std::unique_ptr<StreamTranslator> NewOpenAiStreamInspector(bool forward_usage) {
  return std::make_unique<OpenAiStreamInspector>(forward_usage);
}

std::unique_ptr<StreamTranslator> NewOpenAiToAnthropicStream(std::string model) {
  return std::make_unique<OpenAiToAnthropicStream>(std::move(model));
}

}  // namespace flowork::router
