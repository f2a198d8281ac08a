#include "openai_request.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "boost/json/basic_parser_impl.hpp"

namespace flowork::router {
namespace {

namespace json = boost::json;

// SAX handler: tracks depth and the key under which each value sits.
struct FactsHandler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  OpenAiRequestFacts facts;
  const char* input = nullptr;  // The text parsed, input_size bytes.
  size_t input_size = 0;
  int depth = 0;             // Objects and arrays open.
  std::string key;           // The key being read or just read.
  std::string top_key;       // The top-level key whose value we are in.
  std::string string_value;  // A top-level string being read.
  bool model_seen = false;
  bool duplicate_model = false;
  bool model_is_string = false;
  int tools_depth = -1;  // Depth of the top-level tools array, while in it.
  bool in_stream_options = false;
  bool in_response_format = false;

  bool AtTop() const { return depth == 1; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) {
    if (AtTop()) top_key = key;
    if (AtTop() && key == "tools") tools_depth = depth + 1;
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    --depth;
    if (AtTop() && top_key == "tools" && n > 0) facts.has_tools = true;
    return true;
  }
  bool on_object_begin(json::error_code&) {
    if (AtTop()) {
      top_key = key;
      in_stream_options = key == "stream_options";
      if (in_stream_options) facts.has_stream_options = true;
      in_response_format = key == "response_format";
      if (in_response_format) facts.wants_json = true;  // Unless {"type":"text"}.
    }
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth;
    if (AtTop()) {
      in_stream_options = false;
      in_response_format = false;
    }
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    string_value.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    // A string in one piece is looked at where it is; one that came in
    // parts, in string_value.
    std::string_view value(s.data(), s.size());
    const bool whole = string_value.empty();
    if (!whole) {
      string_value.append(s.data(), s.size());
      value = string_value;
    }
    if (AtTop() && key == "model") {
      if (model_seen) duplicate_model = true;
      model_seen = true;
      model_is_string = true;
      facts.model = value;
      NoteModelSpan(whole, value);
    }
    if (depth == 2 && in_response_format && key == "type" && value == "text") {
      facts.wants_json = false;
    }
    if (key == "type" && value == "image_url") facts.has_images = true;
    string_value.clear();
    return true;
  }
  // Where the model's string sits in the input, quotes included, when the
  // parser handed it over as it is there (no escapes: then it points into
  // the input). Else LocateModel finds it afterwards.
  void NoteModelSpan(bool whole, std::string_view value) {
    facts.model_begin = facts.model_end = std::string_view::npos;
    if (!whole || value.data() <= input || value.data() + value.size() >= input + input_size)
      return;
    const size_t begin = static_cast<size_t>(value.data() - input) - 1;
    const size_t end = begin + value.size() + 2;
    if (input[begin] != '"' || input[end - 1] != '"') return;
    facts.model_begin = begin;
    facts.model_end = end;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (pending_key_reset) key.clear();
    pending_key_reset = false;
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    if (pending_key_reset) key.clear();
    key.append(s.data(), s.size());
    pending_key_reset = true;
    if (key == "image_url" && depth >= 3) facts.has_images = true;
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t i, json::string_view, json::error_code&) { return OnNumber(i); }
  bool on_uint64(uint64_t u, json::string_view, json::error_code&) {
    return OnNumber(static_cast<int64_t>(std::min<uint64_t>(u, INT64_MAX)));
  }
  bool on_double(double, json::string_view, json::error_code&) {
    if (AtTop() && key == "model") NoteNonStringModel();
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    if (AtTop() && key == "stream") facts.stream = b;
    if (depth == 2 && in_stream_options && key == "include_usage") facts.asks_usage = b;
    if (AtTop() && key == "model") NoteNonStringModel();
    return true;
  }
  bool on_null(json::error_code&) {
    if (AtTop() && key == "model") NoteNonStringModel();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  bool OnNumber(int64_t value) {
    if (AtTop() && (key == "max_tokens" || key == "max_completion_tokens") && value > 0) {
      facts.max_tokens = static_cast<uint32_t>(std::min<int64_t>(value, UINT32_MAX));
    }
    if (AtTop() && key == "model") NoteNonStringModel();
    return true;
  }

  void NoteNonStringModel() {
    if (model_seen) duplicate_model = true;
    model_seen = true;
    model_is_string = false;
  }

  bool pending_key_reset = true;
};

// Finds the top-level "model" value's span in a body already validated.
void LocateModel(std::string_view body, OpenAiRequestFacts& facts) {
  int depth = 0;
  bool expect_key = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '"') {
      size_t end = i + 1;
      bool escaped = false;
      while (end < body.size() && body[end] != '"') {
        if (body[end] == '\\') {
          escaped = true;
          ++end;
        }
        ++end;
      }
      if (depth == 1 && expect_key && !escaped && body.substr(i + 1, end - i - 1) == "model") {
        size_t colon = body.find(':', end + 1);
        size_t value = body.find_first_not_of(" \t\r\n", colon + 1);
        if (value != std::string_view::npos && body[value] == '"') {
          size_t close = value + 1;
          while (close < body.size() && body[close] != '"') close += body[close] == '\\' ? 2 : 1;
          facts.model_begin = value;
          facts.model_end = close + 1;
        }
        return;
      }
      i = end;
      expect_key = false;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{';
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',') {
      expect_key = true;  // Inside an array this is ignored below by depth.
    } else if (c == ':') {
      expect_key = false;
    }
  }
}

// Appends `text` as a JSON string, quotes included.
void AppendJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

absl::StatusOr<OpenAiRequestFacts> ReadOpenAiRequest(std::string_view body) {
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || body[first] != '{') {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  json::basic_parser<FactsHandler> parser(json::parse_options{});
  parser.handler().input = body.data();
  parser.handler().input_size = body.size();
  json::error_code ec;
  const size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body is not valid JSON: ", ec.message()));
  }
  if (body.find_first_not_of(" \t\r\n", used) != std::string_view::npos) {
    return absl::InvalidArgumentError("the request body has data after its JSON object");
  }
  FactsHandler& h = parser.handler();
  if (h.duplicate_model) {
    return absl::InvalidArgumentError("the request body has more than one \"model\"");
  }
  if (!h.model_seen) return absl::InvalidArgumentError("the request body has no \"model\"");
  if (!h.model_is_string) return absl::InvalidArgumentError("\"model\" must be a string");
  if (h.facts.model_begin == std::string_view::npos) LocateModel(body, h.facts);
  return std::move(h.facts);
}

std::string SpliceModel(std::string_view body, const OpenAiRequestFacts& facts,
                        std::string_view model) {
  if (facts.model_begin == std::string_view::npos) {
    // The key itself was written with escapes: rare enough to rebuild.
    json::value tree = json::parse(json::string_view(body.data(), body.size()));
    tree.as_object()["model"] = json::string_view(model.data(), model.size());
    return json::serialize(tree);
  }
  std::string out;
  out.reserve(body.size() + model.size() + 2);
  out.append(body.substr(0, facts.model_begin));
  AppendJsonString(out, model);
  out.append(body.substr(facts.model_end));
  return out;
}

absl::StatusOr<std::string> AppendAssistantPrefill(std::string_view body,
                                                   std::string_view partial) {
  json::error_code ec;
  json::value tree = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec || !tree.is_object())
    return absl::InvalidArgumentError("the request is not a JSON object");
  json::value* messages = tree.as_object().if_contains("messages");
  if (messages == nullptr || !messages->is_array()) {
    return absl::InvalidArgumentError("the request has no \"messages\" array");
  }
  json::object prefill;
  prefill["role"] = "assistant";
  prefill["content"] = json::string_view(partial.data(), partial.size());
  messages->as_array().push_back(std::move(prefill));
  return json::serialize(tree);
}

std::string AddIncludeUsage(std::string_view body) {
  const size_t close = body.rfind('}');
  if (close == std::string_view::npos) return std::string(body);
  const size_t last = body.find_last_not_of(" \t\r\n", close == 0 ? 0 : close - 1);
  const bool empty = last != std::string_view::npos && body[last] == '{';
  std::string out(body.substr(0, close));
  out.append(empty ? "\"stream_options\":{\"include_usage\":true}"
                   : ",\"stream_options\":{\"include_usage\":true}");
  out.append(body.substr(close));
  return out;
}

}  // namespace flowork::router
