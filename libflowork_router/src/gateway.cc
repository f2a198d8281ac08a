// The OpenAI-compatible front: request view -> plan -> attempts over pooled
// upstream connections -> the answer, streamed or whole.

#include "flowork/router/gateway.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/json.hpp"
#include "flowork/core/internal/strings.h"
#include "flowork/core/logging.h"
#include "http/openai_request.h"
#include "providers/translation.h"

namespace flowork::router {
namespace {

using core::HttpCall;
using core::HttpCallFailure;
using core::HttpCallOutcome;
using core::HttpHeaders;
using core::HttpRequest;
using core::HttpResponse;
using core::HttpResponseWriter;
using core::internal::ToAbsl;

// The API shape a caller speaks.
enum class Front { kOpenAi, kAnthropic };

// What each front path asks of the upstream.
struct Operation {
  const char* upstream_path;  // On OpenAI-compatible upstreams, after base_url.
  const char* capability;
  Front front;
  bool chat;  // A conversation: translatable to Anthropic and Ollama upstreams.
};

const std::map<std::string, Operation, std::less<>>& Operations() {
  static const auto* const operations = new std::map<std::string, Operation, std::less<>>{
      {"/v1/chat/completions", {"/chat/completions", "chat", Front::kOpenAi, true}},
      {"/v1/completions", {"/completions", "completion", Front::kOpenAi, false}},
      {"/v1/embeddings", {"/embeddings", "embeddings", Front::kOpenAi, false}},
      {"/v1/messages", {"/chat/completions", "chat", Front::kAnthropic, true}},
  };
  return *operations;
}

std::string AnthropicErrorBody(absl::string_view message, absl::string_view type) {
  boost::json::object error;
  error["type"] = boost::json::string_view(type.data(), type.size());
  error["message"] = boost::json::string_view(message.data(), message.size());
  boost::json::object body;
  body["type"] = "error";
  body["error"] = std::move(error);
  return boost::json::serialize(body);
}

// Anthropic's error type for an HTTP status.
const char* AnthropicErrorType(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

std::string OpenAiErrorBody(absl::string_view message, absl::string_view type,
                            absl::string_view code) {
  boost::json::object error;
  error["message"] = boost::json::string_view(message.data(), message.size());
  error["type"] = boost::json::string_view(type.data(), type.size());
  error["param"] = nullptr;
  if (code.empty()) {
    error["code"] = nullptr;
  } else {
    error["code"] = boost::json::string_view(code.data(), code.size());
  }
  boost::json::object body;
  body["error"] = std::move(error);
  return boost::json::serialize(body);
}

absl::Duration FromProto(const google::protobuf::Duration& d, absl::Duration fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::optional<absl::Duration> RetryAfter(const HttpHeaders& headers) {
  for (const auto& [name, value] : headers) {
    if (!absl::EqualsIgnoreCase(name, "retry-after")) continue;
    // Delta-seconds only; an absurd value must not park an endpoint forever.
    double seconds;
    if (absl::SimpleAtod(value, &seconds) && std::isfinite(seconds) && seconds >= 0) {
      return absl::Seconds(std::min(seconds, 3600.0));
    }
  }
  return std::nullopt;
}

// The upstream API key: from the environment variable or the file named.
std::string ProviderKey(const v1::Provider& provider) {
  if (!provider.api_key_env().empty()) {
    const char* value = std::getenv(provider.api_key_env().c_str());
    return value == nullptr ? "" : value;
  }
  if (!provider.api_key_file().empty()) {
    std::ifstream in(provider.api_key_file());
    std::string key;
    std::getline(in, key);
    return std::string(absl::StripAsciiWhitespace(key));
  }
  return "";
}

// Runs callbacks after a delay, on one thread: retry backoff and first-token
// deadlines. Thread-safe.
class DelayScheduler {
 public:
  DelayScheduler() : thread_([this] { Run(); }) {}
  ~DelayScheduler() { Stop(); }

  // Drops the work not yet run and joins the thread. Idempotent.
  void Stop() {
    Queue dropped;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      dropped.swap(queue_);
      by_id_.clear();
    }
    if (thread_.joinable()) thread_.join();
    // `dropped` goes here, outside the lock: its work may hold requests.
  }

  // Returns an id for Cancel.
  uint64_t After(absl::Duration delay, absl::AnyInvocable<void() &&> work) {
    absl::MutexLock lock(&mu_);
    const uint64_t id = ++last_id_;
    by_id_[id] = queue_.emplace(absl::Now() + delay, Entry{id, std::move(work)});
    woken_ = true;  // The runner may be waiting for a later deadline.
    return id;
  }

  // Drops work not yet run. Harmless for work that ran or was dropped.
  void Cancel(uint64_t id) {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    queue_.erase(it->second);
    by_id_.erase(it);
  }

 private:
  struct Entry {
    uint64_t id;
    absl::AnyInvocable<void() &&> work;
  };
  using Queue = std::multimap<absl::Time, Entry>;

  void Run() {
    absl::MutexLock lock(&mu_);
    while (!stopping_) {
      const absl::Time next = queue_.empty() ? absl::InfiniteFuture() : queue_.begin()->first;
      mu_.AwaitWithDeadline(absl::Condition(this, &DelayScheduler::Woken), next);
      woken_ = false;
      while (!queue_.empty() && queue_.begin()->first <= absl::Now() && !stopping_) {
        absl::AnyInvocable<void()&&> work = std::move(queue_.begin()->second.work);
        by_id_.erase(queue_.begin()->second.id);
        queue_.erase(queue_.begin());
        mu_.Unlock();
        std::move(work)();
        mu_.Lock();
      }
    }
  }
  bool Woken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  Queue queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Queue::iterator> by_id_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class GatewayImpl;
void NoteCallStarted(GatewayImpl& gateway);
void NoteCallEnded(GatewayImpl& gateway);

// How one attempt talks to its upstream, and turns the answer back into the
// caller's shape.
struct AttemptFormat {
  std::string url;
  std::string body;
  HttpHeaders headers;
  // Whole 2xx answers: upstream body -> the caller's body.
  std::function<absl::StatusOr<std::string>(absl::string_view)> convert;
  // Streams: upstream bytes -> the caller's bytes (a chain of translators).
  std::vector<std::unique_ptr<StreamTranslator>> stream;
  // Whether error bodies pass as they are (same wire format both sides).
  bool native_errors = false;
};

// One client request through its attempts. The HTTP client's observer.
class ProxyCall final : public core::HttpResponseObserver,
                        public std::enable_shared_from_this<ProxyCall> {
 public:
  ProxyCall(GatewayImpl& gateway, HttpRequest request, std::unique_ptr<HttpResponseWriter> writer,
            std::string openai_body, OpenAiRequestFacts facts, const Operation& operation,
            AttemptPlan plan, std::string request_id, absl::Time started)
      : gateway_(gateway),
        request_(std::move(request)),
        writer_(std::move(writer)),
        openai_body_(std::move(openai_body)),
        facts_(std::move(facts)),
        operation_(operation),
        plan_(std::move(plan)),
        request_id_(std::move(request_id)),
        started_(started) {
    NoteCallStarted(gateway_);
  }
  ~ProxyCall() override { NoteCallEnded(gateway_); }

  void Start();

  void OnHead(int status, const HttpHeaders& headers) override;
  void OnBody(std::string_view piece) override;
  void OnDone(const HttpCallOutcome& outcome) override;

 private:
  void NextAttempt();
  void Send();
  absl::StatusOr<AttemptFormat> Prepare(const std::string& openai_body,
                                        const OpenAiRequestFacts& facts) const;
  // After a cut: asks a prefill-capable candidate to continue the answer.
  bool TryContinue(std::string cut_reason);
  // Runs `bytes` through the attempt's translators.
  std::string Translate(std::string_view bytes);
  std::string FinishTranslation();
  void StartClientStream();
  // The endpoint failed in a way worth retrying (or moving on from).
  void Transient(core::HttpCallOutcome outcome, FailureKind kind,
                 std::optional<absl::Duration> retry_after);
  void MoveOn();
  void Respond(int status, HttpHeaders headers, std::string body);
  void RespondError(int status, absl::string_view body);
  void RespondFailure();
  void EndStreamWithError(absl::string_view message, absl::string_view code);
  HttpHeaders ResponseHeaders(bool with_endpoint);
  int64_t OverheadMicros();
  std::string EndpointName() const {
    return absl::StrCat(current_.model->name(), "@", current_.provider->name());
  }

  GatewayImpl& gateway_;
  const HttpRequest request_;
  std::unique_ptr<HttpResponseWriter> writer_;
  const std::string openai_body_;  // The request in OpenAI shape.
  const OpenAiRequestFacts facts_;
  const Operation& operation_;
  const AttemptPlan plan_;
  const std::string request_id_;
  const absl::Time started_;

  // Attempt state, touched by one attempt's callbacks at a time.
  size_t candidate_ = 0;
  int attempts_ = 0;
  uint32_t same_endpoint_retries_ = 0;
  Endpoint current_;
  AttemptFormat format_;
  absl::Time attempt_started_;
  bool attempt_in_flight_ = false;
  absl::Duration upstream_time_;
  int status_ = 0;
  std::optional<absl::Duration> retry_after_;  // The answer's Retry-After.
  std::string buffered_;
  bool stream_ok_ = false;  // A 2xx stream is coming in.
  bool streaming_ = false;  // Content reached the caller: no switching now.
  std::string held_;        // Stream bytes held until the first content.
  std::optional<absl::Duration> ttft_;
  std::vector<std::string> failures_;
  int rate_limited_ = 0;
  int timed_out_ = 0;
  std::optional<absl::Duration> min_retry_after_;
  // Continuing a cut answer on another candidate (route continue_on_cut).
  bool continuing_ = false;
  std::string cut_reason_;
  std::string continuation_body_;
  OpenAiRequestFacts continuation_facts_;

  // Set by the first-token timer (another thread) for attempt `attempt_id_`.
  std::atomic<uint64_t> attempt_id_{0};
  std::atomic<bool> content_seen_{false};
  std::atomic<uint64_t> first_token_expired_{0};
  std::atomic<uint64_t> first_token_timer_{0};  // DelayScheduler id; 0 = none.

  absl::Mutex call_mu_;
  std::shared_ptr<HttpCall> call_ ABSL_GUARDED_BY(call_mu_);
  bool cancelled_ ABSL_GUARDED_BY(call_mu_) = false;
};

class GatewayImpl final : public Gateway {
 public:
  GatewayImpl(PolicyEngine& policy, core::HttpClient& client, core::EventLoops* loops)
      : policy_(policy), client_(client), loops_(loops) {}

  // Requests in flight refer to the gateway: drop pending retries (their
  // callers get an error or a cut) and wait for the rest to finish.
  ~GatewayImpl() override {
    delays_.Stop();
    absl::MutexLock lock(&live_mu_);
    live_mu_.Await(absl::Condition(
        +[](int* live) { return *live == 0; }, &live_));
  }

  void CallStarted() {
    absl::MutexLock lock(&live_mu_);
    ++live_;
  }
  void CallEnded() {
    absl::MutexLock lock(&live_mu_);
    --live_;
  }

  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override;

  core::HttpClient& client() { return client_; }

  // The loop running the calling thread, or -1.
  int CurrentLoop() const { return loops_ == nullptr ? -1 : loops_->CurrentIndex(); }
  // Runs `work` on loop `loop`, or right here when there is none.
  void RunOn(int loop, absl::AnyInvocable<void() &&> work) {
    if (loops_ == nullptr || loop < 0) return std::move(work)();
    loops_->Post(loop, std::move(work));
  }
  DelayScheduler& delays() { return delays_; }
  double Jitter() {
    absl::MutexLock lock(&rng_mu_);
    return std::uniform_real_distribution<double>(0, 0.5)(rng_);
  }

 private:
  void ListModels(const Policy& policy, const v1::ApiKey* key, const std::string& request_id,
                  std::unique_ptr<HttpResponseWriter> writer);
  std::string RequestId(const HttpRequest& request);

  PolicyEngine& policy_;
  core::HttpClient& client_;
  core::EventLoops* const loops_;
  DelayScheduler delays_;
  std::atomic<uint64_t> counter_{0};
  const uint64_t process_salt_ = std::random_device{}();
  absl::Mutex rng_mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(rng_mu_){std::random_device{}()};
  absl::Mutex live_mu_;
  int live_ ABSL_GUARDED_BY(live_mu_) = 0;
};

void NoteCallStarted(GatewayImpl& gateway) { gateway.CallStarted(); }
void NoteCallEnded(GatewayImpl& gateway) { gateway.CallEnded(); }

void Reply(HttpResponseWriter& writer, Front front, int status, absl::string_view message,
           absl::string_view type, absl::string_view code, HttpHeaders headers) {
  headers.emplace_back("Content-Type", "application/json");
  writer.Send({.status = status,
               .headers = std::move(headers),
               .body = front == Front::kAnthropic
                           ? AnthropicErrorBody(message, AnthropicErrorType(status))
                           : OpenAiErrorBody(message, type, code)});
}

std::string GatewayImpl::RequestId(const HttpRequest& request) {
  if (const std::string* id = request.FindHeader("x-request-id");
      id != nullptr && !id->empty() && id->size() <= 128) {
    bool clean = true;
    for (char c : *id)
      clean = clean && (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.');
    if (clean) return *id;
  }
  return absl::StrCat(
      "req_",
      absl::Hex(process_salt_ ^ (counter_.fetch_add(1) * 0x9E3779B97F4A7C15ULL), absl::kZeroPad16));
}

void GatewayImpl::ListModels(const Policy& policy, const v1::ApiKey* key,
                             const std::string& request_id,
                             std::unique_ptr<HttpResponseWriter> writer) {
  boost::json::array data;
  const v1::ListModelsResponse models = policy.catalog().List({});
  for (const v1::ModelEntry& entry : models.models()) {
    if (!KeyRing::CheckAllowed(key, entry.id()).ok()) continue;  // Only what this key may use.
    boost::json::object model;
    model["id"] = entry.id();
    model["object"] = "model";
    model["created"] = 0;
    model["owned_by"] = "flowork";
    data.push_back(std::move(model));
  }
  boost::json::object body;
  body["object"] = "list";
  body["data"] = std::move(data);
  writer->Send({.status = 200,
                .headers = {{"Content-Type", "application/json"},
                            {"x-request-id", request_id},
                            {"x-flowork-overhead-us", "0"}},
                .body = boost::json::serialize(body)});
}

void GatewayImpl::Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) {
  const absl::Time started = absl::Now();
  const std::string request_id = RequestId(request);
  const HttpHeaders id_header = {{"x-request-id", request_id}};
  const std::string path(request.path());
  auto operation = Operations().find(path);
  const Front front = operation == Operations().end() ? Front::kOpenAi : operation->second.front;
  // Who is asking, before anything else.
  const std::shared_ptr<const Policy> snapshot = policy_.Current();
  const std::string* authorization = request.FindHeader("authorization");
  const std::string* x_api_key = request.FindHeader("x-api-key");
  absl::StatusOr<const v1::ApiKey*> key =
      snapshot->keys().Identify(authorization ? *authorization : "", x_api_key ? *x_api_key : "");
  if (!key.ok()) {
    return Reply(*writer, front, 401, key.status().message(), "invalid_request_error",
                 "invalid_api_key", id_header);
  }
  if (request.method == "GET" && path == "/v1/models") {
    return ListModels(*snapshot, *key, request_id, std::move(writer));
  }
  if (operation == Operations().end() || request.method != "POST") {
    return Reply(*writer, front, 404, absl::StrCat("no route for ", request.method, " ", path),
                 "invalid_request_error", "unknown_url", id_header);
  }
  absl::StatusOr<OpenAiRequestFacts> facts = ReadOpenAiRequest(request.body);
  std::string openai_body;
  if (facts.ok() && front == Front::kAnthropic) {
    // One internal shape: Anthropic requests are routed as OpenAI chats and
    // the answer is turned back into Anthropic's.
    absl::StatusOr<std::string> converted =
        AnthropicRequestToOpenAiChat(request.body, facts->model);
    facts = converted.ok() ? ReadOpenAiRequest(*converted) : converted.status();
    if (converted.ok()) openai_body = *std::move(converted);
  } else if (facts.ok()) {
    openai_body = std::move(request.body);  // The one copy kept: ProxyCall's.
  }
  if (!facts.ok()) {
    return Reply(*writer, front, 400, facts.status().message(), "invalid_request_error",
                 "invalid_request", id_header);
  }
  if (absl::Status allowed = KeyRing::CheckAllowed(*key, facts->model); !allowed.ok()) {
    return Reply(*writer, front, 403, allowed.message(), "invalid_request_error",
                 "model_not_allowed", id_header);
  }
  RequestView view;
  if (*key != nullptr) {
    view.key_name = (*key)->name();
    view.key_zones.assign((*key)->zones().begin(), (*key)->zones().end());
  }
  view.model = facts->model;
  view.stream = facts->stream;
  view.max_tokens = facts->max_tokens;
  view.estimated_prompt_tokens = static_cast<uint32_t>(openai_body.size() / 4);
  view.required_capabilities.push_back(operation->second.capability);
  if (facts->has_tools) view.required_capabilities.push_back("tools");
  if (facts->wants_json) view.required_capabilities.push_back("json");
  if (facts->has_images) view.required_capabilities.push_back("vision");
  if (const std::string* zones = request.FindHeader("x-flowork-zone")) {
    for (absl::string_view zone : absl::StrSplit(*zones, ',', absl::SkipWhitespace())) {
      view.header_zones.emplace_back(absl::StripAsciiWhitespace(zone));
    }
  }
  if (const std::string* session = request.FindHeader("x-flowork-session")) {
    view.affinity_key = *session;
  }
  absl::StatusOr<AttemptPlan> plan = policy_.Plan(std::move(view));
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kNotFound) {
      return Reply(*writer, front, 404,
                   absl::StrCat("The model `", facts->model, "` does not exist"),
                   "invalid_request_error", "model_not_found", id_header);
    }
    return Reply(*writer, front, 503, plan.status().message(), "service_unavailable",
                 "no_healthy_candidate", id_header);
  }
  auto call = std::make_shared<ProxyCall>(*this, std::move(request), std::move(writer),
                                          std::move(openai_body), *std::move(facts),
                                          operation->second, *std::move(plan), request_id, started);
  call->Start();
}

void ProxyCall::Start() {
  writer_->OnCancel([weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    std::shared_ptr<HttpCall> call;
    {
      absl::MutexLock lock(&self->call_mu_);
      self->cancelled_ = true;
      call = self->call_;
    }
    if (call) call->Cancel();
  });
  NextAttempt();
}

void ProxyCall::NextAttempt() {
  const int max_attempts = static_cast<int>(plan_.fallback.max_attempts());
  while (candidate_ < plan_.attempts.size() && attempts_ < max_attempts) {
    current_ = plan_.attempts[candidate_];
    const v1::Provider::Kind kind = current_.provider->kind();
    const bool openai_wire = kind == v1::Provider::KIND_OPENAI || kind == v1::Provider::KIND_MOCK;
    if (!openai_wire && !operation_.chat) {
      failures_.push_back(absl::StrCat(EndpointName(), ": provider kind ",
                                       v1::Provider::Kind_Name(kind), " does not serve ",
                                       operation_.capability));
      ++candidate_;
      continue;
    }
    if (!current_.state->BeginAttempt()) {
      failures_.push_back(absl::StrCat(EndpointName(), ": circuit open"));
      ++candidate_;
      continue;
    }
    ++attempts_;
    return Send();
  }
  RespondFailure();
}

absl::StatusOr<AttemptFormat> ProxyCall::Prepare(const std::string& openai_body,
                                                 const OpenAiRequestFacts& facts) const {
  const v1::Provider& provider = *current_.provider;
  const v1::Model& model = *current_.model;
  const std::string upstream_model =
      model.upstream_model().empty() ? model.name() : model.upstream_model();
  const std::string base(absl::StripSuffix(provider.base_url(), "/"));
  const std::string key = ProviderKey(provider);
  const bool to_anthropic = operation_.front == Front::kAnthropic;
  AttemptFormat format;
  format.headers = {{"Content-Type", "application/json"},
                    {"Accept", facts_.stream ? "text/event-stream" : "application/json"},
                    {"User-Agent", "flowork-router"},
                    {"x-request-id", request_id_}};
  switch (provider.kind()) {
    case v1::Provider::KIND_ANTHROPIC: {
      format.url = base + "/messages";
      absl::StatusOr<std::string> body = OpenAiChatRequestToAnthropic(openai_body, upstream_model);
      if (!body.ok()) return body.status();
      format.body = *std::move(body);
      if (!key.empty()) format.headers.emplace_back("x-api-key", key);
      format.headers.emplace_back("anthropic-version", "2023-06-01");
      const std::string name = upstream_model;
      format.convert = [name](absl::string_view b) {
        return AnthropicResponseToOpenAiChat(core::internal::ToStd(b), name);
      };
      format.stream.push_back(NewAnthropicToOpenAiStream(name, facts_.asks_usage || to_anthropic));
      break;
    }
    case v1::Provider::KIND_OLLAMA: {
      format.url = base + "/api/chat";
      absl::StatusOr<std::string> body = OpenAiChatRequestToOllama(openai_body, upstream_model);
      if (!body.ok()) return body.status();
      format.body = *std::move(body);
      if (!key.empty()) format.headers.emplace_back("Authorization", absl::StrCat("Bearer ", key));
      const std::string name = upstream_model;
      format.convert = [name](absl::string_view b) {
        return OllamaResponseToOpenAiChat(core::internal::ToStd(b), name);
      };
      format.stream.push_back(NewOllamaToOpenAiStream(name, facts_.asks_usage || to_anthropic));
      break;
    }
    default: {  // OpenAI wire: the body passes through, only "model" changes.
      format.url = base + operation_.upstream_path;
      format.body = SpliceModel(openai_body, facts, upstream_model);
      // Usage on streams, always (for accounting); the caller sees it only
      // if it asked.
      if (facts.stream && !facts.has_stream_options) format.body = AddIncludeUsage(format.body);
      if (!key.empty()) format.headers.emplace_back("Authorization", absl::StrCat("Bearer ", key));
      format.convert = [](absl::string_view b) -> absl::StatusOr<std::string> {
        return std::string(b);
      };
      format.native_errors = !to_anthropic;
      format.stream.push_back(NewOpenAiStreamInspector(facts_.asks_usage || to_anthropic));
      break;
    }
  }
  if (to_anthropic) {
    // And back into the caller's shape.
    auto inner = std::move(format.convert);
    const std::string front_model = facts_.model;
    format.convert = [inner = std::move(inner),
                      front_model](absl::string_view b) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> openai = inner(b);
      if (!openai.ok()) return openai.status();
      return OpenAiChatResponseToAnthropic(*openai, front_model);
    };
    format.stream.push_back(NewOpenAiToAnthropicStream(facts_.model));
  }
  if (const std::string* trace = request_.FindHeader("traceparent")) {
    format.headers.emplace_back("traceparent", *trace);
  }
  for (const auto& [name, value] : request_.headers) {
    // Test and mock knobs pass through; nothing else of the caller's does.
    if (absl::StartsWithIgnoreCase(name, "x-mock-")) format.headers.emplace_back(name, value);
  }
  return format;
}

void ProxyCall::Send() {
  absl::StatusOr<AttemptFormat> format = continuing_
                                             ? Prepare(continuation_body_, continuation_facts_)
                                             : Prepare(openai_body_, facts_);
  if (!format.ok()) {
    current_.state->OnAbandoned();
    if (continuing_) {
      return EndStreamWithError(absl::StrCat(cut_reason_, "; cannot continue on ", EndpointName(),
                                             ": ", format.status().message()),
                                "upstream_cut");
    }
    // The caller's request cannot be said in this upstream's terms.
    return RespondError(400, format.status().message());
  }
  if (continuing_ && operation_.front == Front::kAnthropic) {
    // The caller's Anthropic stream goes on: keep its translator and state.
    format->stream.back() = std::move(format_.stream.back());
  }
  format_ = *std::move(format);
  const v1::Timeouts& timeouts = current_.provider->timeouts();
  core::HttpClientRequest upstream;
  upstream.method = "POST";
  upstream.url = format_.url;
  upstream.body = std::move(format_.body);
  upstream.headers = std::move(format_.headers);
  upstream.connect_timeout = FromProto(timeouts.connect(), absl::Seconds(2));
  upstream.first_byte_timeout = FromProto(timeouts.first_byte(), absl::Seconds(30));
  upstream.idle_timeout = FromProto(timeouts.idle(), absl::Seconds(60));
  upstream.total_timeout = FromProto(timeouts.total(), absl::Seconds(600));

  status_ = 0;
  retry_after_.reset();
  buffered_.clear();
  held_.clear();
  stream_ok_ = false;
  ttft_.reset();
  content_seen_.store(false);
  const uint64_t attempt = attempt_id_.fetch_add(1) + 1;
  attempt_started_ = absl::Now();
  attempt_in_flight_ = true;
  std::shared_ptr<HttpCall> call;
  {
    absl::MutexLock lock(&call_mu_);
    if (cancelled_) {
      current_.state->OnAbandoned();
      return;
    }
    call_ = gateway_.client().Start(std::move(upstream), shared_from_this());
    call = call_;
  }
  if (facts_.stream) {
    // Rule: a stream whose first content is late is abandoned once
    // first_token passes, if nothing reached the caller yet.
    const absl::Duration first_token = FromProto(timeouts.first_token(), absl::Seconds(30));
    first_token_timer_ = gateway_.delays().After(
        first_token, [weak = weak_from_this(), attempt, weak_call = std::weak_ptr<HttpCall>(call)] {
          auto self = weak.lock();
          auto call = weak_call.lock();
          if (!self || !call) return;
          {
            // Decided under the lock OnBody takes when content arrives: the
            // stream is either abandoned here or delivered there, never both.
            absl::MutexLock lock(&self->call_mu_);
            if (self->attempt_id_.load() != attempt || self->content_seen_.load()) return;
            self->first_token_expired_.store(attempt);
          }
          call->Cancel();
        });
  }
}

std::string ProxyCall::Translate(std::string_view bytes) {
  std::string out(bytes);
  for (auto& translator : format_.stream) out = translator->Feed(out);
  return out;
}

std::string ProxyCall::FinishTranslation() {
  std::string out;
  for (auto& translator : format_.stream) out = translator->Feed(out) + translator->Finish();
  return out;
}

void ProxyCall::StartClientStream() {
  streaming_ = true;
  HttpHeaders out = ResponseHeaders(/*with_endpoint=*/true);
  out.emplace_back("Content-Type", "text/event-stream");
  out.emplace_back("Cache-Control", "no-cache");
  writer_->StartStream(200, std::move(out));
}

void ProxyCall::OnHead(int status, const HttpHeaders& headers) {
  status_ = status;
  retry_after_ = RetryAfter(headers);
  stream_ok_ = status >= 200 && status < 300 && facts_.stream;
}

void ProxyCall::OnBody(std::string_view piece) {
  if (!stream_ok_) {
    buffered_.append(piece);
    return;
  }
  std::string out = Translate(piece);
  if (!content_seen_.load() && format_.stream.front()->saw_content()) {
    {
      absl::MutexLock lock(&call_mu_);
      if (first_token_expired_.load() == attempt_id_.load()) return;  // Too late: abandoned.
      content_seen_.store(true);
    }
    gateway_.delays().Cancel(first_token_timer_);
    ttft_ = absl::Now() - attempt_started_;
  }
  if (!streaming_) {
    // Nothing goes to the caller before the first content: until then the
    // attempt may still be abandoned for another.
    held_.append(out);
    if (!content_seen_.load()) return;
    StartClientStream();
    out = std::move(held_);
    held_.clear();
  }
  if (!out.empty() && !writer_->Write(std::move(out))) {
    absl::MutexLock lock(&call_mu_);
    if (call_) call_->Cancel();
  }
}

void ProxyCall::EndStreamWithError(absl::string_view message, absl::string_view code) {
  const std::string body =
      operation_.front == Front::kAnthropic
          ? absl::StrCat("event: error\ndata: ", AnthropicErrorBody(message, "api_error"), "\n\n")
          : absl::StrCat("data: ", OpenAiErrorBody(message, "upstream_error", code), "\n\n");
  writer_->Write(body);
  writer_->Finish();
}

void ProxyCall::OnDone(const HttpCallOutcome& raw_outcome) {
  const absl::Duration elapsed = absl::Now() - attempt_started_;
  upstream_time_ += elapsed;
  attempt_in_flight_ = false;
  {
    absl::MutexLock lock(&call_mu_);
    call_.reset();
  }
  if (const uint64_t timer = first_token_timer_.load(); timer != 0) gateway_.delays().Cancel(timer);
  HttpCallOutcome outcome = raw_outcome;
  const bool first_token_late = first_token_expired_.load() == attempt_id_.load() &&
                                outcome.failure == HttpCallFailure::kCancelled;
  if (first_token_late) {
    outcome = {HttpCallFailure::kFirstByteTimeout, "first token timeout: no content in time"};
  } else if (outcome.failure == HttpCallFailure::kCancelled) {
    current_.state->OnAbandoned();  // The caller left; the endpoint is not to blame.
    return;
  }
  if (streaming_) {
    StreamTranslator& upstream = *format_.stream.front();
    if (outcome.ok() && upstream.saw_finish()) {
      current_.state->OnSuccess(elapsed, ttft_);
      std::string tail = FinishTranslation();
      if (!tail.empty()) writer_->Write(std::move(tail));
      writer_->Finish();
      return;
    }
    // Cut or stalled after content reached the caller: never a truncated
    // answer dressed as success.
    current_.state->OnFailure(outcome.failure == HttpCallFailure::kIdleTimeout ||
                                      outcome.failure == HttpCallFailure::kTotalTimeout
                                  ? FailureKind::kTimeout
                                  : FailureKind::kServerError);
    std::string why =
        stream_ok_ || !outcome.ok()
            ? (outcome.ok() ? "the stream closed before the answer ended" : outcome.message)
            : absl::StrCat("answered ", status_, " ", buffered_.substr(0, 200));
    if (continuing_) {
      // Never let the continuation's failure hide the real one.
      return EndStreamWithError(
          absl::StrCat(cut_reason_, "; continuing on ", EndpointName(), " failed: ", why),
          "upstream_cut");
    }
    std::string reason = absl::StrCat("the upstream stream from ", EndpointName(), " broke: ", why);
    if (TryContinue(reason)) return;
    EndStreamWithError(reason,
                       outcome.ok() ? "upstream_cut" : HttpCallFailureName(outcome.failure));
    return;
  }
  switch (outcome.failure) {
    case HttpCallFailure::kNone:
      break;
    case HttpCallFailure::kConnectTimeout:
    case HttpCallFailure::kFirstByteTimeout:
    case HttpCallFailure::kIdleTimeout:
    case HttpCallFailure::kTotalTimeout:
      // Silence is not retried on the same endpoint: it only multiplies the wait.
      ++timed_out_;
      current_.state->OnFailure(FailureKind::kTimeout);
      failures_.push_back(absl::StrCat(EndpointName(), ": ", outcome.message));
      return MoveOn();
    case HttpCallFailure::kConnect:
      return Transient(outcome, FailureKind::kConnect, std::nullopt);
    default:
      return Transient(outcome, FailureKind::kServerError, std::nullopt);
  }
  if (stream_ok_) {
    // A 2xx stream that ended before any content: pass on what there was.
    current_.state->OnSuccess(elapsed, ttft_);
    StartClientStream();
    std::string tail = held_ + FinishTranslation();
    if (!tail.empty()) writer_->Write(std::move(tail));
    writer_->Finish();
    return;
  }
  if (status_ >= 200 && status_ < 300) {
    absl::StatusOr<std::string> body = format_.convert(buffered_);
    if (!body.ok()) {
      return Transient({HttpCallFailure::kProtocol,
                        absl::StrCat("unreadable answer: ", body.status().message())},
                       FailureKind::kServerError, std::nullopt);
    }
    current_.state->OnSuccess(elapsed);
    HttpHeaders headers = ResponseHeaders(/*with_endpoint=*/true);
    headers.emplace_back("Content-Type", "application/json");
    return Respond(status_, std::move(headers), *std::move(body));
  }
  const std::optional<absl::Duration> retry_after = retry_after_;
  if (status_ == 429) {
    ++rate_limited_;
    return Transient({HttpCallFailure::kNone, absl::StrCat("429 ", buffered_.substr(0, 200))},
                     FailureKind::kRateLimited, retry_after);
  }
  if (status_ >= 500) {
    return Transient({HttpCallFailure::kNone, absl::StrCat(status_, " ", buffered_.substr(0, 200))},
                     FailureKind::kServerError, retry_after);
  }
  if (status_ == 401 || status_ == 403 || status_ == 404) {
    // The endpoint is misconfigured (our key, its model name): not the caller's fault.
    current_.state->OnFailure(FailureKind::kServerError);
    failures_.push_back(absl::StrCat(EndpointName(), ": ", status_, " ", buffered_.substr(0, 200)));
    return MoveOn();
  }
  // The caller's own fault: back as it is, except a context-length error,
  // which may go to a candidate with a larger window.
  current_.state->OnSuccess(elapsed);
  if (absl::StrContains(buffered_, "context_length_exceeded") ||
      absl::StrContains(buffered_, "prompt is too long")) {
    const uint32_t window = current_.model->context_window();
    for (size_t next = candidate_ + 1; next < plan_.attempts.size(); ++next) {
      if (plan_.attempts[next].model->context_window() > window) {
        failures_.push_back(absl::StrCat(EndpointName(), ": context length exceeded"));
        candidate_ = next;
        same_endpoint_retries_ = 0;
        return NextAttempt();
      }
    }
  }
  RespondError(status_, buffered_);
}

bool ProxyCall::TryContinue(std::string cut_reason) {
  if (!plan_.fallback.continue_on_cut() || !operation_.chat ||
      attempts_ >= static_cast<int>(plan_.fallback.max_attempts())) {
    return false;
  }
  const std::string partial = format_.stream.front()->text();
  absl::StatusOr<std::string> body = AppendAssistantPrefill(openai_body_, partial);
  if (!body.ok()) return false;
  absl::StatusOr<OpenAiRequestFacts> facts = ReadOpenAiRequest(*body);
  if (!facts.ok()) return false;
  for (size_t next = candidate_ + 1; next < plan_.attempts.size(); ++next) {
    const Endpoint& e = plan_.attempts[next];
    const auto& caps = e.model->capabilities();
    if (std::find(caps.begin(), caps.end(), "prefill") == caps.end()) continue;
    if (!e.state->BeginAttempt()) continue;
    continuing_ = true;
    cut_reason_ = std::move(cut_reason);
    continuation_body_ = *std::move(body);
    continuation_facts_ = *std::move(facts);
    candidate_ = next;
    current_ = e;
    ++attempts_;
    Send();
    return true;
  }
  return false;
}

void ProxyCall::RespondError(int status, absl::string_view body) {
  HttpHeaders headers = ResponseHeaders(/*with_endpoint=*/true);
  headers.emplace_back("Content-Type", "application/json");
  std::string out;
  if (format_.native_errors) {
    out = std::string(body);
  } else if (operation_.front == Front::kAnthropic) {
    out = ErrorToAnthropic(status, core::internal::ToStd(body));
  } else {
    out = ErrorToOpenAi(status, core::internal::ToStd(body));
  }
  Respond(status, std::move(headers), std::move(out));
}

void ProxyCall::Transient(core::HttpCallOutcome outcome, FailureKind kind,
                          std::optional<absl::Duration> retry_after) {
  failures_.push_back(absl::StrCat(EndpointName(), ": ", outcome.message));
  const absl::Duration max_wait = FromProto(plan_.retry.max_wait(), absl::Seconds(5));
  if (retry_after && (!min_retry_after_ || *retry_after < *min_retry_after_)) {
    min_retry_after_ = retry_after;
  }
  current_.state->OnFailure(kind, retry_after);
  const bool can_retry = same_endpoint_retries_ < plan_.retry.same_endpoint() &&
                         attempts_ < static_cast<int>(plan_.fallback.max_attempts()) &&
                         (!retry_after || *retry_after <= max_wait);
  if (!can_retry) return MoveOn();
  // Exponential backoff with jitter, or the Retry-After the endpoint asked for.
  const absl::Duration backoff = FromProto(plan_.retry.backoff(), absl::Milliseconds(250));
  absl::Duration delay = retry_after.value_or(backoff * std::pow(2.0, same_endpoint_retries_) *
                                              (1.0 + gateway_.Jitter()));
  ++same_endpoint_retries_;
  // The retry itself runs back on the request's loop, like everything else.
  gateway_.delays().After(delay, [self = shared_from_this(), loop = gateway_.CurrentLoop()] {
    self->gateway_.RunOn(loop, [self] {
      if (!self->current_.state->BeginAttempt()) return self->MoveOn();
      ++self->attempts_;
      self->Send();
    });
  });
}

void ProxyCall::MoveOn() {
  ++candidate_;
  same_endpoint_retries_ = 0;
  NextAttempt();
}

int64_t ProxyCall::OverheadMicros() {
  // Upstream time excluded, including the attempt still streaming.
  const absl::Time now = absl::Now();
  const absl::Duration in_flight =
      attempt_in_flight_ ? now - attempt_started_ : absl::ZeroDuration();
  return std::max<int64_t>(0,
                           absl::ToInt64Microseconds(now - started_ - upstream_time_ - in_flight));
}

HttpHeaders ProxyCall::ResponseHeaders(bool with_endpoint) {
  HttpHeaders headers = {{"x-request-id", request_id_},
                         {"x-flowork-overhead-us", absl::StrCat(OverheadMicros())}};
  if (with_endpoint) headers.emplace_back("x-flowork-endpoint", EndpointName());
  return headers;
}

void ProxyCall::Respond(int status, HttpHeaders headers, std::string body) {
  writer_->Send({.status = status, .headers = std::move(headers), .body = std::move(body)});
}

void ProxyCall::RespondFailure() {
  const Front front = operation_.front;
  HttpHeaders headers = ResponseHeaders(/*with_endpoint=*/false);
  const std::string tried =
      failures_.empty() ? "no candidate could be tried" : absl::StrJoin(failures_, "; ");
  if (attempts_ == 0) {
    return Reply(*writer_, front, 503,
                 absl::StrCat("no healthy candidate for `", plan_.target, "`: ", tried),
                 "service_unavailable", "no_healthy_candidate", std::move(headers));
  }
  if (rate_limited_ == attempts_) {
    if (min_retry_after_) {
      headers.emplace_back("Retry-After", absl::StrCat(std::max<int64_t>(
                                              1, absl::ToInt64Seconds(*min_retry_after_))));
    }
    return Reply(*writer_, front, 429, absl::StrCat("every candidate is rate limited: ", tried),
                 "rate_limit_exceeded", "upstream_rate_limited", std::move(headers));
  }
  if (timed_out_ == attempts_) {
    return Reply(*writer_, front, 504, absl::StrCat("every attempt timed out: ", tried),
                 "upstream_error", "upstream_timeout", std::move(headers));
  }
  Reply(*writer_, front, 502, absl::StrCat("every attempt failed: ", tried), "upstream_error",
        "upstream_failed", std::move(headers));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(PolicyEngine& policy,
                                                         core::HttpClient& client,
                                                         core::EventLoops* loops) {
  return std::make_unique<GatewayImpl>(policy, client, loops);
}

std::vector<std::string> Gateway::Routes() {
  std::vector<std::string> routes = {"GET /v1/models"};
  for (const auto& [path, operation] : Operations()) routes.push_back(absl::StrCat("POST ", path));
  return routes;
}

}  // namespace flowork::router
