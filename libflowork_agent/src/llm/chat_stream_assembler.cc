#include "chat_stream_assembler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent::internal {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

const json::object* Object(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

std::string_view String(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// The message of an error event's data ({"error": {"message"}} or text).
std::string ErrorMessage(std::string_view data) {
  boost::system::error_code ec;
  json::value parsed = json::parse(data, ec);
  if (!ec && parsed.is_object()) {
    if (const json::object* error = Object(parsed.as_object(), "error")) {
      if (std::string_view m = String(*error, "message"); !m.empty()) return std::string(m);
    }
  }
  return std::string(data.substr(0, 300));
}

}  // namespace

ChatStreamAssembler::ChatStreamAssembler(absl::AnyInvocable<void(std::string_view)> on_text)
    : on_text_(std::move(on_text)) {}

void ChatStreamAssembler::Feed(std::string_view bytes) {
  while (!bytes.empty() && error_.ok()) {
    const size_t end = bytes.find('\n');
    if (end == std::string_view::npos) {
      pending_.append(bytes);
      return;
    }
    std::string_view line = bytes.substr(0, end);
    bytes.remove_prefix(end + 1);
    if (!pending_.empty()) {
      pending_.append(line);
      std::string whole = std::move(pending_);
      pending_.clear();
      Line(whole);
    } else {
      Line(line);
    }
  }
}

void ChatStreamAssembler::Line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) return Dispatch();
  if (line.front() == ':') return;  // A comment (keep-alive).
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_ = std::string(value);
  }
}

void ChatStreamAssembler::Dispatch() {
  std::string event = std::move(event_);
  std::string data = std::move(data_);
  const bool has_data = has_data_;
  event_.clear();
  data_.clear();
  has_data_ = false;
  if (event == "error") {
    error_ = absl::UnavailableError(
        absl::StrCat("the model's stream ended with an error: ", ErrorMessage(data)));
    return;
  }
  if (!has_data || done_) return;
  if (absl::StripAsciiWhitespace(ToAbsl(data)) == "[DONE]") {
    done_ = true;
    return;
  }
  boost::system::error_code ec;
  json::value chunk = json::parse(data, ec);
  if (ec || !chunk.is_object()) {
    error_ =
        absl::UnavailableError(absl::StrCat("the model's stream carried a chunk that is not "
                                            "JSON: ",
                                            data.substr(0, 200)));
    return;
  }
  if (Object(chunk.as_object(), "error") != nullptr) {
    error_ = absl::UnavailableError(
        absl::StrCat("the model's stream ended with an error: ", ErrorMessage(data)));
    return;
  }
  Chunk(chunk.as_object());
}

void ChatStreamAssembler::Chunk(const json::object& chunk) {
  if (id_.empty()) id_ = std::string(String(chunk, "id"));
  if (std::string_view model = String(chunk, "model"); !model.empty()) model_ = model;
  if (const json::value* created = chunk.if_contains("created");
      created != nullptr && created->is_int64() && created_ == 0) {
    created_ = created->as_int64();
  }
  if (const json::value* usage = chunk.if_contains("usage"); usage && usage->is_object()) {
    usage_ = *usage;
  }
  const json::value* choices = chunk.if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return;
  for (const json::value& choice_value : choices->as_array()) {
    if (!choice_value.is_object()) continue;
    const json::object& choice = choice_value.as_object();
    if (const json::value* index = choice.if_contains("index");
        index != nullptr && index->is_int64() && index->as_int64() != 0) {
      continue;  // One choice is asked for; others are not ours.
    }
    if (std::string_view finish = String(choice, "finish_reason"); !finish.empty()) {
      finish_reason_ = finish;
    }
    const json::object* delta = Object(choice, "delta");
    if (delta == nullptr) continue;
    if (std::string_view text = String(*delta, "content"); !text.empty()) {
      content_.append(text);
      if (on_text_) on_text_(text);
    }
    const json::value* calls = delta->if_contains("tool_calls");
    if (calls == nullptr || !calls->is_array()) continue;
    for (const json::value& call_value : calls->as_array()) {
      if (!call_value.is_object()) continue;
      const json::object& call = call_value.as_object();
      int64_t index = static_cast<int64_t>(tool_calls_.size());
      if (const json::value* i = call.if_contains("index"); i != nullptr && i->is_int64()) {
        index = i->as_int64();
      }
      ToolCall& assembled = tool_calls_[index];
      if (std::string_view id = String(call, "id"); !id.empty()) assembled.id = id;
      if (const json::object* function = Object(call, "function")) {
        if (std::string_view name = String(*function, "name"); !name.empty()) {
          assembled.name.append(name);
        }
        assembled.arguments.append(String(*function, "arguments"));
      }
    }
  }
}

absl::StatusOr<std::string> ChatStreamAssembler::Finish() {
  if (error_.ok() && !pending_.empty()) {
    // A last line without its newline; an event still open ends here.
    std::string last = std::move(pending_);
    pending_.clear();
    Line(last);
  }
  if (error_.ok() && has_data_) Dispatch();
  if (!error_.ok()) return error_;
  if (finish_reason_.empty()) {
    return absl::UnavailableError("the model's stream ended before the answer was finished");
  }
  json::object message;
  message["role"] = "assistant";
  if (content_.empty() && !tool_calls_.empty()) {
    message["content"] = nullptr;
  } else {
    message["content"] = content_;
  }
  if (!tool_calls_.empty()) {
    json::array calls;
    for (const auto& [index, call] : tool_calls_) {
      calls.push_back(json::object{
          {"id", call.id},
          {"type", "function"},
          {"function", json::object{{"name", call.name}, {"arguments", call.arguments}}}});
    }
    message["tool_calls"] = std::move(calls);
  }
  json::object completion{
      {"id", id_},
      {"object", "chat.completion"},
      {"created", created_},
      {"model", model_},
      {"choices",
       json::array{json::object{
           {"index", 0}, {"message", std::move(message)}, {"finish_reason", finish_reason_}}}}};
  if (!usage_.is_null()) completion["usage"] = usage_;
  return json::serialize(completion);
}

}  // namespace flowork::agent::internal
