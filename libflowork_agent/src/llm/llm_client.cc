// LLM clients (HTTP and in-process) and the effect handler for model calls.

#include "flowork/agent/llm_client.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/json.hpp"
#include "chat_stream_assembler.h"
#include "flowork/core/executor.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "google/protobuf/util/json_util.h"

namespace flowork::agent {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

constexpr char kRetryAfterPayload[] = "flowork.retry_after_ms";

// The request body with "model" set to `model`; with `stream`, asking for a
// stream with usage on its last chunk.
absl::StatusOr<std::string> WithModel(const std::string& body, const std::string& model,
                                      bool stream) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) {
    return absl::InvalidArgumentError("the model request body is not a JSON object");
  }
  if (!model.empty()) parsed.as_object()["model"] = model;
  if (stream) {
    parsed.as_object()["stream"] = true;
    parsed.as_object()["stream_options"] = json::object{{"include_usage", true}};
  }
  return json::serialize(parsed);
}

// A chat completion's model and usage.
absl::StatusOr<LlmResponse> ReadCompletion(std::string body, std::string endpoint) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) {
    return absl::UnavailableError("the model's answer is not a JSON object");
  }
  LlmResponse response;
  const json::object& object = parsed.as_object();
  if (const json::value* model = object.if_contains("model"); model && model->is_string()) {
    response.model = std::string(model->as_string());
  }
  if (const json::value* usage = object.if_contains("usage"); usage && usage->is_object()) {
    auto number = [](const json::object& o, const char* key) -> int64_t {
      const json::value* v = o.if_contains(key);
      return v != nullptr && v->is_int64() ? v->as_int64() : 0;
    };
    const json::object& u = usage->as_object();
    response.usage.prompt_tokens = number(u, "prompt_tokens");
    response.usage.completion_tokens = number(u, "completion_tokens");
    if (const json::value* details = u.if_contains("prompt_tokens_details");
        details && details->is_object()) {
      response.usage.cached_tokens = number(details->as_object(), "cached_tokens");
    }
  }
  response.body = std::move(body);
  response.endpoint = std::move(endpoint);
  return response;
}

// An error answer as a Status, in the LlmClient's terms.
absl::Status ErrorFor(int status, const std::string& body, std::optional<absl::Duration> retry) {
  std::string message = body.substr(0, 300);
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (!ec && parsed.is_object()) {
    if (const json::value* error = parsed.as_object().if_contains("error");
        error && error->is_object()) {
      if (const json::value* m = error->as_object().if_contains("message"); m && m->is_string()) {
        message = std::string(m->as_string());
      }
    }
  }
  message = absl::StrCat("the model answered ", status, ": ", message);
  if (status == 429) {
    absl::Status exhausted = absl::ResourceExhaustedError(message);
    if (retry) SetLlmRetryAfter(exhausted, *retry);
    return exhausted;
  }
  if (status == 401 || status == 403) return absl::PermissionDeniedError(message);
  if (status == 404) return absl::NotFoundError(message);
  if (status >= 400 && status < 500) return absl::InvalidArgumentError(message);
  return absl::UnavailableError(message);
}

const std::string* FindHeader(const core::HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, ToAbsl(name))) return &value;
  }
  return nullptr;
}

std::optional<absl::Duration> RetryAfterHeader(const core::HttpHeaders& headers) {
  const std::string* value = FindHeader(headers, "retry-after");
  double seconds = 0;
  if (value == nullptr || !absl::SimpleAtod(*value, &seconds) || seconds < 0) return std::nullopt;
  return absl::Seconds(std::min(seconds, 3600.0));
}

bool IsEventStream(const core::HttpHeaders& headers) {
  const std::string* type = FindHeader(headers, "content-type");
  return type != nullptr && absl::StrContains(absl::AsciiStrToLower(*type), "text/event-stream");
}

// The content of a whole chat completion's first choice, "" if none.
std::string CompletionContent(const std::string& body) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return "";
  const json::value* content = parsed.find_pointer("/choices/0/message/content", ec);
  return content != nullptr && content->is_string() ? std::string(content->as_string()) : "";
}

// One answer, however it arrives; `done` runs once.
class Completion {
 public:
  explicit Completion(absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done)
      : done_(std::move(done)) {}
  void Finish(absl::StatusOr<LlmResponse> result) {
    absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done;
    {
      absl::MutexLock lock(&mu_);
      if (!done_) return;
      done = std::move(done_);
      done_ = nullptr;
    }
    std::move(done)(std::move(result));
  }
  // The answer to an HTTP exchange.
  void FinishHttp(int status, const core::HttpHeaders& headers, std::string body) {
    const std::string* endpoint = FindHeader(headers, "x-flowork-endpoint");
    if (status >= 200 && status < 300) {
      return Finish(ReadCompletion(std::move(body), endpoint ? *endpoint : ""));
    }
    Finish(ErrorFor(status, body, RetryAfterHeader(headers)));
  }
  // The answer to a streamed HTTP exchange: a 2xx event stream was fed to
  // `stream` as it came (`body` holds what was not); any other answer is in
  // `body`. A server that answered a whole completion instead still gives
  // its text to the stream's callback.
  void FinishStreamed(int status, const core::HttpHeaders& headers, std::string body,
                      internal::ChatStreamAssembler& stream) {
    if (status < 200 || status >= 300) return FinishHttp(status, headers, std::move(body));
    const std::string* endpoint = FindHeader(headers, "x-flowork-endpoint");
    if (!IsEventStream(headers)) {
      if (std::string content = CompletionContent(body); !content.empty() && !finished()) {
        stream.Text(content);
      }
      return Finish(ReadCompletion(std::move(body), endpoint ? *endpoint : ""));
    }
    stream.Feed(body);
    absl::StatusOr<std::string> whole = stream.Finish();
    if (!whole.ok()) return Finish(whole.status());
    Finish(ReadCompletion(*std::move(whole), endpoint ? *endpoint : ""));
  }
  bool finished() {
    absl::MutexLock lock(&mu_);
    return !done_;
  }

 private:
  absl::Mutex mu_;
  absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done_ ABSL_GUARDED_BY(mu_);
};

class HttpCallObserver final : public core::HttpResponseObserver {
 public:
  // `on_text` set: the answer is a stream, assembled here.
  HttpCallObserver(std::shared_ptr<Completion> completion,
                   absl::AnyInvocable<void(std::string_view)> on_text)
      : completion_(std::move(completion)) {
    if (on_text) {
      stream_ = std::make_unique<internal::ChatStreamAssembler>(
          [this, on_text = std::move(on_text)](std::string_view text) mutable {
            if (!completion_->finished()) on_text(text);
          });
    }
  }
  void OnHead(int status, const core::HttpHeaders& headers) override {
    status_ = status;
    headers_ = headers;
    feeding_ = stream_ != nullptr && status >= 200 && status < 300 && IsEventStream(headers);
  }
  void OnBody(std::string_view piece) override {
    if (feeding_) return stream_->Feed(piece);
    body_.append(piece);
  }
  void OnDone(const core::HttpCallOutcome& outcome) override {
    if (outcome.ok() && stream_ != nullptr) {
      return completion_->FinishStreamed(status_, headers_, std::move(body_), *stream_);
    }
    if (outcome.ok()) return completion_->FinishHttp(status_, headers_, std::move(body_));
    switch (outcome.failure) {
      case core::HttpCallFailure::kCancelled:
        return completion_->Finish(absl::CancelledError("the model call was cancelled"));
      case core::HttpCallFailure::kTotalTimeout:
        return completion_->Finish(absl::DeadlineExceededError(outcome.message));
      default:
        return completion_->Finish(absl::UnavailableError(outcome.message));
    }
  }

 private:
  const std::shared_ptr<Completion> completion_;
  std::unique_ptr<internal::ChatStreamAssembler> stream_;
  bool feeding_ = false;
  int status_ = 0;
  core::HttpHeaders headers_;
  std::string body_;
};

class HttpLlmCall final : public LlmCall {
 public:
  explicit HttpLlmCall(std::shared_ptr<core::HttpCall> call) : call_(std::move(call)) {}
  void Cancel() override { call_->Cancel(); }

 private:
  const std::shared_ptr<core::HttpCall> call_;
};

class HttpLlmClient final : public LlmClient {
 public:
  HttpLlmClient(const HttpLlmClientOptions& options, core::HttpClient& http)
      : options_(options), http_(http) {}

  std::shared_ptr<LlmCall> Complete(
      LlmRequest request, absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done) override {
    auto completion = std::make_shared<Completion>(std::move(done));
    core::HttpClientRequest http;
    http.method = "POST";
    http.url = absl::StrCat(absl::StripSuffix(options_.base_url, "/"), "/chat/completions");
    // A body that is not a JSON object goes as it is: the server refuses it
    // (kInvalidArgument), and `done` still never runs inside Complete.
    const bool stream = static_cast<bool>(request.on_text);
    absl::StatusOr<std::string> body = WithModel(request.body, request.model, stream);
    http.body = body.ok() ? *std::move(body) : std::move(request.body);
    http.headers = {{"Content-Type", "application/json"},
                    {"Accept", stream ? "text/event-stream" : "application/json"}};
    if (!options_.api_key.empty()) {
      http.headers.emplace_back("Authorization", absl::StrCat("Bearer ", options_.api_key));
    }
    for (const auto& header : options_.headers) http.headers.push_back(header);
    http.connect_timeout = options_.connect_timeout;
    http.first_byte_timeout = options_.first_byte_timeout;
    if (request.deadline != absl::InfiniteFuture()) {
      http.total_timeout = std::max(absl::Milliseconds(1), request.deadline - absl::Now());
    }
    return std::make_shared<HttpLlmCall>(
        http_.Start(std::move(http),
                    std::make_shared<HttpCallObserver>(completion, std::move(request.on_text))));
  }

 private:
  const HttpLlmClientOptions options_;
  core::HttpClient& http_;
};

// What the in-process router writes, collected into one answer.
struct InProcessState {
  absl::Mutex mu;
  absl::AnyInvocable<void() &&> on_cancel ABSL_GUARDED_BY(mu);
  int status ABSL_GUARDED_BY(mu) = 0;
  core::HttpHeaders headers ABSL_GUARDED_BY(mu);
  std::string body ABSL_GUARDED_BY(mu);
  std::shared_ptr<Completion> completion;
  // Streaming: the assembler of a 2xx event stream, fed as it is written;
  // its own lock, so the text callback runs without `mu` held.
  absl::Mutex stream_mu;
  std::unique_ptr<internal::ChatStreamAssembler> stream ABSL_GUARDED_BY(stream_mu);
  bool feeding ABSL_GUARDED_BY(stream_mu) = false;
};

class CapturingWriter final : public core::HttpResponseWriter {
 public:
  explicit CapturingWriter(std::shared_ptr<InProcessState> state) : state_(std::move(state)) {}
  void Send(core::HttpResponse response) override {
    absl::MutexLock lock(&state_->stream_mu);
    if (state_->stream != nullptr) {
      return state_->completion->FinishStreamed(response.status, response.headers,
                                                std::move(response.body), *state_->stream);
    }
    state_->completion->FinishHttp(response.status, response.headers, std::move(response.body));
  }
  void StartStream(int status, core::HttpHeaders headers) override {
    {
      absl::MutexLock lock(&state_->stream_mu);
      state_->feeding =
          state_->stream != nullptr && status >= 200 && status < 300 && IsEventStream(headers);
    }
    absl::MutexLock lock(&state_->mu);
    state_->status = status;
    state_->headers = std::move(headers);
  }
  bool Write(std::string chunk) override {
    {
      absl::MutexLock lock(&state_->stream_mu);
      if (state_->feeding) {
        state_->stream->Feed(chunk);
        return true;
      }
    }
    absl::MutexLock lock(&state_->mu);
    state_->body.append(chunk);
    return true;
  }
  void WriteAndNotify(std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) override {
    Write(std::move(chunk));
    std::move(on_written)(true);
  }
  void Finish() override {
    int status;
    core::HttpHeaders headers;
    std::string body;
    {
      absl::MutexLock lock(&state_->mu);
      status = state_->status;
      headers = state_->headers;
      body = std::move(state_->body);
    }
    absl::MutexLock lock(&state_->stream_mu);
    if (state_->stream != nullptr) {
      return state_->completion->FinishStreamed(status, headers, std::move(body), *state_->stream);
    }
    state_->completion->FinishHttp(status, headers, std::move(body));
  }
  void OnCancel(absl::AnyInvocable<void() &&> callback) override {
    absl::MutexLock lock(&state_->mu);
    state_->on_cancel = std::move(callback);
  }

 private:
  const std::shared_ptr<InProcessState> state_;
};

class InProcessLlmCall final : public LlmCall {
 public:
  explicit InProcessLlmCall(std::shared_ptr<InProcessState> state) : state_(std::move(state)) {}
  void Cancel() override {
    absl::AnyInvocable<void() &&> on_cancel;
    {
      absl::MutexLock lock(&state_->mu);
      on_cancel = std::move(state_->on_cancel);
      state_->on_cancel = nullptr;
    }
    if (on_cancel) std::move(on_cancel)();  // The router aborts its upstream call.
    state_->completion->Finish(absl::CancelledError("the model call was cancelled"));
  }

 private:
  const std::shared_ptr<InProcessState> state_;
};

class InProcessLlmClient final : public LlmClient {
 public:
  InProcessLlmClient(core::HttpHandler& router, std::string api_key,
                     std::unique_ptr<core::Executor> executor)
      : router_(router), api_key_(std::move(api_key)), executor_(std::move(executor)) {}

  std::shared_ptr<LlmCall> Complete(
      LlmRequest request, absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&> done) override {
    auto state = std::make_shared<InProcessState>();
    state->completion = std::make_shared<Completion>(std::move(done));
    const bool stream = static_cast<bool>(request.on_text);
    if (stream) {
      absl::MutexLock lock(&state->stream_mu);
      state->stream = std::make_unique<internal::ChatStreamAssembler>(
          [completion = state->completion.get(),
           on_text = std::move(request.on_text)](std::string_view text) mutable {
            if (!completion->finished()) on_text(text);
          });
    }
    absl::StatusOr<std::string> body = WithModel(request.body, request.model, stream);
    // Off the caller's stack: the router may answer inside Handle.
    executor_->Schedule([this, state, body = std::move(body)]() mutable {
      if (!body.ok()) return state->completion->Finish(body.status());
      core::HttpRequest http;
      http.method = "POST";
      http.target = "/v1/chat/completions";
      http.headers = {{"Content-Type", "application/json"}};
      if (!api_key_.empty()) http.headers.emplace_back("Authorization", "Bearer " + api_key_);
      http.body = *std::move(body);
      http.remote_address = "in-process";
      router_.Handle(std::move(http), std::make_unique<CapturingWriter>(state));
    });
    return std::make_shared<InProcessLlmCall>(state);
  }

 private:
  core::HttpHandler& router_;
  const std::string api_key_;
  std::unique_ptr<core::Executor> executor_;
};

class ModelEffectHandler final : public EffectHandler {
 public:
  ModelEffectHandler(LlmClient& client, TaskProgress* progress)
      : client_(client), progress_(progress) {}

  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    LlmRequest request;
    request.model = effect.model().model();
    request.deadline = call->deadline();
    if (!google::protobuf::util::MessageToJsonString(effect.model().request(), &request.body)
             .ok()) {
      return std::move(done)(absl::InvalidArgumentError("the model request is not JSON"));
    }
    if (progress_ != nullptr) {
      // Streamed: each piece goes to whoever watches the task live, and
      // counts as progress for the step's watchdog.
      request.on_text = [progress = progress_, task_id = call->task().id(),
                         call](std::string_view text) {
        call->Heartbeat();
        progress->Publish(task_id, text);
      };
    }
    const bool failure_as_result = effect.model().failure_as_result();
    std::shared_ptr<LlmCall> llm =
        client_.Complete(std::move(request), [done = std::move(done), failure_as_result,
                                              call](absl::StatusOr<LlmResponse> response) mutable {
          call->Heartbeat();
          v1::EffectResult result;
          if (response.ok()) {
            if (google::protobuf::util::JsonStringToMessage(response->body, result.mutable_model())
                    .ok()) {
              return std::move(done)(std::move(result));
            }
            response = absl::UnavailableError("the model's answer is not JSON");
          }
          if (!failure_as_result) return std::move(done)(response.status());
          auto* error = (*result.mutable_model()->mutable_struct_value()->mutable_fields())["error"]
                            .mutable_struct_value()
                            ->mutable_fields();
          (*error)["message"].set_string_value(std::string(response.status().message()));
          (*error)["code"].set_string_value(absl::StatusCodeToString(response.status().code()));
          std::move(done)(std::move(result));
        });
    call->OnCancel([llm] { llm->Cancel(); });
  }

 private:
  LlmClient& client_;
  TaskProgress* const progress_;
};

}  // namespace

std::optional<absl::Duration> LlmRetryAfter(const absl::Status& status) {
  const auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t millis = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &millis)) return std::nullopt;
  return absl::Milliseconds(millis);
}

void SetLlmRetryAfter(absl::Status& status, absl::Duration wait) {
  status.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(wait))));
}

absl::StatusOr<std::unique_ptr<LlmClient>> CreateHttpLlmClient(const HttpLlmClientOptions& options,
                                                               core::HttpClient& http) {
  if (!absl::StartsWith(options.base_url, "http://") &&
      !absl::StartsWith(options.base_url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url: \"", options.base_url, "\" is not an http(s) URL"));
  }
  return std::make_unique<HttpLlmClient>(options, http);
}

std::unique_ptr<LlmClient> CreateInProcessLlmClient(core::HttpHandler& router,
                                                    std::string api_key) {
  auto executor = core::CreateThreadPoolExecutor({.threads = 1});
  return std::make_unique<InProcessLlmClient>(router, std::move(api_key), *std::move(executor));
}

std::unique_ptr<EffectHandler> CreateModelEffectHandler(LlmClient& client, TaskProgress* progress) {
  return std::make_unique<ModelEffectHandler>(client, progress);
}

}  // namespace flowork::agent
