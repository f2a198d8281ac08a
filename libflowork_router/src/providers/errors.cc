// Error bodies: whatever the upstream said (OpenAI, Anthropic or Ollama
// shape, plain text, or nothing) -> the front's error shape.
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"
#include "providers/json_wire.h"
#include "providers/translation.h"

namespace flowork::router {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;
using core::internal::ToStd;
using wire::FindObject;
using wire::FindString;
using wire::J;
using wire::View;

// Plain-text bodies (an HTML error page, say) are kept only this long.
constexpr size_t kMaxTextMessage = 1000;

// What an upstream error body says.
struct UpstreamError {
  std::string message;
  std::string type;             // "" when the body named none.
  json::value param = nullptr;  // OpenAI only.
  json::value code = nullptr;   // OpenAI only.
};

UpstreamError ReadError(int status, std::string_view body) {
  UpstreamError error;
  std::optional<json::value> parsed = wire::ParseJson(body);
  const json::object* object = parsed.has_value() ? parsed->if_object() : nullptr;
  if (object != nullptr) {
    const json::value* inner = object->if_contains("error");
    if (inner != nullptr && inner->is_object()) {
      // OpenAI {"error":{...}} and Anthropic {"type":"error","error":{...}}.
      const json::object& details = inner->get_object();
      error.message = wire::StringOr(details, "message");
      error.type = wire::StringOr(details, "type");
      if (const json::value* param = details.if_contains("param")) error.param = *param;
      if (const json::value* code = details.if_contains("code")) error.code = *code;
    } else if (inner != nullptr && inner->is_string()) {
      error.message = View(inner->get_string());  // Ollama.
    } else if (const json::string* message = FindString(*object, "message")) {
      error.message = View(*message);
    } else if (const json::value* detail = object->if_contains("detail")) {
      error.message = detail->is_string() ? std::string(View(detail->get_string()))
                                          : wire::Serialize(*detail);  // FastAPI servers.
    }
  }
  if (error.message.empty() && object == nullptr) {
    error.message = ToStd(absl::StripAsciiWhitespace(ToAbsl(body)));
    if (error.message.size() > kMaxTextMessage) {
      size_t cut = kMaxTextMessage;
      // Not inside a UTF-8 sequence.
      while (cut > 0 && (static_cast<unsigned char>(error.message[cut]) & 0xC0) == 0x80) --cut;
      error.message.resize(cut);
    }
  }
  if (error.message.empty()) error.message = absl::StrCat("upstream answered HTTP ", status);
  return error;
}

std::string_view OpenAiTypeForStatus(int status) {
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
      return status >= 400 && status < 500 ? "invalid_request_error" : "server_error";
  }
}

std::string_view AnthropicTypeForStatus(int status) {
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
      return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

bool IsAnthropicType(std::string_view type) {
  for (std::string_view known :
       {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "billing_error",
        "timeout_error"}) {
    if (type == known) return true;
  }
  return false;
}

std::string OpenAiError(int status, std::string_view body) {
  UpstreamError error = ReadError(status, body);
  std::string_view type = error.type;
  if (type == "api_error" || type == "overloaded_error") type = "server_error";
  if (type.empty()) type = OpenAiTypeForStatus(status);
  return wire::Serialize(json::object{{"error",
                                       {{"message", error.message},
                                        {"type", J(type)},
                                        {"param", error.param},
                                        {"code", error.code}}}});
}

std::string AnthropicError(int status, std::string_view body) {
  UpstreamError error = ReadError(status, body);
  const std::string_view type =
      IsAnthropicType(error.type) ? std::string_view(error.type) : AnthropicTypeForStatus(status);
  return wire::Serialize(
      json::object{{"type", "error"}, {"error", {{"type", J(type)}, {"message", error.message}}}});
}

}  // namespace

std::string ErrorToOpenAi(int status, std::string_view body) {
  try {
    return OpenAiError(status, body);
  } catch (const std::exception&) {
    return R"({"error":{"message":"upstream error","type":"server_error","param":null,"code":null}})";
  }
}

std::string ErrorToAnthropic(int status, std::string_view body) {
  try {
    return AnthropicError(status, body);
  } catch (const std::exception&) {
    return R"({"type":"error","error":{"type":"api_error","message":"upstream error"}})";
  }
}

}  // namespace flowork::router
