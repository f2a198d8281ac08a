// The mock's request path: count, route, read knobs, inject faults, answer.
#include "flowork/mockllm/mock_llm_server.h"

#include <atomic>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "answer.h"
#include "boost/json.hpp"
#include "flowork/core/http_server.h"
#include "flowork/core/internal/strings.h"
#include "knobs.h"
#include "response_plan.h"
#include "wire_format.h"

namespace flowork::mockllm {
namespace {

namespace json = boost::json;
using core::internal::ToAbsl;

enum class Endpoint {
  kHealth,
  kOpenAiModels,
  kOpenAiChat,
  kOpenAiCompletions,
  kOpenAiEmbeddings,
  kAnthropicMessages,
  kOllamaChat,
  kOllamaEmbed,
  kOllamaTags,
};

ErrorShape ShapeOfPath(std::string_view path) {
  if (absl::StartsWith(ToAbsl(path), "/api/")) return ErrorShape::kOllama;
  if (absl::StartsWith(ToAbsl(path), "/v1/messages")) return ErrorShape::kAnthropic;
  return ErrorShape::kOpenAi;
}

core::HttpResponse JsonResponse(std::string body) {
  return {
      .status = 200, .headers = {{"Content-Type", "application/json"}}, .body = std::move(body)};
}

// When a non-streamed answer of `deltas` deltas is ready: when its last
// delta would have been sent.
absl::Duration WholeAnswerDelay(const MockKnobs& knobs, size_t deltas) {
  absl::Duration delay = knobs.latency + std::max(knobs.ttft, knobs.late_first_token);
  if (deltas > 1) delay += knobs.chunk_interval * static_cast<int64_t>(deltas - 1);
  return delay;
}

class MockLlmServerImpl final : public MockLlmServer, private core::HttpHandler {
 public:
  explicit MockLlmServerImpl(const MockLlmOptions& options)
      : options_(options),
        openai_chat_(MakeOpenAiChatFormat()),
        openai_completions_(MakeOpenAiCompletionsFormat()),
        anthropic_messages_(MakeAnthropicMessagesFormat()),
        ollama_chat_(MakeOllamaChatFormat()),
        endpoints_({{"GET /healthz", Endpoint::kHealth},
                    {"GET /v1/models", Endpoint::kOpenAiModels},
                    {"POST /v1/chat/completions", Endpoint::kOpenAiChat},
                    {"POST /v1/completions", Endpoint::kOpenAiCompletions},
                    {"POST /v1/embeddings", Endpoint::kOpenAiEmbeddings},
                    {"POST /v1/messages", Endpoint::kAnthropicMessages},
                    {"POST /api/chat", Endpoint::kOllamaChat},
                    {"POST /api/embed", Endpoint::kOllamaEmbed},
                    {"GET /api/tags", Endpoint::kOllamaTags}}) {}

  ~MockLlmServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Start() {
    core::HttpServerOptions http;
    http.address = options_.address;
    http.threads = options_.threads;
    absl::StatusOr<std::unique_ptr<core::HttpServer>> server =
        core::HttpServer::Create(http, *this);
    if (!server.ok()) return server.status();
    http_ = *std::move(server);
    return absl::OkStatus();
  }

  int port() const override { return http_->port(); }

  int64_t calls() const override { return total_calls_.load(); }

  int64_t calls(std::string_view path) const override {
    absl::MutexLock lock(&mu_);
    auto it = calls_by_path_.find(ToAbsl(path));
    return it == calls_by_path_.end() ? 0 : it->second;
  }

  void Shutdown(absl::Duration grace) override {
    {
      absl::MutexLock lock(&mu_);
      if (shut_down_) return;
      shut_down_ = true;
    }
    scheduler_.DropHangs();
    if (http_ != nullptr) http_->Shutdown(grace);
    scheduler_.Stop();
  }

 private:
  void Handle(core::HttpRequest request,
              std::unique_ptr<core::HttpResponseWriter> writer) override {
    const std::string path(request.path());
    CountCall(path);
    const ErrorShape shape = ShapeOfPath(path);
    auto endpoint = endpoints_.find(absl::StrCat(request.method, " ", path));
    if (endpoint == endpoints_.end()) {
      return writer->Send(
          ErrorResponse(shape, 404, absl::StrCat("no route for ", request.method, " ", path)));
    }
    absl::StatusOr<MockKnobs> knobs = ApplyKnobHeaders(request.headers, options_.knobs);
    if (!knobs.ok()) return writer->Send(ErrorResponse(shape, 400, knobs.status().message()));
    if (knobs->hang) return scheduler_.Play(HangPlan(), std::move(writer));

    ResponsePlan plan = Respond(endpoint->second, shape, request.body, *knobs);
    if (knobs->trickle > absl::ZeroDuration()) {
      plan = TrickledPlan(std::move(plan), knobs->trickle, kTricklePieceBytes);
    }
    scheduler_.Play(std::move(plan), std::move(writer));
  }

  // The response to one request whose knobs are read, before trickling.
  ResponsePlan Respond(Endpoint endpoint, ErrorShape shape, const std::string& body,
                       const MockKnobs& knobs) {
    if (std::optional<core::HttpResponse> injected = InjectedError(shape, knobs)) {
      return WholeResponsePlan(*std::move(injected), knobs.latency);
    }
    auto error = [&](int status, absl::string_view message) {
      return WholeResponsePlan(ErrorResponse(shape, status, message), knobs.latency);
    };
    switch (endpoint) {
      case Endpoint::kHealth:
        return WholeResponsePlan(JsonResponse(R"({"status":"ok"})"), knobs.latency);
      case Endpoint::kOpenAiModels:
        return WholeResponsePlan(JsonResponse(OpenAiModelsBody(options_.models)), knobs.latency);
      case Endpoint::kOllamaTags:
        return WholeResponsePlan(JsonResponse(OllamaTagsBody(options_.models)), knobs.latency);
      default:
        break;
    }
    absl::StatusOr<json::object> request = ParseBody(body);
    if (!request.ok()) return error(400, request.status().message());
    switch (endpoint) {
      case Endpoint::kOpenAiEmbeddings:
      case Endpoint::kOllamaEmbed: {
        absl::StatusOr<std::string> embeddings =
            endpoint == Endpoint::kOpenAiEmbeddings
                ? OpenAiEmbeddingsBody(*request, options_.models.front())
                : OllamaEmbedBody(*request, options_.models.front());
        if (!embeddings.ok()) return error(400, embeddings.status().message());
        return WholeResponsePlan(JsonResponse(*std::move(embeddings)), knobs.latency);
      }
      case Endpoint::kOpenAiChat:
        return Generate(*openai_chat_, *request, knobs);
      case Endpoint::kOpenAiCompletions:
        return Generate(*openai_completions_, *request, knobs);
      case Endpoint::kAnthropicMessages:
        return Generate(*anthropic_messages_, *request, knobs);
      case Endpoint::kOllamaChat:
        return Generate(*ollama_chat_, *request, knobs);
      default:
        return error(500, "mock: unhandled endpoint");
    }
  }

  ResponsePlan Generate(const ChatFormat& format, const json::object& request,
                        const MockKnobs& knobs) {
    auto error = [&](absl::string_view message) {
      return WholeResponsePlan(ErrorResponse(format.error_shape(), 400, message), knobs.latency);
    };
    absl::StatusOr<Conversation> conversation = format.Parse(request);
    if (!conversation.ok()) return error(conversation.status().message());
    absl::StatusOr<Answer> answer = MakeAnswer(*conversation, knobs);
    if (!answer.ok()) return error(answer.status().message());
    AnswerIdentity identity;
    identity.n = next_answer_.fetch_add(1) + 1;
    identity.id = absl::StrCat("mock-", identity.n);
    identity.model = conversation->model.empty() ? options_.models.front() : conversation->model;
    const auto tool_calls = static_cast<int64_t>(answer->tool_calls.size());
    identity.first_tool_call = next_tool_call_.fetch_add(tool_calls) + 1;
    if (!conversation->stream) {
      return WholeResponsePlan(JsonResponse(format.WholeBody(*conversation, *answer, identity)),
                               WholeAnswerDelay(knobs, answer->deltas.size()));
    }
    return StreamResponsePlan(
        {{"Content-Type", format.stream_content_type()}, {"Cache-Control", "no-cache"}},
        format.Stream(*conversation, *answer, identity), knobs);
  }

  // The error x-mock-fail-first or x-mock-status asks for, if any.
  std::optional<core::HttpResponse> InjectedError(ErrorShape shape, const MockKnobs& knobs) {
    std::optional<core::HttpResponse> response;
    if (knobs.fail_first > 0) {
      int64_t seen;
      {
        absl::MutexLock lock(&mu_);
        seen = fail_counts_[knobs.fail_key]++;
      }
      if (seen < knobs.fail_first) {
        response = ErrorResponse(
            shape, 503,
            absl::StrCat("mock: injected failure ", seen + 1, " of ", knobs.fail_first,
                         " (x-mock-fail-key \"", knobs.fail_key, "\")"),
            knobs.error_code);
      }
    }
    if (!response.has_value() && knobs.status >= 400) {
      response = ErrorResponse(
          shape, knobs.status,
          absl::StrCat("mock: injected HTTP ", knobs.status, " (x-mock-status)"), knobs.error_code);
    }
    if (response.has_value() && knobs.retry_after_seconds >= 0) {
      response->headers.emplace_back("Retry-After", absl::StrCat(knobs.retry_after_seconds));
    }
    return response;
  }

  static absl::StatusOr<json::object> ParseBody(const std::string& body) {
    boost::system::error_code ec;
    json::value parsed = json::parse(body, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("invalid JSON body: ", ec.message()));
    if (!parsed.is_object()) {
      return absl::InvalidArgumentError("invalid JSON body: expected an object");
    }
    return std::move(parsed.get_object());
  }

  void CountCall(const std::string& path) {
    total_calls_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    ++calls_by_path_[path];
  }

  const MockLlmOptions options_;
  const std::unique_ptr<ChatFormat> openai_chat_;
  const std::unique_ptr<ChatFormat> openai_completions_;
  const std::unique_ptr<ChatFormat> anthropic_messages_;
  const std::unique_ptr<ChatFormat> ollama_chat_;
  const absl::flat_hash_map<std::string, Endpoint> endpoints_;  // "METHOD /path"

  std::atomic<int64_t> total_calls_{0};
  std::atomic<int64_t> next_answer_{0};
  std::atomic<int64_t> next_tool_call_{0};  // Tool calls made so far.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> calls_by_path_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> fail_counts_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;

  // Declared before the server so it outlives it: the server's writers call
  // back into the scheduler until the server has shut down.
  ResponseScheduler scheduler_;
  std::unique_ptr<core::HttpServer> http_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MockLlmServer>> MockLlmServer::Create(
    const MockLlmOptions& options) {
  if (options.models.empty()) return absl::InvalidArgumentError("models: must not be empty");
  for (size_t i = 0; i < options.models.size(); ++i) {
    if (options.models[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("models[", i, "]: must not be empty"));
    }
  }
  if (absl::Status knobs = ValidateKnobs(options.knobs); !knobs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("knobs.", knobs.message()));
  }
  auto server = std::make_unique<MockLlmServerImpl>(options);
  if (absl::Status started = server->Start(); !started.ok()) return started;
  return server;
}

}  // namespace flowork::mockllm
