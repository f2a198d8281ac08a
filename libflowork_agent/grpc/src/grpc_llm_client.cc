// LlmClient over gRPC: RouterService.Chat on flowork-router.
#include "flowork/agent/grpc/grpc_llm_client.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/core/executor.h"
#include "flowork/router/grpc/chat_codec.h"
#include "flowork/router/v1/router.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace flowork::agent {
namespace {

using Done = absl::AnyInvocable<void(absl::StatusOr<LlmResponse>) &&>;

// 64 MiB: long contexts and answers, well above gRPC's 4 MiB default.
constexpr int kMaxMessageBytes = 64 << 20;

std::string Metadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                     const char* name) {
  auto it = metadata.find(name);
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

absl::StatusCode CodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::StatusCode::kResourceExhausted;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::StatusCode::kPermissionDenied;
    case grpc::StatusCode::NOT_FOUND:
      return absl::StatusCode::kNotFound;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StatusCode::kDeadlineExceeded;
    case grpc::StatusCode::CANCELLED:
      return absl::StatusCode::kCancelled;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ABORTED:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

// A failed RPC in the LlmClient's terms.
absl::Status ErrorFor(const grpc::Status& status, const grpc::ClientContext& context) {
  const absl::StatusCode code = CodeFor(status.error_code());
  absl::Status error(code, code == absl::StatusCode::kCancelled
                               ? std::string("the model call was cancelled")
                               : absl::StrCat("the router answered ", status.error_code(), ": ",
                                              status.error_message()));
  if (code == absl::StatusCode::kResourceExhausted) {
    double seconds = 0;
    const std::string retry = Metadata(context.GetServerTrailingMetadata(), "retry-after");
    if (absl::SimpleAtod(retry, &seconds) && seconds >= 0) {
      SetLlmRetryAfter(error, absl::Seconds(std::min(seconds, 3600.0)));
    }
  }
  return error;
}

LlmResponse ResponseFor(const router::v1::ChatResponse& chat, const grpc::ClientContext& context) {
  LlmResponse response;
  response.body = router::codec::OpenAiChatCompletion(chat);
  response.model = chat.model();
  response.usage.prompt_tokens = chat.usage().prompt_tokens();
  response.usage.completion_tokens = chat.usage().completion_tokens();
  response.usage.cached_tokens = chat.usage().cached_tokens();
  response.endpoint = !chat.endpoint().empty()
                          ? chat.endpoint()
                          : Metadata(context.GetServerInitialMetadata(), "x-flowork-endpoint");
  return response;
}

// One RPC: what gRPC writes into until the call's callback runs.
struct CallState {
  grpc::ClientContext context;
  router::v1::ChatRequest request;
  router::v1::ChatResponse response;
  Done done;
  // Held so the channel (and its threads) outlive the call.
  std::shared_ptr<grpc::Channel> channel;
  absl::Mutex mu;
  // Complete is still running on this call: an answer goes through the
  // client's executor (alive while Complete runs) so `done` never runs
  // inside it.
  bool starting ABSL_GUARDED_BY(mu) = true;
};

// One StreamChat RPC: its chunks assembled into a ChatResponse, each piece
// of text given to `on_text` as it arrives. Holds itself until OnDone.
class StreamCall final : public grpc::ClientReadReactor<router::v1::ChatChunk> {
 public:
  grpc::ClientContext context;
  router::v1::ChatRequest request;
  absl::AnyInvocable<void(std::string_view)> on_text;
  Done done;
  std::shared_ptr<grpc::Channel> channel;
  core::Executor* executor = nullptr;
  std::shared_ptr<StreamCall> self;

  void Start(router::v1::RouterService::Stub& stub) {
    stub.async()->StreamChat(&context, &request, this);
    StartRead(&chunk_);
    StartCall();
    absl::MutexLock lock(&mu_);
    starting_ = false;
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream ended; OnDone follows.
    Add(chunk_);
    chunk_.Clear();
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<StreamCall> keep = std::move(self);
    bool inline_answer;
    {
      absl::MutexLock lock(&mu_);
      inline_answer = starting_;
    }
    // Inside StartCall (and so inside Complete, the executor alive): later.
    if (inline_answer) return executor->Schedule([keep, status] { keep->Finish(status); });
    keep->Finish(status);
  }

  // Cancel: `on_text` stops and `done` runs once the RPC ends.
  void Cancel() {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    context.TryCancel();
  }

 private:
  void Add(const router::v1::ChatChunk& chunk) {
    if (response_.id().empty()) response_.set_id(chunk.id());
    if (!chunk.model().empty()) response_.set_model(chunk.model());
    if (!chunk.endpoint().empty()) response_.set_endpoint(chunk.endpoint());
    if (!chunk.finish_reason().empty()) response_.set_finish_reason(chunk.finish_reason());
    if (chunk.has_usage()) *response_.mutable_usage() = chunk.usage();
    router::v1::ChatMessage& message = *response_.mutable_message();
    message.set_role(router::v1::ROLE_ASSISTANT);
    const std::string& text = chunk.delta().content();
    if (!text.empty()) {
      content_.append(text);
      bool cancelled;
      {
        absl::MutexLock lock(&mu_);
        cancelled = cancelled_;
      }
      if (!cancelled && on_text) on_text(text);
    }
    for (const router::v1::ToolCallDelta& delta : chunk.delta().tool_calls()) {
      auto [it, added] = call_index_.try_emplace(delta.index(), message.tool_calls_size());
      if (added) message.add_tool_calls();
      router::v1::ToolCall& call = *message.mutable_tool_calls(it->second);
      if (!delta.id().empty()) call.set_id(delta.id());
      if (!delta.name().empty()) call.set_name(call.name() + delta.name());
      call.mutable_arguments()->append(delta.arguments());
    }
  }

  void Finish(const grpc::Status& status) {
    Done finish = std::move(done);
    done = nullptr;
    if (!status.ok()) return std::move(finish)(ErrorFor(status, context));
    if (response_.finish_reason().empty()) {
      return std::move(finish)(
          absl::UnavailableError("the router's stream ended before the answer was finished"));
    }
    if (!content_.empty()) response_.mutable_message()->add_content()->set_text(content_);
    std::move(finish)(ResponseFor(response_, context));
  }

  router::v1::ChatChunk chunk_;
  router::v1::ChatResponse response_;
  std::string content_;
  std::map<uint32_t, int> call_index_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool starting_ ABSL_GUARDED_BY(mu_) = true;
};

class GrpcLlmCall final : public LlmCall {
 public:
  explicit GrpcLlmCall(std::shared_ptr<CallState> state) : state_(std::move(state)) {}
  explicit GrpcLlmCall(std::shared_ptr<StreamCall> stream) : stream_(std::move(stream)) {}
  void Cancel() override {
    if (state_) state_->context.TryCancel();
    if (stream_) stream_->Cancel();
  }

 private:
  const std::shared_ptr<CallState> state_;
  const std::shared_ptr<StreamCall> stream_;
};

class GrpcLlmClient final : public LlmClient {
 public:
  GrpcLlmClient(const GrpcLlmClientOptions& options, std::shared_ptr<grpc::Channel> channel,
                std::unique_ptr<core::Executor> executor)
      : options_(options),
        channel_(std::move(channel)),
        stub_(router::v1::RouterService::NewStub(channel_)),
        executor_(std::move(executor)) {}

  std::shared_ptr<LlmCall> Complete(LlmRequest request, Done done) override {
    auto state = std::make_shared<CallState>();
    state->done = std::move(done);
    state->channel = channel_;
    absl::StatusOr<router::v1::ChatRequest> chat =
        router::codec::ChatRequestFromOpenAi(request.body);
    if (!chat.ok()) {
      absl::Status refused = absl::InvalidArgumentError(
          absl::StrCat("the model request cannot be sent over gRPC: ", chat.status().message()));
      executor_->Schedule([state, refused]() mutable { std::move(state->done)(refused); });
      return std::make_shared<GrpcLlmCall>(state);
    }
    if (request.on_text) return Stream(std::move(request), *std::move(chat), std::move(state));
    state->request = *std::move(chat);
    if (!request.model.empty()) state->request.set_model(request.model);
    Prepare(request, state->context);
    stub_->async()->Chat(&state->context, &state->request, &state->response,
                         [state, executor = executor_.get()](grpc::Status status) {
                           bool inline_answer;
                           {
                             absl::MutexLock lock(&state->mu);
                             inline_answer = state->starting;
                           }
                           if (inline_answer) {
                             executor->Schedule([state, status] { Finish(*state, status); });
                           } else {
                             Finish(*state, status);
                           }
                         });
    {
      absl::MutexLock lock(&state->mu);
      state->starting = false;
    }
    return std::make_shared<GrpcLlmCall>(state);
  }

 private:
  void Prepare(const LlmRequest& request, grpc::ClientContext& context) const {
    if (request.deadline != absl::InfiniteFuture()) {
      context.set_deadline(absl::ToChronoTime(request.deadline));
    }
    if (!options_.api_key.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", options_.api_key));
    }
    for (const auto& [name, value] : options_.metadata) context.AddMetadata(name, value);
  }

  // The streamed call: StreamChat, assembled (see StreamCall).
  std::shared_ptr<LlmCall> Stream(LlmRequest request, router::v1::ChatRequest chat,
                                  std::shared_ptr<CallState> unary) {
    auto stream = std::make_shared<StreamCall>();
    stream->done = std::move(unary->done);
    stream->on_text = std::move(request.on_text);
    stream->channel = channel_;
    stream->executor = executor_.get();
    stream->request = std::move(chat);
    if (!request.model.empty()) stream->request.set_model(request.model);
    Prepare(request, stream->context);
    stream->self = stream;
    stream->Start(*stub_);
    return std::make_shared<GrpcLlmCall>(stream);
  }

  static void Finish(CallState& state, const grpc::Status& status) {
    Done done = std::move(state.done);
    state.done = nullptr;
    if (!done) return;
    if (!status.ok()) return std::move(done)(ErrorFor(status, state.context));
    std::move(done)(ResponseFor(state.response, state.context));
  }

  const GrpcLlmClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<router::v1::RouterService::Stub> stub_;
  // Destroyed first: runs what is queued while the stub is still there.
  const std::unique_ptr<core::Executor> executor_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LlmClient>> CreateGrpcLlmClient(
    const GrpcLlmClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target: empty");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options.target,
      options.credentials ? options.credentials : grpc::InsecureChannelCredentials(), args);
  absl::StatusOr<std::unique_ptr<core::Executor>> executor =
      core::CreateThreadPoolExecutor({.threads = 1});
  if (!executor.ok()) return executor.status();
  return std::make_unique<GrpcLlmClient>(options, std::move(channel), *std::move(executor));
}

}  // namespace flowork::agent
