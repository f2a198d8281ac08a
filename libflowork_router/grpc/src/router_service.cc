#include "flowork/router/grpc/router_service.h"

#include <atomic>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "chat_codec.h"

namespace flowork::router {
namespace {

using Metadata = std::vector<std::pair<std::string, std::string>>;

// The call metadata the gateway reads as HTTP headers.
constexpr const char* kForwardedMetadata[] = {"authorization",     "x-api-key",    "x-flowork-zone",
                                              "x-flowork-session", "x-request-id", "traceparent"};

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// gRPC refuses metadata values outside printable ASCII.
bool PrintableAscii(const std::string& value) {
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return !value.empty();
}

// The answer's x-request-id and x-flowork-endpoint, for initial metadata.
Metadata AnswerMetadata(const core::HttpHeaders& headers) {
  Metadata metadata;
  for (const char* name : {"x-request-id", "x-flowork-endpoint"}) {
    std::string value = codec::HeaderValue(headers, name);
    if (PrintableAscii(value)) metadata.emplace_back(name, std::move(value));
  }
  return metadata;
}

// A failure's retry-after and error code, for trailing metadata.
Metadata FailureMetadata(const codec::GatewayFailure& failure) {
  Metadata metadata;
  if (PrintableAscii(failure.retry_after))
    metadata.emplace_back("retry-after", failure.retry_after);
  if (PrintableAscii(failure.error_code)) {
    metadata.emplace_back("x-flowork-error-code", failure.error_code);
  }
  return metadata;
}

core::HttpRequest GatewayRequest(const grpc::CallbackServerContext& context, std::string target,
                                 std::string body) {
  core::HttpRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.headers = {{"Content-Type", "application/json"}};
  const auto& client = context.client_metadata();
  for (const char* name : kForwardedMetadata) {
    auto it = client.find(name);
    if (it != client.end()) {
      request.headers.emplace_back(name, std::string(it->second.data(), it->second.size()));
    }
  }
  request.body = std::move(body);
  request.remote_address = "grpc:" + context.peer();
  return request;
}

// One RPC's exchange with the gateway, as the gateway's writer reports it.
// Thread-safe: the gateway calls from its threads, gRPC from its own.
class GatewayCall : public std::enable_shared_from_this<GatewayCall> {
 public:
  virtual ~GatewayCall() = default;

  // The gateway's side, through GatewayWriter.
  virtual void OnWhole(core::HttpResponse response) = 0;
  virtual void OnStreamStart(int status, core::HttpHeaders headers) = 0;
  // False once the caller is gone.
  virtual bool OnStreamBytes(std::string bytes) = 0;
  virtual void OnStreamEnd() = 0;
  // The writer was dropped before the answer was complete.
  virtual void OnAbandoned() = 0;

  // The gateway's hook for aborting its upstream call; runs at once when
  // the caller is already gone.
  void SetOnCancel(absl::AnyInvocable<void() &&> hook) {
    {
      absl::MutexLock lock(&cancel_mu_);
      if (!cancelled_) {
        on_cancel_ = std::move(hook);
        return;
      }
    }
    std::move(hook)();
  }

  // The caller went away (gRPC OnCancel): aborts the gateway's work and
  // ends the RPC.
  void Cancel() {
    std::shared_ptr<GatewayCall> self = shared_from_this();
    absl::AnyInvocable<void() &&> hook;
    {
      absl::MutexLock lock(&cancel_mu_);
      cancelled_ = true;
      hook = std::move(on_cancel_);
      on_cancel_ = nullptr;
    }
    if (hook) std::move(hook)();
    OnCallerGone();
  }

 protected:
  virtual void OnCallerGone() = 0;

 private:
  absl::Mutex cancel_mu_;
  bool cancelled_ ABSL_GUARDED_BY(cancel_mu_) = false;
  absl::AnyInvocable<void() &&> on_cancel_ ABSL_GUARDED_BY(cancel_mu_);
};

// The in-memory HttpResponseWriter handed to the gateway.
class GatewayWriter final : public core::HttpResponseWriter {
 public:
  explicit GatewayWriter(std::shared_ptr<GatewayCall> call) : call_(std::move(call)) {}
  ~GatewayWriter() override {
    if (!complete_.load()) call_->OnAbandoned();
  }

  void Send(core::HttpResponse response) override {
    complete_.store(true);
    call_->OnWhole(std::move(response));
  }
  void StartStream(int status, core::HttpHeaders headers) override {
    call_->OnStreamStart(status, std::move(headers));
  }
  bool Write(std::string chunk) override { return call_->OnStreamBytes(std::move(chunk)); }
  void WriteAndNotify(std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) override {
    const bool written = Write(std::move(chunk));
    std::move(on_written)(written);
  }
  void Finish() override {
    complete_.store(true);
    call_->OnStreamEnd();
  }
  void OnCancel(absl::AnyInvocable<void() &&> callback) override {
    call_->SetOnCancel(std::move(callback));
  }

 private:
  const std::shared_ptr<GatewayCall> call_;
  std::atomic<bool> complete_{false};
};

// A unary RPC's reactor; deletes itself when the RPC is done.
class GatewayUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  void Attach(std::shared_ptr<GatewayCall> call) { call_ = std::move(call); }
  void OnCancel() override {
    if (call_) call_->Cancel();
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<GatewayCall> call_;
};

// A unary RPC through the gateway: the whole answer becomes `Response` (by
// `decode`) or a status. Finishes the RPC exactly once.
template <typename Response>
class UnaryGatewayCall final : public GatewayCall {
 public:
  using Decode = absl::StatusOr<Response> (*)(std::string_view body);

  // `context`, `reactor` and `response` live until the reactor's OnDone,
  // which cannot come before this finishes the RPC.
  UnaryGatewayCall(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                   Response* response, Decode decode)
      : context_(context), reactor_(reactor), response_(response), decode_(decode) {}

  void OnWhole(core::HttpResponse response) override {
    Complete(response.status, response.headers, response.body);
  }
  void OnStreamStart(int status, core::HttpHeaders headers) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    headers_ = std::move(headers);
  }
  bool OnStreamBytes(std::string bytes) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    body_.append(bytes);
    return true;
  }
  void OnStreamEnd() override {
    int status;
    core::HttpHeaders headers;
    std::string body;
    {
      absl::MutexLock lock(&mu_);
      status = status_;
      headers = std::move(headers_);
      body = std::move(body_);
    }
    Complete(status, headers, body);
  }
  void OnAbandoned() override {
    FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the router dropped the call without answering"),
               {}, {});
  }

 protected:
  void OnCallerGone() override {
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"), {}, {});
  }

 private:
  bool Claim() {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  void Complete(int status, const core::HttpHeaders& headers, std::string_view body) {
    if (!Claim()) return;
    if (status < 200 || status >= 300) {
      codec::GatewayFailure failure = codec::FailureFromAnswer(status, headers, body);
      return Finish(ToGrpc(failure.status), AnswerMetadata(headers), FailureMetadata(failure));
    }
    absl::StatusOr<Response> decoded = decode_(body);
    if (!decoded.ok()) return Finish(ToGrpc(decoded.status()), AnswerMetadata(headers), {});
    *response_ = *std::move(decoded);
    response_->set_endpoint(codec::HeaderValue(headers, "x-flowork-endpoint"));
    Finish(grpc::Status::OK, AnswerMetadata(headers), {});
  }

  void FinishOnce(grpc::Status status, Metadata initial, Metadata trailing) {
    if (Claim()) Finish(std::move(status), std::move(initial), std::move(trailing));
  }

  // Only the thread that claimed the call gets here: nothing else touches
  // the context or reactor any more.
  void Finish(grpc::Status status, const Metadata& initial, const Metadata& trailing) {
    for (const auto& [name, value] : initial) context_->AddInitialMetadata(name, value);
    for (const auto& [name, value] : trailing) context_->AddTrailingMetadata(name, value);
    reactor_->Finish(std::move(status));
  }

  grpc::CallbackServerContext* const context_;
  grpc::ServerUnaryReactor* const reactor_;
  Response* const response_;
  const Decode decode_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  core::HttpHeaders headers_ ABSL_GUARDED_BY(mu_);
  std::string body_ ABSL_GUARDED_BY(mu_);
};

// StreamChat through the gateway: SSE events become ChatChunk messages as
// they arrive, one write in flight, the rest queued; an error event or a
// failed answer ends the RPC with an error status.
class ChatStreamCall final : public GatewayCall {
 public:
  ChatStreamCall(grpc::CallbackServerContext* context,
                 grpc::ServerWriteReactor<v1::ChatChunk>* reactor)
      : context_(context), reactor_(reactor) {}

  void OnWhole(core::HttpResponse response) override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      AddAnswerMetadataLocked(response.headers);
      if (response.status < 200 || response.status >= 300) {
        codec::GatewayFailure failure =
            codec::FailureFromAnswer(response.status, response.headers, response.body);
        EndLocked(ToGrpc(failure.status), FailureMetadata(failure));
      } else {
        // A whole answer to a stream request: one chunk.
        absl::StatusOr<v1::ChatResponse> whole = codec::ChatResponseFromOpenAi(response.body);
        if (whole.ok()) {
          whole->set_endpoint(codec::HeaderValue(response.headers, "x-flowork-endpoint"));
          if (!ending_) pending_.push_back(codec::ChunkFromResponse(*whole));
          EndLocked(grpc::Status::OK, {});
        } else {
          EndLocked(ToGrpc(whole.status()), {});
        }
      }
      step = NextStepLocked();
    }
    Take(std::move(step));
  }

  void OnStreamStart(int status, core::HttpHeaders headers) override {
    absl::MutexLock lock(&mu_);
    AddAnswerMetadataLocked(headers);
    endpoint_ = codec::HeaderValue(headers, "x-flowork-endpoint");
    status_ = status;
  }

  bool OnStreamBytes(std::string bytes) override {
    Step step;
    bool open;
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return false;
      if (status_ < 200 || status_ >= 300) {
        error_body_.append(bytes);
        return true;
      }
      for (const codec::SseSplitter::Event& event : splitter_.Feed(bytes)) {
        absl::StatusOr<std::optional<v1::ChatChunk>> chunk = codec::ChatChunkFromEvent(event);
        if (!chunk.ok()) {
          EndLocked(ToGrpc(chunk.status()), {});
          break;
        }
        if (!chunk->has_value()) continue;
        if (!endpoint_sent_) {
          (*chunk)->set_endpoint(endpoint_);
          endpoint_sent_ = true;
        }
        pending_.push_back(**std::move(chunk));
      }
      open = !ending_ || final_.ok();
      step = NextStepLocked();
    }
    Take(std::move(step));
    return open;
  }

  void OnStreamEnd() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      if (status_ < 200 || status_ >= 300) {
        codec::GatewayFailure failure = codec::FailureFromAnswer(status_, {}, error_body_);
        EndLocked(ToGrpc(failure.status), FailureMetadata(failure));
      } else {
        EndLocked(grpc::Status::OK, {});
      }
      step = NextStepLocked();
    }
    Take(std::move(step));
  }

  void OnAbandoned() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             "the router dropped the stream before it ended"),
                {});
      step = NextStepLocked();
    }
    Take(std::move(step));
  }

  // gRPC's OnWriteDone.
  void WriteDone(bool ok) {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        pending_.clear();
        EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away"), {});
      }
      step = NextStepLocked();
    }
    Take(std::move(step));
  }

 protected:
  void OnCallerGone() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      pending_.clear();
      EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"), {});
      step = NextStepLocked();
    }
    Take(std::move(step));
  }

 private:
  // What to do with the reactor, decided under the lock, done outside it.
  struct Step {
    enum Kind { kNothing, kWrite, kFinish } kind = kNothing;
    Metadata initial;
    Metadata trailing;
    grpc::Status status;
  };

  void AddAnswerMetadataLocked(const core::HttpHeaders& headers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (metadata_sent_ || !initial_.empty()) return;
    initial_ = AnswerMetadata(headers);
  }

  // The first ending wins; later ones (the gateway finishing after an error
  // event, say) change nothing.
  void EndLocked(grpc::Status status, Metadata trailing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ending_) return;
    ending_ = true;
    final_ = std::move(status);
    trailing_ = std::move(trailing);
  }

  Step NextStepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Step step;
    if (finished_ || writing_) return step;
    if (!pending_.empty()) {
      in_flight_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      step.kind = Step::kWrite;
    } else if (ending_) {
      finished_ = true;
      step.kind = Step::kFinish;
      step.status = final_;
      step.trailing = std::move(trailing_);
    } else {
      return step;
    }
    if (!metadata_sent_) {
      metadata_sent_ = true;
      step.initial = std::move(initial_);
    }
    return step;
  }

  // Outside the lock: only the thread holding a kWrite or kFinish step
  // touches the reactor and context until that write completes.
  void Take(Step step) {
    if (step.kind == Step::kNothing) return;
    for (const auto& [name, value] : step.initial) context_->AddInitialMetadata(name, value);
    if (step.kind == Step::kWrite) return reactor_->StartWrite(&in_flight_);
    for (const auto& [name, value] : step.trailing) context_->AddTrailingMetadata(name, value);
    reactor_->Finish(std::move(step.status));
  }

  grpc::CallbackServerContext* const context_;
  grpc::ServerWriteReactor<v1::ChatChunk>* const reactor_;
  absl::Mutex mu_;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::string endpoint_ ABSL_GUARDED_BY(mu_);
  bool endpoint_sent_ ABSL_GUARDED_BY(mu_) = false;
  std::string error_body_ ABSL_GUARDED_BY(mu_);
  codec::SseSplitter splitter_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ChatChunk> pending_ ABSL_GUARDED_BY(mu_);
  // Written by the reactor; only touched while no write is in flight.
  v1::ChatChunk in_flight_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  Metadata initial_ ABSL_GUARDED_BY(mu_);
  bool metadata_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
  Metadata trailing_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class ChatStreamReactor final : public grpc::ServerWriteReactor<v1::ChatChunk> {
 public:
  void Attach(std::shared_ptr<ChatStreamCall> call) { call_ = std::move(call); }
  void OnWriteDone(bool ok) override { call_->WriteDone(ok); }
  void OnCancel() override {
    if (call_) call_->Cancel();
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<ChatStreamCall> call_;
};

}  // namespace

grpc::ServerUnaryReactor* RouterServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                        const v1::ListModelsRequest* request,
                                                        v1::ListModelsResponse* response) {
  *response = policy_.Current()->catalog().List(*request);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterServiceImpl::ExplainRoute(grpc::CallbackServerContext* context,
                                                          const v1::ExplainRouteRequest* request,
                                                          v1::ExplainRouteResponse* response) {
  RequestView view;
  view.model = request->model();
  view.stream = request->stream();
  view.max_tokens = request->max_tokens();
  view.estimated_prompt_tokens = request->estimated_prompt_tokens();
  view.required_capabilities.assign(request->capabilities().begin(), request->capabilities().end());
  view.header_zones.assign(request->zones().begin(), request->zones().end());
  view.affinity_key = request->affinity_key();
  if (request->has_seed()) view.seed = request->seed();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AttemptPlan> plan = policy_.Explain(std::move(view));
  if (!plan.ok()) {
    reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(plan.status().code()),
                                 std::string(plan.status().message())));
    return reactor;
  }
  response->set_target(plan->target);
  response->set_objective(plan->objective);
  response->set_seed(plan->seed);
  for (const Endpoint& e : plan->attempts) {
    response->add_attempts(e.model->name() + "@" + e.provider->name());
  }
  for (const CandidateDecision& d : plan->decisions) {
    v1::CandidateVerdict& verdict = *response->add_candidates();
    verdict.set_model(d.endpoint.model->name());
    verdict.set_provider(d.endpoint.provider->name());
    verdict.set_zone(d.endpoint.provider->zone());
    verdict.set_kept(d.kept());
    verdict.set_reason(d.Explain());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterServiceImpl::Chat(grpc::CallbackServerContext* context,
                                                  const v1::ChatRequest* request,
                                                  v1::ChatResponse* response) {
  auto* reactor = new GatewayUnaryReactor();
  absl::StatusOr<std::string> body = codec::OpenAiChatBody(*request, /*stream=*/false);
  if (!body.ok()) {
    reactor->Finish(ToGrpc(body.status()));
    return reactor;
  }
  auto call = std::make_shared<UnaryGatewayCall<v1::ChatResponse>>(context, reactor, response,
                                                                   &codec::ChatResponseFromOpenAi);
  reactor->Attach(call);
  gateway_.Handle(GatewayRequest(*context, "/v1/chat/completions", *std::move(body)),
                  std::make_unique<GatewayWriter>(std::move(call)));
  return reactor;
}

grpc::ServerWriteReactor<v1::ChatChunk>* RouterServiceImpl::StreamChat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  auto* reactor = new ChatStreamReactor();
  absl::StatusOr<std::string> body = codec::OpenAiChatBody(*request, /*stream=*/true);
  if (!body.ok()) {
    reactor->Finish(ToGrpc(body.status()));
    return reactor;
  }
  auto call = std::make_shared<ChatStreamCall>(context, reactor);
  reactor->Attach(call);
  gateway_.Handle(GatewayRequest(*context, "/v1/chat/completions", *std::move(body)),
                  std::make_unique<GatewayWriter>(std::move(call)));
  return reactor;
}

grpc::ServerUnaryReactor* RouterServiceImpl::Embed(grpc::CallbackServerContext* context,
                                                   const v1::EmbedRequest* request,
                                                   v1::EmbedResponse* response) {
  auto* reactor = new GatewayUnaryReactor();
  absl::StatusOr<std::string> body = codec::OpenAiEmbeddingsBody(*request);
  if (!body.ok()) {
    reactor->Finish(ToGrpc(body.status()));
    return reactor;
  }
  auto call = std::make_shared<UnaryGatewayCall<v1::EmbedResponse>>(
      context, reactor, response, &codec::EmbedResponseFromOpenAi);
  reactor->Attach(call);
  gateway_.Handle(GatewayRequest(*context, "/v1/embeddings", *std::move(body)),
                  std::make_unique<GatewayWriter>(std::move(call)));
  return reactor;
}

}  // namespace flowork::router
