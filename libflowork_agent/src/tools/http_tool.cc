#include "tools/http_tool.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/agent/json_schema.h"
#include "flowork/core/internal/status_macros.h"
#include "tools/address_policy.h"

namespace flowork::agent::tools {

using google::protobuf::Value;

namespace {

bool IsPlaceholderName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// "a/{city}?q={q}" -> literal "a/", placeholder "city", literal "?q=", ...
// A '{' that does not open a valid placeholder is literal text.
std::vector<TemplatePart> SplitTemplate(absl::string_view text) {
  std::vector<TemplatePart> parts;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '{') {
      const size_t close = text.find('}', i + 1);
      if (close != absl::string_view::npos) {
        const absl::string_view name = text.substr(i + 1, close - i - 1);
        if (IsPlaceholderName(name)) {
          if (!literal.empty()) parts.push_back({false, std::move(literal)});
          literal.clear();
          parts.push_back({true, std::string(name)});
          i = close + 1;
          continue;
        }
      }
    }
    literal.push_back(text[i++]);
  }
  if (!literal.empty()) parts.push_back({false, std::move(literal)});
  return parts;
}

// Header values: literal text and "${env:NAME}" / "${file:/path}" references.
absl::StatusOr<std::vector<TemplatePart>> SplitSecrets(absl::string_view text,
                                                       const std::string& field) {
  std::vector<TemplatePart> parts;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("${", i);
    if (open == absl::string_view::npos) {
      parts.push_back({false, std::string(text.substr(i))});
      break;
    }
    if (open > i) parts.push_back({false, std::string(text.substr(i, open - i))});
    const size_t close = text.find('}', open);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": unclosed \"${\""));
    }
    const absl::string_view ref = text.substr(open + 2, close - open - 2);
    if (!(absl::StartsWith(ref, "env:") && ref.size() > 4) &&
        !(absl::StartsWith(ref, "file:/") && ref.size() > 6)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"${", std::string(ref), "}\" is neither ${env:NAME} nor ${file:/path}"));
    }
    parts.push_back({true, std::string(ref)});
    i = close + 1;
  }
  return parts;
}

std::string PercentEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

const Value* Argument(const Value& arguments, const std::string& name) {
  if (!arguments.has_struct_value()) return nullptr;
  auto it = arguments.struct_value().fields().find(name);
  return it == arguments.struct_value().fields().end() ? nullptr : &it->second;
}

absl::StatusOr<std::string> ArgumentText(const Value& arguments, const std::string& name,
                                         absl::string_view needed_by) {
  const Value* v = Argument(arguments, name);
  if (v == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("arguments.", name, ": missing; ", std::string(needed_by), " needs it"));
  }
  switch (v->kind_case()) {
    case Value::kStringValue:
      return v->string_value();
    case Value::kNumberValue:
    case Value::kBoolValue:
      return JsonValueToString(*v);
    default:
      return absl::InvalidArgumentError(absl::StrCat("arguments.", name,
                                                     ": must be a string, number or boolean for ",
                                                     std::string(needed_by)));
  }
}

absl::Status FillBody(Value& node, const Value& arguments) {
  switch (node.kind_case()) {
    case Value::kStringValue: {
      std::vector<TemplatePart> parts = SplitTemplate(node.string_value());
      if (parts.size() == 1 && parts[0].placeholder) {
        const Value* v = Argument(arguments, parts[0].text);
        if (v == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("arguments.", parts[0].text, ": missing; body_template needs it"));
        }
        node = *v;
        return absl::OkStatus();
      }
      std::string text;
      for (const TemplatePart& part : parts) {
        if (!part.placeholder) {
          text += part.text;
          continue;
        }
        FLOWORK_ASSIGN_OR_RETURN(std::string value,
                                 ArgumentText(arguments, part.text, "body_template"));
        text += value;
      }
      node.set_string_value(text);
      return absl::OkStatus();
    }
    case Value::kListValue:
      for (Value& item : *node.mutable_list_value()->mutable_values()) {
        FLOWORK_RETURN_IF_ERROR(FillBody(item, arguments));
      }
      return absl::OkStatus();
    case Value::kStructValue:
      for (auto& [key, item] : *node.mutable_struct_value()->mutable_fields()) {
        FLOWORK_RETURN_IF_ERROR(FillBody(item, arguments));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<std::string> ResolveSecret(const std::string& ref, const std::string& field) {
  if (absl::StartsWith(ref, "env:")) {
    const char* value = std::getenv(ref.substr(4).c_str());
    if (value == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(field, ": secret ${", ref, "} is not set"));
    }
    return std::string(value);
  }
  std::ifstream in(ref.substr(5), std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": secret ${", ref, "} cannot be read"));
  }
  std::string value = content.str();
  while (!value.empty() && absl::ascii_isspace(static_cast<unsigned char>(value.back()))) {
    value.pop_back();
  }
  return value;
}

std::string Redact(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (!secret.empty()) absl::StrReplaceAll({{secret, "[redacted]"}}, &text);
  }
  return text;
}

// Collects one response into the tool's output.
class ResponseCollector final : public core::HttpResponseObserver {
 public:
  ResponseCollector(std::string method, std::size_t max_bytes, std::vector<std::string> secrets,
                    std::shared_ptr<ToolContext> context, ToolDone done)
      : method_(std::move(method)),
        max_bytes_(max_bytes),
        secrets_(std::move(secrets)),
        context_(std::move(context)),
        done_(std::move(done)) {}

  void SetCall(std::shared_ptr<core::HttpCall> call) {
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      call_ = call;
      cancel = truncated_;
    }
    if (cancel) call->Cancel();
  }

  void OnHead(int status, const core::HttpHeaders& headers) override {
    status_ = status;
    for (const auto& [name, value] : headers) {
      if (absl::EqualsIgnoreCase(name, "content-type")) content_type_ = value;
    }
    context_->Heartbeat();
  }

  void OnBody(std::string_view piece) override {
    if (truncated_) return;
    context_->Heartbeat();
    if (body_.size() + piece.size() <= max_bytes_) {
      body_.append(piece);
      return;
    }
    body_.append(piece.substr(0, max_bytes_ - body_.size()));
    // Enough: stop the transfer.
    std::shared_ptr<core::HttpCall> call;
    {
      absl::MutexLock lock(&mu_);
      truncated_ = true;
      call = call_;
    }
    if (call) call->Cancel();
  }

  void OnDone(const core::HttpCallOutcome& outcome) override {
    {
      absl::MutexLock lock(&mu_);
      call_.reset();  // The call holds us: no cycle.
    }
    ToolDone done = std::move(done_);
    if (!outcome.ok() && !(truncated_ && outcome.failure == core::HttpCallFailure::kCancelled)) {
      if (outcome.failure == core::HttpCallFailure::kCancelled) {
        return std::move(done)(absl::CancelledError("HTTP request cancelled"));
      }
      return std::move(done)(absl::UnavailableError(
          Redact(absl::StrCat("HTTP ", method_, " failed (",
                              core::HttpCallFailureName(outcome.failure), "): ", outcome.message),
                 secrets_)));
    }
    if (truncated_) {
      // A secret cut in two by the limit: drop its first part too.
      for (const std::string& secret : secrets_) {
        if (secret.empty()) continue;
        for (size_t k = std::min(secret.size() - 1, body_.size()); k > 0; --k) {
          if (absl::EndsWith(body_, absl::string_view(secret).substr(0, k))) {
            body_.resize(body_.size() - k);
            break;
          }
        }
      }
    }
    std::string body = Redact(std::move(body_), secrets_);
    if (status_ < 200 || status_ > 299) {
      constexpr size_t kShown = 1024;
      std::string shown = body.substr(0, kShown);
      if (body.size() > kShown) shown += "...";
      return std::move(done)(absl::FailedPreconditionError(
          absl::StrCat("HTTP ", status_, shown.empty() ? "" : ": ", shown)));
    }
    Value output;
    auto& fields = *output.mutable_struct_value()->mutable_fields();
    fields["status"].set_number_value(status_);
    absl::StatusOr<Value> json = absl::InvalidArgumentError("not JSON");
    if (!truncated_ && absl::StrContains(absl::AsciiStrToLower(content_type_), "json")) {
      json = ParseJsonValue(body);
    }
    if (json.ok()) {
      fields["body"] = *std::move(json);
    } else {
      fields["body"].set_string_value(std::move(body));
    }
    if (truncated_) fields["truncated"].set_bool_value(true);
    std::move(done)(std::move(output));
  }

 private:
  const std::string method_;
  const std::size_t max_bytes_;
  const std::vector<std::string> secrets_;
  std::shared_ptr<ToolContext> context_;
  ToolDone done_;
  // Written on the client's I/O thread only (calls never overlap).
  int status_ = 0;
  std::string content_type_;
  std::string body_;
  absl::Mutex mu_;
  bool truncated_ = false;  // Written under mu_, read on the I/O thread.
  std::shared_ptr<core::HttpCall> call_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::shared_ptr<const HttpToolRunner>> HttpToolRunner::Create(
    const v1::HttpTool& config, const Limits& limits, core::HttpClient& client,
    core::Executor& blocking) {
  std::shared_ptr<HttpToolRunner> runner(new HttpToolRunner(config, limits, client, blocking));
  runner->method_ = absl::AsciiStrToUpper(config.method().empty() ? "GET" : config.method());
  if (runner->method_ != "GET" && runner->method_ != "POST" && runner->method_ != "PUT" &&
      runner->method_ != "PATCH" && runner->method_ != "DELETE") {
    return absl::InvalidArgumentError(
        absl::StrCat("method: \"", config.method(), "\" is not GET, POST, PUT, PATCH or DELETE"));
  }

  // scheme://authority then path and query; placeholders only after the authority.
  absl::string_view url = config.url_template();
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError("url_template: the scheme must be http:// or https://");
  }
  const size_t end = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, end);
  absl::string_view path = end == absl::string_view::npos ? "" : rest.substr(end);
  if (authority.find_first_of("{}@%") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "url_template: the host part may hold no placeholder, user info or escapes");
  }
  if (path.find('#') != absl::string_view::npos) {
    return absl::InvalidArgumentError("url_template: fragments (#) are not sent; remove it");
  }
  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("url_template: unclosed '['");
    }
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port[0] != ':') {
      return absl::InvalidArgumentError("url_template: junk after ']'");
    }
  } else if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    port = host.substr(colon);
    host = host.substr(0, colon);
  }
  if (!port.empty()) {
    int number = 0;
    if (!absl::SimpleAtoi(port.substr(1), &number) || number <= 0 || number > 65535) {
      return absl::InvalidArgumentError("url_template: bad port");
    }
  }
  if (host.empty()) return absl::InvalidArgumentError("url_template: no host");
  runner->host_ = absl::AsciiStrToLower(host);
  runner->scheme_host_port_ = std::string(url.substr(0, url.size() - path.size()));
  if (!path.empty() && path[0] == '?') runner->scheme_host_port_ += "/";
  runner->path_ = SplitTemplate(path);

  if (config.allowed_hosts().empty()) {
    return absl::InvalidArgumentError("allowed_hosts: empty; list the hosts this tool may reach");
  }
  bool allowed = false;
  for (const std::string& pattern : config.allowed_hosts()) {
    allowed = allowed || HostMatches(runner->host_, pattern);
  }
  if (!allowed) {
    return absl::InvalidArgumentError(
        absl::StrCat("url_template: host \"", runner->host_, "\" is not in allowed_hosts"));
  }

  // Sorted, so requests are the same every time.
  std::vector<std::pair<std::string, std::string>> headers(config.headers().begin(),
                                                           config.headers().end());
  std::sort(headers.begin(), headers.end());
  for (const auto& [name, value] : headers) {
    const std::string field = absl::StrCat("headers.", name);
    if (name.empty() || name.find_first_of(" :\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": not a valid header"));
    }
    if (absl::EqualsIgnoreCase(name, "host") || absl::EqualsIgnoreCase(name, "content-length") ||
        absl::EqualsIgnoreCase(name, "connection") ||
        absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": set by the client, not by config"));
    }
    FLOWORK_ASSIGN_OR_RETURN(std::vector<TemplatePart> parts, SplitSecrets(value, field));
    runner->headers_.push_back({name, std::move(parts)});
  }

  if (!config.body_template().empty()) {
    absl::StatusOr<Value> body = ParseJsonValue(config.body_template());
    if (!body.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("body_template: ", body.status().message()));
    }
    runner->has_body_template_ = true;
    runner->body_template_ = *std::move(body);
  }
  if (config.timeout().seconds() < 0 || config.timeout().nanos() < 0) {
    return absl::InvalidArgumentError("timeout: negative");
  }
  return std::shared_ptr<const HttpToolRunner>(std::move(runner));
}

void HttpToolRunner::Call(const Value& arguments, std::shared_ptr<ToolContext> context,
                          ToolDone done) const {
  std::string url = scheme_host_port_;
  for (const TemplatePart& part : path_) {
    if (!part.placeholder) {
      url += part.text;
      continue;
    }
    absl::StatusOr<std::string> text = ArgumentText(arguments, part.text, "url_template");
    if (!text.ok()) return std::move(done)(text.status());
    url += PercentEncode(*text);
  }
  std::string body;
  if (has_body_template_) {
    Value filled = body_template_;
    if (absl::Status s = FillBody(filled, arguments); !s.ok()) return std::move(done)(s);
    body = JsonValueToString(filled);
  } else if (method_ == "POST" || method_ == "PUT" || method_ == "PATCH") {
    body = JsonValueToString(arguments);
  }
  // Secret files and DNS block: off the caller's (the runtime's) thread.
  blocking_.Schedule([self = shared_from_this(), url = std::move(url), body = std::move(body),
                      context = std::move(context), done = std::move(done)]() mutable {
    self->Start(std::move(url), std::move(body), std::move(context), std::move(done));
  });
}

void HttpToolRunner::Start(std::string url, std::string body, std::shared_ptr<ToolContext> context,
                           ToolDone done) const {
  if (context->cancelled()) return std::move(done)(absl::CancelledError("cancelled"));
  core::HttpClientRequest request;
  request.method = method_;
  request.url = std::move(url);
  request.body = std::move(body);
  std::vector<std::string> secrets;
  bool has_content_type = false;
  for (const Header& header : headers_) {
    std::string value;
    for (const TemplatePart& part : header.value) {
      if (!part.placeholder) {
        value += part.text;
        continue;
      }
      absl::StatusOr<std::string> secret =
          ResolveSecret(part.text, absl::StrCat("headers.", header.name));
      if (!secret.ok()) return std::move(done)(secret.status());
      if (secret->find_first_of("\r\n") != std::string::npos) {
        return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
            "headers.", header.name, ": secret ${", part.text, "} holds a line break")));
      }
      value += *secret;
      secrets.push_back(*std::move(secret));
    }
    has_content_type = has_content_type || absl::EqualsIgnoreCase(header.name, "content-type");
    request.headers.emplace_back(header.name, std::move(value));
  }
  if (!request.body.empty() && !has_content_type) {
    request.headers.emplace_back("Content-Type", "application/json");
  }

  absl::StatusOr<std::vector<std::string>> addresses = ResolveHost(host_);
  if (!addresses.ok()) return std::move(done)(addresses.status());
  if (!config_.allow_private_addresses()) {
    for (const std::string& address : *addresses) {
      if (std::optional<std::string> kind = NonPublicAddressKind(address)) {
        return std::move(done)(absl::PermissionDeniedError(
            absl::StrCat("host \"", host_, "\" resolves to ", address, ", a ", *kind,
                         " address; this tool may reach public addresses only")));
      }
    }
  }
  // Connect to exactly the addresses just checked: no second lookup.
  request.connect_addresses = *std::move(addresses);

  absl::Duration timeout = limits_.default_timeout;
  if (config_.has_timeout()) {
    timeout =
        absl::Seconds(config_.timeout().seconds()) + absl::Nanoseconds(config_.timeout().nanos());
  }
  timeout = std::min(timeout, context->deadline() - absl::Now());
  if (timeout <= absl::ZeroDuration()) {
    return std::move(done)(absl::DeadlineExceededError("no time left for the HTTP request"));
  }
  request.total_timeout = timeout;
  request.first_byte_timeout = timeout;
  request.idle_timeout = timeout;
  request.connect_timeout = std::min(request.connect_timeout, timeout);

  if (context->cancelled()) return std::move(done)(absl::CancelledError("cancelled"));
  auto collector = std::make_shared<ResponseCollector>(
      method_, limits_.max_response_bytes, std::move(secrets), context, std::move(done));
  std::shared_ptr<core::HttpCall> call = client_.Start(std::move(request), collector);
  collector->SetCall(call);
  context->OnCancel([weak = std::weak_ptr<core::HttpCall>(call)] {
    if (auto call = weak.lock()) call->Cancel();
  });
}

}  // namespace flowork::agent::tools
