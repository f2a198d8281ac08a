// LlmClient over gRPC: RouterService.Chat on flowork-router.
#include "flowork/agent/grpc/grpc_llm_client.h"

#include <algorithm>
#include <chrono>
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

class GrpcLlmCall final : public LlmCall {
 public:
  explicit GrpcLlmCall(std::shared_ptr<CallState> state) : state_(std::move(state)) {}
  void Cancel() override { state_->context.TryCancel(); }

 private:
  const std::shared_ptr<CallState> state_;
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
    state->request = *std::move(chat);
    if (!request.model.empty()) state->request.set_model(request.model);
    if (request.deadline != absl::InfiniteFuture()) {
      state->context.set_deadline(absl::ToChronoTime(request.deadline));
    }
    if (!options_.api_key.empty()) {
      state->context.AddMetadata("authorization", absl::StrCat("Bearer ", options_.api_key));
    }
    for (const auto& [name, value] : options_.metadata) state->context.AddMetadata(name, value);
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
