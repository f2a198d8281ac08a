// Errors, embeddings, model lists and the request readers the formats share.
#include "wire_format.h"

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/core/internal/strings.h"

namespace flowork::mockllm {

namespace json = boost::json;
using core::internal::ToAbsl;

namespace {

std::string OpenAiErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string AnthropicErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// The inputs of an embeddings request: a string or an array of strings.
absl::StatusOr<std::vector<std::string>> EmbeddingInputs(const json::object& request) {
  const json::value* input = request.if_contains("input");
  std::vector<std::string> inputs;
  if (input != nullptr && input->is_string()) {
    inputs.emplace_back(input->get_string());
    return inputs;
  }
  const json::array* array = input != nullptr ? input->if_array() : nullptr;
  if (array == nullptr) {
    return absl::InvalidArgumentError("input: expected a string or an array of strings");
  }
  if (array->empty()) return absl::InvalidArgumentError("input: must not be empty");
  for (size_t i = 0; i < array->size(); ++i) {
    const json::string* text = (*array)[i].if_string();
    if (text == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("input[", i, "]: expected a string"));
    }
    inputs.emplace_back(*text);
  }
  return inputs;
}

absl::StatusOr<int> EmbeddingDimensions(const json::object& request) {
  absl::StatusOr<std::optional<int>> dimensions = wire::OptionalInt(request, "dimensions", 1);
  if (!dimensions.ok()) return dimensions.status();
  const int value = dimensions->value_or(8);
  if (value > 4096) return absl::InvalidArgumentError("dimensions: at most 4096");
  return value;
}

json::array NumberArray(const std::vector<double>& values) {
  json::array array;
  array.reserve(values.size());
  for (double v : values) array.emplace_back(v);
  return array;
}

// OpenAI's base64 encoding: the vector as little-endian float32, base64.
std::string Base64Floats(const std::vector<double>& values) {
  std::string bytes;
  bytes.reserve(values.size() * 4);
  for (double v : values) {
    const float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<char>(bits >> shift));
  }
  return absl::Base64Escape(bytes);
}

}  // namespace

core::HttpResponse ErrorResponse(ErrorShape shape, int status, absl::string_view message_view,
                                 absl::string_view openai_code) {
  const std::string message(message_view);
  json::value body;
  switch (shape) {
    case ErrorShape::kOpenAi:
      body = {{"error",
               {{"message", message},
                {"type", OpenAiErrorType(status)},
                {"param", nullptr},
                {"code", openai_code.empty() ? json::value(nullptr)
                                             : json::value(std::string(openai_code))}}}};
      break;
    case ErrorShape::kAnthropic:
      body = {{"type", "error"},
              {"error", {{"type", AnthropicErrorType(status)}, {"message", message}}}};
      break;
    case ErrorShape::kOllama:
      body = {{"error", message}};
      break;
  }
  return {.status = status,
          .headers = {{"Content-Type", "application/json"}},
          .body = json::serialize(body)};
}

absl::StatusOr<std::string> OpenAiEmbeddingsBody(const json::object& request,
                                                 std::string_view default_model) {
  absl::StatusOr<std::vector<std::string>> inputs = EmbeddingInputs(request);
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<int> dimensions = EmbeddingDimensions(request);
  if (!dimensions.ok()) return dimensions.status();
  absl::StatusOr<std::optional<std::string>> model = wire::OptionalString(request, "model");
  if (!model.ok()) return model.status();
  absl::StatusOr<std::optional<std::string>> encoding =
      wire::OptionalString(request, "encoding_format");
  if (!encoding.ok()) return encoding.status();
  const std::string format = encoding->value_or("float");
  if (format != "float" && format != "base64") {
    return absl::InvalidArgumentError(
        absl::StrCat("encoding_format: expected \"float\" or \"base64\", got \"", format, "\""));
  }
  json::array data;
  int prompt_tokens = 0;
  for (size_t i = 0; i < inputs->size(); ++i) {
    const std::vector<double> vector = EmbeddingOf((*inputs)[i], *dimensions);
    prompt_tokens += CountWords((*inputs)[i]);
    json::value embedding =
        format == "base64" ? json::value(Base64Floats(vector)) : json::value(NumberArray(vector));
    data.push_back(json::object{{"object", "embedding"},
                                {"index", static_cast<int64_t>(i)},
                                {"embedding", std::move(embedding)}});
  }
  return json::serialize(
      json::object{{"object", "list"},
                   {"data", std::move(data)},
                   {"model", model->value_or(std::string(default_model))},
                   {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
}

absl::StatusOr<std::string> OllamaEmbedBody(const json::object& request,
                                            std::string_view default_model) {
  absl::StatusOr<std::vector<std::string>> inputs = EmbeddingInputs(request);
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<int> dimensions = EmbeddingDimensions(request);
  if (!dimensions.ok()) return dimensions.status();
  absl::StatusOr<std::optional<std::string>> model = wire::OptionalString(request, "model");
  if (!model.ok()) return model.status();
  json::array embeddings;
  int prompt_tokens = 0;
  for (const std::string& input : *inputs) {
    embeddings.push_back(NumberArray(EmbeddingOf(input, *dimensions)));
    prompt_tokens += CountWords(input);
  }
  return json::serialize(json::object{{"model", model->value_or(std::string(default_model))},
                                      {"embeddings", std::move(embeddings)},
                                      {"total_duration", 0},
                                      {"load_duration", 0},
                                      {"prompt_eval_count", prompt_tokens}});
}

std::string OpenAiModelsBody(const std::vector<std::string>& models) {
  json::array data;
  for (const std::string& id : models) {
    data.push_back(json::object{{"id", id},
                                {"object", "model"},
                                {"created", kCreatedUnixSeconds},
                                {"owned_by", "flowork-mockllm"}});
  }
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::string OllamaTagsBody(const std::vector<std::string>& models) {
  json::array list;
  for (const std::string& name : models) {
    list.push_back(json::object{
        {"name", name}, {"model", name}, {"modified_at", kCreatedRfc3339}, {"size", 0}});
  }
  return json::serialize(json::object{{"models", std::move(list)}});
}

namespace wire {

absl::StatusOr<std::optional<std::string>> OptionalString(const json::object& object,
                                                          std::string_view field) {
  const json::value* value = object.if_contains(field);
  if (value == nullptr || value->is_null()) return std::nullopt;
  if (!value->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field), ": expected a string"));
  }
  return std::string(value->get_string());
}

absl::StatusOr<std::optional<bool>> OptionalBool(const json::object& object,
                                                 std::string_view field) {
  const json::value* value = object.if_contains(field);
  if (value == nullptr || value->is_null()) return std::nullopt;
  if (!value->is_bool()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field), ": expected true or false"));
  }
  return value->get_bool();
}

absl::StatusOr<std::optional<int>> OptionalInt(const json::object& object, std::string_view field,
                                               int minimum) {
  const json::value* value = object.if_contains(field);
  if (value == nullptr || value->is_null()) return std::nullopt;
  int64_t number = 0;
  if (value->is_int64()) {
    number = value->get_int64();
  } else if (value->is_uint64()) {
    number = INT64_MAX;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field), ": expected an integer"));
  }
  if (number < minimum) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field), ": must be >= ", minimum));
  }
  return static_cast<int>(std::min<int64_t>(number, INT32_MAX));
}

absl::StatusOr<bool> NonEmptyArray(const json::object& object, std::string_view field) {
  const json::value* value = object.if_contains(field);
  if (value == nullptr || value->is_null()) return false;
  if (!value->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field), ": expected an array"));
  }
  return !value->get_array().empty();
}

std::string ContentText(const json::value& content) {
  if (const json::string* text = content.if_string()) return std::string(*text);
  const json::array* parts = content.if_array();
  if (parts == nullptr) return "";
  std::vector<std::string> texts;
  for (const json::value& part : *parts) {
    if (part.is_string()) {
      texts.emplace_back(part.get_string());
      continue;
    }
    const json::object* object = part.if_object();
    if (object == nullptr) continue;
    if (const json::value* text = object->if_contains("text"); text != nullptr && text->is_string())
      texts.emplace_back(text->get_string());
    if (const json::value* nested = object->if_contains("content"); nested != nullptr)
      texts.push_back(ContentText(*nested));
  }
  return absl::StrJoin(texts, "\n");
}

std::string Json(const json::value& value, std::string_view suffix) {
  std::string text = json::serialize(value);
  text.append(suffix);
  return text;
}

}  // namespace wire

}  // namespace flowork::mockllm
