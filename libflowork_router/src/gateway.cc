// The OpenAI-compatible front: request view -> plan -> attempts over pooled
// upstream connections -> the answer, streamed or whole.

#include "flowork/router/gateway.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "boost/json.hpp"
#include "flowork/core/internal/strings.h"
#include "flowork/core/internal/timer_queue.h"
#include "flowork/core/internal/wall_clock.h"
#include "flowork/core/logging.h"
#include "governance/gateway_metrics.h"
#include "governance/request_trail.h"
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
  bool chat;              // A conversation: translatable to Anthropic and Ollama upstreams.
  const char* audit_api;  // The API's name in audit entries.
};

const std::map<std::string, Operation, std::less<>>& Operations() {
  static const auto* const operations = new std::map<std::string, Operation, std::less<>>{
      {"/v1/chat/completions", {"/chat/completions", "chat", Front::kOpenAi, true, "openai.chat"}},
      {"/v1/completions",
       {"/completions", "completion", Front::kOpenAi, false, "openai.completions"}},
      {"/v1/embeddings", {"/embeddings", "embeddings", Front::kOpenAi, false, "openai.embeddings"}},
      {"/v1/messages",
       {"/chat/completions", "chat", Front::kAnthropic, true, "anthropic.messages"}},
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

// The trace id of a valid W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"),
// or "" for anything else.
std::string TraceId(const std::string* traceparent) {
  if (traceparent == nullptr || traceparent->size() != 55) return "";
  const std::string& t = *traceparent;
  if (t[2] != '-' || t[35] != '-' || t[52] != '-') return "";
  for (size_t i = 0; i < t.size(); ++i) {
    if (i == 2 || i == 35 || i == 52) continue;
    if (!absl::ascii_isxdigit(t[i]) || absl::ascii_isupper(t[i])) return "";
  }
  if (t.compare(0, 2, "ff") == 0) return "";  // Version ff is invalid.
  const std::string trace_id = t.substr(3, 32);
  if (trace_id == std::string(32, '0')) return "";
  return trace_id;
}

// The label of a limiter refusal for /metrics, from the governor's message.
std::string_view LimiterScope(const absl::Status& status) {
  const absl::string_view message = status.message();
  const std::string_view who = absl::StartsWith(message, "tenant") ? "tenant_" : "key_";
  if (absl::StrContains(message, "budget") || absl::StrContains(message, "USD")) {
    return who == "tenant_" ? "tenant_budget" : "key_budget";
  }
  if (absl::StrContains(message, "tokens per minute")) {
    return who == "tenant_" ? "tenant_tpm" : "key_tpm";
  }
  return who == "tenant_" ? "tenant_rpm" : "key_rpm";
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

class GatewayImpl;
// The calls in flight, shared by the gateway and each call: the last call
// to end while the gateway stops wakes its destructor, which may then return
// and free the gateway at once, so what that call touches afterwards (this
// block) must not be the gateway's.
struct LiveCalls {
  std::atomic<int> count{0};
  std::atomic<bool> stopping{false};
  absl::Mutex mu;  // With ended, for the destructor's wait.
  absl::CondVar ended;
};
std::shared_ptr<LiveCalls> NoteCallStarted(GatewayImpl& gateway);
void NoteCallEnded(LiveCalls& live);
bool GatewayStopping(const GatewayImpl& gateway);

// How one attempt talks to its upstream, and turns the answer back into the
// caller's shape.
struct AttemptFormat {
  std::string url;
  std::string body;
  HttpHeaders headers;
  // Whole 2xx answers: upstream body -> the caller's body. Empty when the
  // body passes as it is.
  std::function<absl::StatusOr<std::string>(absl::string_view)> convert;
  // Streams: upstream bytes -> the caller's bytes (a chain of translators).
  std::vector<std::unique_ptr<StreamTranslator>> stream;
  // Whether error bodies pass as they are (same wire format both sides).
  bool native_errors = false;
};

// One try of one endpoint: its request, its HTTP exchange and what came back.
// Touched only under its ProxyCall's `mu_` (and `call` also under `call_mu_`).
struct Attempt {
  Endpoint endpoint;
  AttemptFormat format;
  absl::Time started;
  int status = 0;
  std::optional<absl::Duration> retry_after;  // The answer's Retry-After.
  std::string buffered;                       // A whole answer, or an error body.
  std::string held;                           // Stream bytes held until the first content.
  bool stream_ok = false;                     // A 2xx stream is coming in.
  bool content_seen = false;
  bool first_token_late = false;  // Abandoned by the first-token deadline.
  bool lost = false;              // Another attempt won the race; this one was cancelled.
  bool hedge = false;             // Raced a slow attempt.
  bool continuation = false;      // Continues a cut stream.
  std::optional<absl::Duration> ttft;
  uint64_t first_token_timer = 0;  // TimerQueue ids; 0 = none.
  uint64_t hedge_timer = 0;
  std::shared_ptr<HttpCall> call;

  const std::string& Name() const { return endpoint.name(); }
};

// One client request through its attempts: one at a time, or two at once
// while a hedge races the first. Every entry point (the attempts' HTTP
// callbacks, timers, retries) takes `mu_`, so the state below is never
// touched at once even when attempts run on different threads.
class ProxyCall final : public std::enable_shared_from_this<ProxyCall> {
 public:
  // The request's parts are taken by rvalue reference, not by value: each
  // would otherwise be moved twice (into the parameter, then the member),
  // some twenty string moves per request.
  ProxyCall(GatewayImpl& gateway, HttpRequest&& request,
            std::unique_ptr<HttpResponseWriter> writer, std::string&& openai_body,
            OpenAiRequestFacts&& facts, const Operation& operation, AttemptPlan&& plan,
            std::string&& request_id, absl::Time started, RequestTrail&& trail)
      : gateway_(gateway),
        live_calls_(NoteCallStarted(gateway)),
        request_(std::move(request)),
        writer_(std::move(writer)),
        openai_body_(std::move(openai_body)),
        facts_(std::move(facts)),
        operation_(operation),
        plan_(std::move(plan)),
        request_id_(std::move(request_id)),
        started_(started),
        trail_(std::move(trail)) {
    trail_.Planned(plan_);
  }
  ~ProxyCall() {
    {
      // Unanswered: either the caller went away, or the gateway stopped
      // with the call waiting (a retry's backoff).
      absl::MutexLock lock(&mu_);
      if (GatewayStopping(gateway_)) {
        trail_.Close(503, "cancelled", "the router stopped before the request was answered",
                     OverheadMicros());
      } else {
        trail_.Close(499, "cancelled", "the caller went away", OverheadMicros());
      }
    }
    NoteCallEnded(*live_calls_);
  }

  void Start();

  // From attempt `a`'s exchange, in order: OnHead at most once, OnBody, OnDone.
  void OnHead(const std::shared_ptr<Attempt>& a, int status, const HttpHeaders& headers);
  void OnBody(const std::shared_ptr<Attempt>& a, std::string_view piece);
  void OnDone(const std::shared_ptr<Attempt>& a, const HttpCallOutcome& outcome);

 private:
  // Moves candidate_ to the next candidate that may take an attempt now and
  // claims it; false when none is left within fallback.max_attempts.
  bool ClaimCandidate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NextAttempt() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends one attempt to `endpoint`.
  void Launch(const Endpoint& endpoint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rule 6: `first` is still the only attempt and has no content: race it.
  void Hedge(const std::shared_ptr<Attempt>& first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `a` answers the caller: every other attempt is cancelled.
  void Win(const std::shared_ptr<Attempt>& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `a` is over (at `now`): out of the live set, timers dropped.
  void Forget(const std::shared_ptr<Attempt>& a, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<AttemptFormat> Prepare(const Endpoint& endpoint, const std::string& openai_body,
                                        const OpenAiRequestFacts& facts) const;
  // After a cut: asks a prefill-capable candidate to continue the answer.
  bool TryContinue(const std::shared_ptr<Attempt>& cut, std::string cut_reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `bytes` through the attempt's translators.
  static std::string Translate(Attempt& a, std::string_view bytes);
  static std::string FinishTranslation(Attempt& a);
  void StartClientStream(const Attempt& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The endpoint failed in a way worth retrying (or moving on from).
  void Transient(const std::shared_ptr<Attempt>& a, core::HttpCallOutcome outcome, FailureKind kind,
                 std::optional<absl::Duration> retry_after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MoveOn() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `headers` from ResponseHeaders(..., overhead_us): the trail books the
  // overhead the caller is told.
  void Respond(int status, HttpHeaders headers, std::string body, int64_t overhead_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RespondError(const Attempt* a, int status, absl::string_view body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RespondFailure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An error of the router's own making, in the caller's API shape.
  // `headers` from ResponseHeaders(..., overhead_us), as for Respond.
  void Fail(int status, absl::string_view message, absl::string_view type, absl::string_view code,
            HttpHeaders headers, int64_t overhead_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndStreamWithError(absl::string_view message, absl::string_view code)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Books attempt `a`, which ended with `outcome`, in the audit entry.
  void RecordAttempt(const Attempt& a, const HttpCallOutcome& outcome, bool cut,
                     absl::Duration elapsed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `a` answered (by `now`): its usage is what the request is billed.
  void Answered(const Attempt& a, const TokenUsage& usage, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What every answer carries: request id, the router's overhead so far, and
  // the endpoint that answered (if any).
  HttpHeaders ResponseHeaders(const Attempt* answered, int64_t overhead_us) const;
  int64_t OverheadMicros() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelCall(const std::shared_ptr<Attempt>& a);

  GatewayImpl& gateway_;
  const std::shared_ptr<LiveCalls> live_calls_;  // Outlives the gateway if need be.
  const HttpRequest request_;
  std::unique_ptr<HttpResponseWriter> writer_;
  const std::string openai_body_;  // The request in OpenAI shape.
  const OpenAiRequestFacts facts_;
  const Operation& operation_;
  const AttemptPlan plan_;
  const std::string request_id_;
  const absl::Time started_;

  absl::Mutex mu_;
  size_t candidate_ ABSL_GUARDED_BY(mu_) = 0;  // The last candidate claimed.
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t same_endpoint_retries_ ABSL_GUARDED_BY(mu_) = 0;
  bool hedged_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Attempt> winner_ ABSL_GUARDED_BY(mu_);
  // Upstream time: while at least one attempt is in flight.
  absl::Time busy_since_ ABSL_GUARDED_BY(mu_);
  absl::Duration upstream_time_ ABSL_GUARDED_BY(mu_);
  bool streaming_ ABSL_GUARDED_BY(mu_) = false;  // Content reached the caller: no switching now.
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  int rate_limited_ ABSL_GUARDED_BY(mu_) = 0;
  int timed_out_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Duration> min_retry_after_ ABSL_GUARDED_BY(mu_);
  // Continuing a cut answer on another candidate (route continue_on_cut).
  bool continuing_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Attempt> continue_from_ ABSL_GUARDED_BY(mu_);
  std::string cut_reason_ ABSL_GUARDED_BY(mu_);
  std::string continuation_body_ ABSL_GUARDED_BY(mu_);
  OpenAiRequestFacts continuation_facts_ ABSL_GUARDED_BY(mu_);
  RequestTrail trail_ ABSL_GUARDED_BY(mu_);

  // Taken inside mu_ (never the other way round), and alone by the caller's
  // cancellation: the attempts in flight, changed under both locks.
  absl::Mutex call_mu_;
  std::vector<std::shared_ptr<Attempt>> live_;
  bool cancelled_ ABSL_GUARDED_BY(call_mu_) = false;
};

// Forwards one attempt's HTTP callbacks to its ProxyCall.
class AttemptObserver final : public core::HttpResponseObserver {
 public:
  AttemptObserver(std::shared_ptr<ProxyCall> call, std::shared_ptr<Attempt> attempt)
      : call_(std::move(call)), attempt_(std::move(attempt)) {}
  void OnHead(int status, const HttpHeaders& headers) override {
    call_->OnHead(attempt_, status, headers);
  }
  void OnBody(std::string_view piece) override { call_->OnBody(attempt_, piece); }
  void OnDone(const HttpCallOutcome& outcome) override { call_->OnDone(attempt_, outcome); }

 private:
  const std::shared_ptr<ProxyCall> call_;
  const std::shared_ptr<Attempt> attempt_;
};

class GatewayImpl final : public Gateway {
 public:
  GatewayImpl(PolicyEngine& policy, KeyStore& keys, core::HttpClient& client,
              core::EventLoops* loops, const GatewayGovernance& governance)
      : policy_(policy),
        keys_(keys),
        client_(client),
        loops_(loops),
        governance_(governance),
        metrics_(governance.metrics == nullptr
                     ? nullptr
                     : std::make_unique<GatewayMetrics>(*governance.metrics)) {}

  // Requests in flight refer to the gateway: drop pending retries (their
  // callers get an error or a cut) and wait for the rest to finish.
  ~GatewayImpl() override {
    live_->stopping.store(true);
    delays_.Stop();
    absl::MutexLock lock(&live_->mu);
    while (live_->count.load() != 0) live_->ended.Wait(&live_->mu);
  }

  // A counter, not a lock per call: only stopping waits on it.
  std::shared_ptr<LiveCalls> CallStarted() {
    live_->count.fetch_add(1);
    return live_;
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
  core::internal::TimerQueue& delays() { return delays_; }
  // The gateway is being destroyed: calls still waiting are dropped.
  bool stopping() const { return live_->stopping.load(); }
  GatewayMetrics* metrics() { return metrics_.get(); }
  double Jitter() {
    absl::MutexLock lock(&rng_mu_);
    return std::uniform_real_distribution<double>(0, 0.5)(rng_);
  }

 private:
  void ListModels(const Policy& policy, const v1::ApiKey* key, const std::string& request_id,
                  std::unique_ptr<HttpResponseWriter> writer);
  std::string RequestId(const HttpRequest& request);

  PolicyEngine& policy_;
  KeyStore& keys_;
  core::HttpClient& client_;
  core::EventLoops* const loops_;
  const GatewayGovernance governance_;
  const std::unique_ptr<GatewayMetrics> metrics_;
  // Retry backoff, first-token deadlines and hedges.
  core::internal::TimerQueue delays_;
  std::atomic<uint64_t> counter_{0};
  const uint64_t process_salt_ = std::random_device{}();
  absl::Mutex rng_mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(rng_mu_){std::random_device{}()};
  const std::shared_ptr<LiveCalls> live_ = std::make_shared<LiveCalls>();
};

std::shared_ptr<LiveCalls> NoteCallStarted(GatewayImpl& gateway) { return gateway.CallStarted(); }
void NoteCallEnded(LiveCalls& live) {
  // (The destructor set stopping before reading count: a call ending after
  // that read sees stopping set.)
  if (live.count.fetch_sub(1) == 1 && live.stopping.load()) {
    absl::MutexLock lock(&live.mu);
    live.ended.SignalAll();
  }
}
bool GatewayStopping(const GatewayImpl& gateway) { return gateway.stopping(); }

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
  // "req_" and 64 bits in 11 base64url digits: 15 bytes, short enough for
  // std::string's inline buffer, so the id and its copies (the upstream's
  // and the caller's x-request-id) allocate nothing.
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint64_t bits = process_salt_ ^ (counter_.fetch_add(1) * 0x9E3779B97F4A7C15ULL);
  std::string id = "req_";
  id.resize(15);
  for (size_t i = 4; i < id.size(); ++i, bits >>= 6) id[i] = kDigits[bits & 63];
  return id;
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
  const absl::Time started = core::internal::WallNow();
  std::string request_id = RequestId(request);  // Moved into the call at the end.
  const std::string_view path = request.path();  // Into request.target: used before the move.
  auto operation = Operations().find(path);
  const Front front = operation == Operations().end() ? Front::kOpenAi : operation->second.front;
  RequestTrail trail(governance_, metrics_.get(), started);
  // A request refused before any upstream was asked: answered and booked.
  auto reject = [&](int status, absl::string_view message, absl::string_view type,
                    absl::string_view code, HttpHeaders headers = {}) {
    headers.emplace_back("x-request-id", request_id);
    trail.Close(status, "rejected", core::internal::ToStd(message),
                absl::ToInt64Microseconds(core::internal::WallNow() - started));
    Reply(*writer, front, status, message, type, code, std::move(headers));
  };
  if (trail.auditing()) {
    v1::AuditEntry& entry = trail.entry();
    entry.set_request_id(request_id);
    entry.set_trace_id(TraceId(request.FindHeader("traceparent")));
    entry.set_api(operation == Operations().end() ? std::string(ToAbsl(path))
                                                  : operation->second.audit_api);
  }
  // Who is asking, before anything else.
  const std::shared_ptr<const Policy> snapshot = policy_.Current();
  const std::string* authorization = request.FindHeader("authorization");
  const std::string* x_api_key = request.FindHeader("x-api-key");
  absl::StatusOr<std::shared_ptr<const v1::ApiKey>> key =
      keys_.Identify(authorization ? std::string_view(*authorization) : std::string_view(),
                     x_api_key ? std::string_view(*x_api_key) : std::string_view());
  if (!key.ok()) {
    return reject(401, key.status().message(), "invalid_request_error", "invalid_api_key");
  }
  if (*key != nullptr && trail.auditing()) {
    trail.entry().set_key((*key)->name());
    trail.entry().set_tenant((*key)->tenant());
  }
  if (request.method == "GET" && path == "/v1/models") {
    trail.Close(200, "ok", "", 0);
    return ListModels(*snapshot, key->get(), request_id, std::move(writer));
  }
  if (operation == Operations().end() || request.method != "POST") {
    return reject(404, absl::StrCat("no route for ", request.method, " ", ToAbsl(path)),
                  "invalid_request_error", "unknown_url");
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
    return reject(400, facts.status().message(), "invalid_request_error", "invalid_request");
  }
  trail.set_model(facts->model);
  if (snapshot->Names(facts->model)) trail.ModelResolved();
  if (trail.auditing()) trail.entry().set_stream(facts->stream);
  if (absl::Status allowed = KeyStore::CheckAllowed(key->get(), facts->model); !allowed.ok()) {
    return reject(403, allowed.message(), "invalid_request_error", "model_not_allowed");
  }
  const v1::AuditConfig& audit_config = snapshot->config().audit();
  trail.CaptureBodies(audit_config, openai_body);
  if (governance_.audit != nullptr && audit_config.on_full() != v1::AuditConfig::ON_FULL_DROP &&
      governance_.audit->Full()) {
    // No request goes unaudited: refuse until the writer catches up.
    return reject(503, "the audit trail is falling behind; retry shortly", "service_unavailable",
                  "audit_backlog", HttpHeaders{{"Retry-After", "1"}});
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
  // Limits and budgets belong to keys and their tenants: an anonymous
  // caller (auth: none) has none to check.
  if (governance_.usage != nullptr && *key != nullptr) {
    UsageSubject subject;
    subject.key = (*key)->name();
    subject.tenant = (*key)->tenant();
    subject.key_limits = &(*key)->limits();
    subject.key_budget = &(*key)->budget();
    if (const v1::Tenant* tenant = snapshot->FindTenant(subject.tenant)) {
      subject.tenant_limits = &tenant->limits();
      subject.tenant_budget = &tenant->budget();
    }
    absl::StatusOr<UsageReservation> reservation =
        governance_.usage->Admit(subject, uint64_t{view.estimated_prompt_tokens} + view.max_tokens);
    if (!reservation.ok()) {
      if (metrics_ != nullptr) metrics_->LimiterRejection(LimiterScope(reservation.status()));
      const absl::Duration wait = UsageRetryAfter(reservation.status()).value_or(absl::Seconds(1));
      return reject(
          429, reservation.status().message(), "rate_limit_exceeded", "rate_limit_exceeded",
          HttpHeaders{
              {"Retry-After", absl::StrCat(std::max<int64_t>(
                                  1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1)))))}});
    }
    trail.Admitted(*std::move(reservation));
  }
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
  // The view is kept only when a refusal may need explaining in the audit.
  absl::StatusOr<AttemptPlan> plan =
      trail.auditing() ? policy_.Plan(*snapshot, view) : policy_.Plan(*snapshot, std::move(view));
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kNotFound) {
      return reject(404, absl::StrCat("The model `", facts->model, "` does not exist"),
                    "invalid_request_error", "model_not_found");
    }
    if (trail.auditing()) {
      // Every candidate's verdict, so the entry says why nothing was tried
      // (a zone the key may not use, open circuits, ...).
      view.seed = std::nullopt;
      if (absl::StatusOr<AttemptPlan> explained = policy_.Explain(*snapshot, std::move(view));
          explained.ok()) {
        trail.Planned(*explained);
      }
    }
    return reject(503, plan.status().message(), "service_unavailable", "no_healthy_candidate");
  }
  auto call = std::make_shared<ProxyCall>(
      *this, std::move(request), std::move(writer), std::move(openai_body), *std::move(facts),
      operation->second, *std::move(plan), std::move(request_id), started, std::move(trail));
  call->Start();
}

void ProxyCall::Start() {
  writer_->OnCancel([weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    std::vector<std::shared_ptr<HttpCall>> calls;
    {
      absl::MutexLock lock(&self->call_mu_);
      self->cancelled_ = true;
      for (const auto& attempt : self->live_) {
        if (attempt->call) calls.push_back(attempt->call);
      }
    }
    for (const auto& call : calls) call->Cancel();
  });
  absl::MutexLock lock(&mu_);
  NextAttempt();
}

bool ProxyCall::ClaimCandidate() {
  const int max_attempts = static_cast<int>(plan_.fallback.max_attempts);
  for (; candidate_ < plan_.attempts.size() && attempts_ < max_attempts; ++candidate_) {
    const Endpoint& endpoint = plan_.attempts[candidate_];
    const v1::Provider::Kind kind = endpoint.provider->kind();
    const bool openai_wire = kind == v1::Provider::KIND_OPENAI || kind == v1::Provider::KIND_MOCK;
    const std::string& name = endpoint.name();
    if (!openai_wire && !operation_.chat) {
      failures_.push_back(absl::StrCat(name, ": provider kind ", v1::Provider::Kind_Name(kind),
                                       " does not serve ", operation_.capability));
      continue;
    }
    if (!endpoint.state->BeginAttempt()) {
      failures_.push_back(absl::StrCat(name, ": circuit open"));
      continue;
    }
    ++attempts_;
    return true;
  }
  return false;
}

void ProxyCall::NextAttempt() {
  if (ClaimCandidate()) return Launch(plan_.attempts[candidate_]);
  if (!live_.empty()) return;  // A hedge is still running: its outcome decides.
  RespondFailure();
}

void ProxyCall::Hedge(const std::shared_ptr<Attempt>& first) {
  if (hedged_ || winner_ != nullptr || live_.size() != 1 || live_.front() != first ||
      first->content_seen || continuing_) {
    return;
  }
  ++candidate_;
  same_endpoint_retries_ = 0;
  if (!ClaimCandidate()) return;  // Nothing to race with: the first goes on alone.
  hedged_ = true;
  Launch(plan_.attempts[candidate_]);
}

void ProxyCall::Win(const std::shared_ptr<Attempt>& a) {
  winner_ = a;
  // Alone (no hedge racing): no one to cancel. (live_ changes only under
  // mu_ too, which we hold: reading it needs no call_mu_.)
  if (live_.empty() || (live_.size() == 1 && live_.front() == a)) return;
  std::vector<std::shared_ptr<HttpCall>> losers;
  {
    absl::MutexLock lock(&call_mu_);
    for (const auto& other : live_) {
      if (other == a || other->lost) continue;
      other->lost = true;
      if (other->call) losers.push_back(other->call);
    }
  }
  for (const auto& other : live_) {
    if (other != a) {
      gateway_.delays().Cancel(other->first_token_timer);
      gateway_.delays().Cancel(other->hedge_timer);
    }
  }
  for (const auto& call : losers) call->Cancel();
}

void ProxyCall::Forget(const std::shared_ptr<Attempt>& a, absl::Time now) {
  gateway_.delays().Cancel(a->first_token_timer);
  gateway_.delays().Cancel(a->hedge_timer);
  {
    absl::MutexLock lock(&call_mu_);
    a->call.reset();
    live_.erase(std::remove(live_.begin(), live_.end(), a), live_.end());
  }
  if (live_.empty()) upstream_time_ += now - busy_since_;
}

void ProxyCall::CancelCall(const std::shared_ptr<Attempt>& a) {
  std::shared_ptr<HttpCall> call;
  {
    absl::MutexLock lock(&call_mu_);
    call = a->call;
  }
  if (call) call->Cancel();
}

absl::StatusOr<AttemptFormat> ProxyCall::Prepare(const Endpoint& endpoint,
                                                 const std::string& openai_body,
                                                 const OpenAiRequestFacts& facts) const {
  const v1::Provider& provider = *endpoint.provider;
  const v1::Model& model = *endpoint.model;
  const std::string upstream_model =
      model.upstream_model().empty() ? model.name() : model.upstream_model();
  const absl::string_view base = absl::StripSuffix(provider.base_url(), "/");
  const std::string key = ProviderKey(provider);
  const bool to_anthropic = operation_.front == Front::kAnthropic;
  AttemptFormat format;
  format.headers.reserve(8);  // These, a key, a version and a trace.
  format.headers.emplace_back("Content-Type", "application/json");
  format.headers.emplace_back("Accept", facts_.stream ? "text/event-stream" : "application/json");
  format.headers.emplace_back("User-Agent", "flowork-router");
  format.headers.emplace_back("x-request-id", request_id_);
  if (const std::string* traceparent = request_.FindHeader("traceparent");
      !TraceId(traceparent).empty()) {
    format.headers.emplace_back("traceparent", *traceparent);
  }
  switch (provider.kind()) {
    case v1::Provider::KIND_ANTHROPIC: {
      format.url = absl::StrCat(base, "/messages");
      absl::StatusOr<std::string> body = OpenAiChatRequestToAnthropic(openai_body, upstream_model);
      if (!body.ok()) return body.status();
      format.body = *std::move(body);
      if (!key.empty()) format.headers.emplace_back("x-api-key", key);
      format.headers.emplace_back("anthropic-version", "2023-06-01");
      const std::string name = upstream_model;
      format.convert = [name](absl::string_view b) {
        return AnthropicResponseToOpenAiChat(core::internal::ToStd(b), name);
      };
      if (facts.stream)
        format.stream.push_back(
            NewAnthropicToOpenAiStream(name, facts_.asks_usage || to_anthropic));
      break;
    }
    case v1::Provider::KIND_OLLAMA: {
      format.url = absl::StrCat(base, "/api/chat");
      absl::StatusOr<std::string> body = OpenAiChatRequestToOllama(openai_body, upstream_model);
      if (!body.ok()) return body.status();
      format.body = *std::move(body);
      if (!key.empty()) format.headers.emplace_back("Authorization", absl::StrCat("Bearer ", key));
      const std::string name = upstream_model;
      format.convert = [name](absl::string_view b) {
        return OllamaResponseToOpenAiChat(core::internal::ToStd(b), name);
      };
      if (facts.stream)
        format.stream.push_back(NewOllamaToOpenAiStream(name, facts_.asks_usage || to_anthropic));
      break;
    }
    default: {  // OpenAI wire: the body passes through, only "model" changes.
      format.url = absl::StrCat(base, operation_.upstream_path);
      format.body = SpliceModel(openai_body, facts, upstream_model);
      // Usage on streams, always (for accounting); the caller sees it only
      // if it asked.
      if (facts.stream && !facts.has_stream_options) format.body = AddIncludeUsage(format.body);
      if (!key.empty()) format.headers.emplace_back("Authorization", absl::StrCat("Bearer ", key));
      format.native_errors = !to_anthropic;
      if (facts.stream)
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
      if (!inner) return OpenAiChatResponseToAnthropic(core::internal::ToStd(b), front_model);
      absl::StatusOr<std::string> openai = inner(b);
      if (!openai.ok()) return openai.status();
      return OpenAiChatResponseToAnthropic(*openai, front_model);
    };
    if (facts.stream) format.stream.push_back(NewOpenAiToAnthropicStream(facts_.model));
  }
  for (const auto& [name, value] : request_.headers) {
    // Test and mock knobs pass through; nothing else of the caller's does.
    if (core::internal::StartsWithLower(name, "x-mock-")) format.headers.emplace_back(name, value);
  }
  return format;
}

void ProxyCall::Launch(const Endpoint& endpoint) {
  auto a = std::make_shared<Attempt>();
  a->endpoint = endpoint;
  absl::StatusOr<AttemptFormat> format =
      continuing_ ? Prepare(endpoint, continuation_body_, continuation_facts_)
                  : Prepare(endpoint, openai_body_, facts_);
  if (!format.ok()) {
    endpoint.state->OnAbandoned();
    if (continuing_) {
      return EndStreamWithError(absl::StrCat(cut_reason_, "; cannot continue on ", a->Name(), ": ",
                                             format.status().message()),
                                "upstream_cut");
    }
    if (!live_.empty()) {
      // A hedge that this upstream cannot be asked: the first attempt goes on.
      failures_.push_back(absl::StrCat(a->Name(), ": ", format.status().message()));
      return;
    }
    // The caller's request cannot be said in this upstream's terms.
    return RespondError(nullptr, 400, format.status().message());
  }
  if (continuing_ && operation_.front == Front::kAnthropic) {
    // The caller's Anthropic stream goes on: keep its translator and state.
    format->stream.back() = std::move(continue_from_->format.stream.back());
  }
  a->format = *std::move(format);
  a->hedge = !live_.empty();
  a->continuation = continuing_;
  const v1::Timeouts& timeouts = endpoint.provider->timeouts();
  core::HttpClientRequest upstream;
  upstream.method = "POST";
  upstream.url = std::move(a->format.url);
  upstream.body = std::move(a->format.body);
  upstream.headers = std::move(a->format.headers);
  upstream.connect_timeout = FromProto(timeouts.connect(), absl::Seconds(2));
  upstream.first_byte_timeout = FromProto(timeouts.first_byte(), absl::Seconds(30));
  upstream.idle_timeout = FromProto(timeouts.idle(), absl::Seconds(60));
  upstream.total_timeout = FromProto(timeouts.total(), absl::Seconds(600));

  a->started = core::internal::WallNow();
  {
    absl::MutexLock lock(&call_mu_);
    if (cancelled_) {
      endpoint.state->OnAbandoned();
      return;
    }
    if (live_.empty()) busy_since_ = a->started;
    live_.push_back(a);
    a->call = gateway_.client().Start(std::move(upstream),
                                      std::make_shared<AttemptObserver>(shared_from_this(), a));
  }
  const std::weak_ptr<ProxyCall> weak = weak_from_this();
  if (facts_.stream) {
    // Rule 2: a stream whose first content is late is abandoned once
    // first_token passes, if nothing reached the caller yet.
    const absl::Duration first_token = FromProto(timeouts.first_token(), absl::Seconds(30));
    a->first_token_timer = gateway_.delays().At(core::internal::WallNow() + first_token, [weak, a] {
      auto self = weak.lock();
      if (!self) return;
      {
        absl::MutexLock lock(&self->mu_);
        if (a->content_seen || a->lost) return;
        a->first_token_late = true;
      }
      self->CancelCall(a);
    });
  }
  if (plan_.hedge_after && !hedged_ && !continuing_ && live_.size() == 1) {
    // Rule 6: when the first token is late, race the next candidate. The
    // hedge starts on the request's loop, like everything else.
    a->hedge_timer = gateway_.delays().At(core::internal::WallNow() + *plan_.hedge_after,
                                          [weak, a, loop = gateway_.CurrentLoop()] {
                                            auto self = weak.lock();
                                            if (!self) return;
                                            self->gateway_.RunOn(loop, [self, a] {
                                              absl::MutexLock lock(&self->mu_);
                                              self->Hedge(a);
                                            });
                                          });
  }
}

std::string ProxyCall::Translate(Attempt& a, std::string_view bytes) {
  std::string out(bytes);
  for (auto& translator : a.format.stream) out = translator->Feed(out);
  return out;
}

std::string ProxyCall::FinishTranslation(Attempt& a) {
  std::string out;
  for (auto& translator : a.format.stream) out = translator->Feed(out) + translator->Finish();
  return out;
}

void ProxyCall::StartClientStream(const Attempt& a) {
  streaming_ = true;
  HttpHeaders out = ResponseHeaders(&a, OverheadMicros());
  out.emplace_back("Content-Type", "text/event-stream");
  out.emplace_back("Cache-Control", "no-cache");
  writer_->StartStream(200, std::move(out));
}

void ProxyCall::OnHead(const std::shared_ptr<Attempt>& a, int status, const HttpHeaders& headers) {
  absl::MutexLock lock(&mu_);
  a->status = status;
  a->retry_after = RetryAfter(headers);
  a->stream_ok = status >= 200 && status < 300 && facts_.stream;
}

void ProxyCall::OnBody(const std::shared_ptr<Attempt>& a, std::string_view piece) {
  absl::MutexLock lock(&mu_);
  if (a->lost || a->first_token_late) return;  // Abandoned: its OnDone follows.
  if (!a->stream_ok) {
    a->buffered.append(piece);
    return;
  }
  std::string out = Translate(*a, piece);
  if (!a->content_seen && a->format.stream.front()->saw_content()) {
    a->content_seen = true;
    gateway_.delays().Cancel(a->first_token_timer);
    gateway_.delays().Cancel(a->hedge_timer);
    a->ttft = core::internal::WallNow() - a->started;
    Win(a);  // The first attempt with content answers; a racing hedge is cancelled.
  }
  if (!streaming_) {
    // Nothing goes to the caller before the first content: until then the
    // attempt may still be abandoned for another.
    a->held.append(out);
    if (!a->content_seen) return;
    StartClientStream(*a);
    out = std::move(a->held);
    a->held.clear();
  }
  if (!out.empty() && !writer_->Write(std::move(out))) CancelCall(a);
}

void ProxyCall::EndStreamWithError(absl::string_view message, absl::string_view code) {
  trail_.Close(200, "failed", core::internal::ToStd(message), OverheadMicros());
  const std::string body =
      operation_.front == Front::kAnthropic
          ? absl::StrCat("event: error\ndata: ", AnthropicErrorBody(message, "api_error"), "\n\n")
          : absl::StrCat("data: ", OpenAiErrorBody(message, "upstream_error", code), "\n\n");
  writer_->Write(body);
  writer_->Finish();
}

void ProxyCall::OnDone(const std::shared_ptr<Attempt>& a, const HttpCallOutcome& raw_outcome) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = core::internal::WallNow();
  const absl::Duration elapsed = now - a->started;
  Forget(a, now);
  const bool cut =
      streaming_ && winner_ == a && !(raw_outcome.ok() && a->format.stream.front()->saw_finish());
  RecordAttempt(*a, raw_outcome, cut, elapsed);
  if (a->lost) {
    a->endpoint.state->OnAbandoned();  // Lost the race: neither blamed nor billed.
    return;
  }
  HttpCallOutcome outcome = raw_outcome;
  if (a->first_token_late && outcome.failure == HttpCallFailure::kCancelled) {
    outcome = {HttpCallFailure::kFirstByteTimeout, "first token timeout: no content in time"};
  } else if (outcome.failure == HttpCallFailure::kCancelled) {
    a->endpoint.state->OnAbandoned();  // The caller left; the endpoint is not to blame.
    return;
  }
  if (streaming_) {
    StreamTranslator& upstream = *a->format.stream.front();
    if (outcome.ok() && upstream.saw_finish()) {
      a->endpoint.state->OnSuccess(elapsed, a->ttft);
      std::string tail = FinishTranslation(*a);
      if (!tail.empty()) writer_->Write(std::move(tail));
      TokenUsage usage = upstream.usage();
      if (continue_from_ != nullptr) {
        // A continued answer: both attempts' tokens were spent on it.
        const TokenUsage first = continue_from_->format.stream.front()->usage();
        usage.prompt_tokens += first.prompt_tokens;
        usage.completion_tokens += first.completion_tokens;
        usage.cached_prompt_tokens += first.cached_prompt_tokens;
      }
      Answered(*a, usage, now);
      trail_.Close(200, "ok", "", OverheadMicros());
      writer_->Finish();
      return;
    }
    // Cut or stalled after content reached the caller: never a truncated
    // answer dressed as success.
    a->endpoint.state->OnFailure(outcome.failure == HttpCallFailure::kIdleTimeout ||
                                         outcome.failure == HttpCallFailure::kTotalTimeout
                                     ? FailureKind::kTimeout
                                     : FailureKind::kServerError);
    std::string why =
        a->stream_ok || !outcome.ok()
            ? (outcome.ok() ? "the stream closed before the answer ended" : outcome.message)
            : absl::StrCat("answered ", a->status, " ", a->buffered.substr(0, 200));
    if (continuing_) {
      // Never let the continuation's failure hide the real one.
      return EndStreamWithError(
          absl::StrCat(cut_reason_, "; continuing on ", a->Name(), " failed: ", why),
          "upstream_cut");
    }
    std::string reason = absl::StrCat("the upstream stream from ", a->Name(), " broke: ", why);
    if (TryContinue(a, reason)) return;
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
      a->endpoint.state->OnFailure(FailureKind::kTimeout);
      failures_.push_back(absl::StrCat(a->Name(), ": ", outcome.message));
      return MoveOn();
    case HttpCallFailure::kConnect:
      return Transient(a, outcome, FailureKind::kConnect, std::nullopt);
    default:
      return Transient(a, outcome, FailureKind::kServerError, std::nullopt);
  }
  if (a->stream_ok) {
    // A 2xx stream that ended before any content: pass on what there was.
    Win(a);
    a->endpoint.state->OnSuccess(elapsed, a->ttft);
    StartClientStream(*a);
    std::string tail = a->held + FinishTranslation(*a);
    if (!tail.empty()) writer_->Write(std::move(tail));
    Answered(*a, a->format.stream.front()->usage(), now);
    trail_.Close(200, "ok", "", OverheadMicros());
    writer_->Finish();
    return;
  }
  if (a->status >= 200 && a->status < 300) {
    const v1::Provider::Kind kind = a->endpoint.provider->kind();
    const UpstreamWire wire = kind == v1::Provider::KIND_ANTHROPIC ? UpstreamWire::kAnthropic
                              : kind == v1::Provider::KIND_OLLAMA  ? UpstreamWire::kOllama
                                                                   : UpstreamWire::kOpenAi;
    const TokenUsage usage = WholeResponseUsage(wire, a->buffered);
    // A body that passes as it is is moved, not copied.
    absl::StatusOr<std::string> body =
        a->format.convert ? a->format.convert(a->buffered) : std::move(a->buffered);
    if (!body.ok()) {
      return Transient(a,
                       {HttpCallFailure::kProtocol,
                        absl::StrCat("unreadable answer: ", body.status().message())},
                       FailureKind::kServerError, std::nullopt);
    }
    Win(a);
    a->endpoint.state->OnSuccess(elapsed);
    Answered(*a, usage, now);
    trail_.CaptureResponse(*body);
    const int64_t overhead_us = OverheadMicros();
    HttpHeaders headers = ResponseHeaders(a.get(), overhead_us);
    headers.emplace_back("Content-Type", "application/json");
    return Respond(a->status, std::move(headers), *std::move(body), overhead_us);
  }
  const std::string answer = absl::StrCat(a->status, " ", a->buffered.substr(0, 200));
  if (a->status == 429) {
    ++rate_limited_;
    return Transient(a, {HttpCallFailure::kNone, answer}, FailureKind::kRateLimited,
                     a->retry_after);
  }
  if (a->status >= 500) {
    return Transient(a, {HttpCallFailure::kNone, answer}, FailureKind::kServerError,
                     a->retry_after);
  }
  if (a->status == 401 || a->status == 403 || a->status == 404) {
    // The endpoint is misconfigured (our key, its model name): not the caller's fault.
    a->endpoint.state->OnFailure(FailureKind::kServerError);
    failures_.push_back(absl::StrCat(a->Name(), ": ", answer));
    return MoveOn();
  }
  // The caller's own fault: back as it is, except a context-length error,
  // which may go to a candidate with a larger window.
  a->endpoint.state->OnSuccess(elapsed);
  if (absl::StrContains(a->buffered, "context_length_exceeded") ||
      absl::StrContains(a->buffered, "prompt is too long")) {
    failures_.push_back(absl::StrCat(a->Name(), ": context length exceeded"));
    if (!live_.empty()) return;  // A hedge on another model is still running.
    const uint32_t window = a->endpoint.model->context_window();
    for (size_t next = candidate_ + 1; next < plan_.attempts.size(); ++next) {
      if (plan_.attempts[next].model->context_window() > window) {
        candidate_ = next;
        same_endpoint_retries_ = 0;
        return NextAttempt();
      }
    }
  }
  Win(a);
  RespondError(a.get(), a->status, a->buffered);
}

bool ProxyCall::TryContinue(const std::shared_ptr<Attempt>& cut, std::string cut_reason) {
  if (!plan_.fallback.continue_on_cut || !operation_.chat ||
      attempts_ >= static_cast<int>(plan_.fallback.max_attempts)) {
    return false;
  }
  const std::string partial = cut->format.stream.front()->text();
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
    continue_from_ = cut;
    cut_reason_ = std::move(cut_reason);
    continuation_body_ = *std::move(body);
    continuation_facts_ = *std::move(facts);
    candidate_ = next;
    ++attempts_;
    Launch(e);
    return true;
  }
  return false;
}

void ProxyCall::RespondError(const Attempt* a, int status, absl::string_view body) {
  const int64_t overhead_us = OverheadMicros();
  HttpHeaders headers = ResponseHeaders(a, overhead_us);
  headers.emplace_back("Content-Type", "application/json");
  std::string out;
  if (a != nullptr && a->format.native_errors) {
    out = std::string(body);
  } else if (operation_.front == Front::kAnthropic) {
    out = ErrorToAnthropic(status, core::internal::ToStd(body));
  } else {
    out = ErrorToOpenAi(status, core::internal::ToStd(body));
  }
  Respond(status, std::move(headers), std::move(out), overhead_us);
}

void ProxyCall::Transient(const std::shared_ptr<Attempt>& a, core::HttpCallOutcome outcome,
                          FailureKind kind, std::optional<absl::Duration> retry_after) {
  failures_.push_back(absl::StrCat(a->Name(), ": ", outcome.message));
  const absl::Duration max_wait = plan_.retry.max_wait;
  if (retry_after && (!min_retry_after_ || *retry_after < *min_retry_after_)) {
    min_retry_after_ = retry_after;
  }
  a->endpoint.state->OnFailure(kind, retry_after);
  if (!live_.empty()) return;  // A hedge is still running: its outcome decides.
  const bool can_retry = same_endpoint_retries_ < plan_.retry.same_endpoint &&
                         attempts_ < static_cast<int>(plan_.fallback.max_attempts) &&
                         (!retry_after || *retry_after <= max_wait);
  if (!can_retry) return MoveOn();
  // Exponential backoff with jitter, or the Retry-After the endpoint asked for.
  const absl::Duration backoff = plan_.retry.backoff;
  absl::Duration delay = retry_after.value_or(backoff * std::pow(2.0, same_endpoint_retries_) *
                                              (1.0 + gateway_.Jitter()));
  ++same_endpoint_retries_;
  // The retry itself runs back on the request's loop, like everything else.
  gateway_.delays().At(
      core::internal::WallNow() + delay,
      [self = shared_from_this(), endpoint = a->endpoint, loop = gateway_.CurrentLoop()] {
        self->gateway_.RunOn(loop, [self, endpoint] {
          absl::MutexLock lock(&self->mu_);
          if (!endpoint.state->BeginAttempt()) return self->MoveOn();
          ++self->attempts_;
          self->Launch(endpoint);
        });
      });
}

void ProxyCall::MoveOn() {
  if (!live_.empty()) return;  // A hedge is still running: its outcome decides.
  ++candidate_;
  same_endpoint_retries_ = 0;
  NextAttempt();
}

int64_t ProxyCall::OverheadMicros() {
  // Upstream time excluded, including attempts still streaming.
  const absl::Time now = core::internal::WallNow();
  const absl::Duration in_flight = live_.empty() ? absl::ZeroDuration() : now - busy_since_;
  return std::max<int64_t>(0,
                           absl::ToInt64Microseconds(now - started_ - upstream_time_ - in_flight));
}

HttpHeaders ProxyCall::ResponseHeaders(const Attempt* answered, int64_t overhead_us) const {
  HttpHeaders headers;
  headers.reserve(6);  // These, and a few more from the caller.
  headers.emplace_back("x-request-id", request_id_);
  headers.emplace_back("x-flowork-overhead-us", absl::StrCat(overhead_us));
  if (answered != nullptr) headers.emplace_back("x-flowork-endpoint", answered->Name());
  return headers;
}

void ProxyCall::RecordAttempt(const Attempt& a, const HttpCallOutcome& outcome, bool cut,
                              absl::Duration elapsed) {
  if (!trail_.auditing()) return;
  v1::AuditAttempt attempt;
  attempt.set_endpoint(a.Name());
  attempt.set_status(a.status);
  attempt.set_latency_us(absl::ToInt64Microseconds(elapsed));
  if (a.ttft) attempt.set_ttft_us(absl::ToInt64Microseconds(*a.ttft));
  attempt.set_hedge(a.hedge);
  attempt.set_continuation(a.continuation);
  std::string_view error_class;
  if (a.lost) {
    error_class = "lost_race";
  } else if (a.first_token_late) {
    error_class = "timeout";
  } else {
    switch (outcome.failure) {
      case HttpCallFailure::kNone:
        error_class = cut               ? "cut"
                      : a.status == 429 ? "rate_limited"
                      : a.status >= 500 ? "server_error"
                      : a.status >= 400 ? "client_error"
                      : a.status == 0   ? "server_error"
                                        : "";
        break;
      case HttpCallFailure::kCancelled:
        error_class = "cancelled";
        break;
      case HttpCallFailure::kConnect:
        error_class = "connect";
        break;
      case HttpCallFailure::kConnectTimeout:
      case HttpCallFailure::kFirstByteTimeout:
      case HttpCallFailure::kIdleTimeout:
      case HttpCallFailure::kTotalTimeout:
        error_class = "timeout";
        break;
      default:
        error_class = cut ? "cut" : "server_error";
        break;
    }
  }
  attempt.set_error_class(std::string(error_class));
  if (!error_class.empty()) {
    attempt.set_error(outcome.ok() ? absl::StrCat(a.status, " ", a.buffered.substr(0, 200))
                                   : outcome.message);
  }
  trail_.Attempted(std::move(attempt));
}

void ProxyCall::Answered(const Attempt& a, const TokenUsage& usage, absl::Time now) {
  trail_.Answered(a.endpoint, usage, a.ttft);
  if (GatewayMetrics* metrics = gateway_.metrics()) {
    metrics->Circuit(a.Name(), a.endpoint.state->Read(now).circuit);
  }
}

void ProxyCall::Respond(int status, HttpHeaders headers, std::string body, int64_t overhead_us) {
  trail_.Close(status, status < 400 ? "ok" : "failed",
               status < 400 ? std::string_view() : std::string_view(body).substr(0, 300),
               overhead_us);
  writer_->Send({.status = status, .headers = std::move(headers), .body = std::move(body)});
}

void ProxyCall::Fail(int status, absl::string_view message, absl::string_view type,
                     absl::string_view code, HttpHeaders headers, int64_t overhead_us) {
  trail_.Close(status, "failed", core::internal::ToStd(message), overhead_us);
  Reply(*writer_, operation_.front, status, message, type, code, std::move(headers));
}

void ProxyCall::RespondFailure() {
  const int64_t overhead_us = OverheadMicros();
  HttpHeaders headers = ResponseHeaders(nullptr, overhead_us);
  const std::string tried =
      failures_.empty() ? "no candidate could be tried" : absl::StrJoin(failures_, "; ");
  if (GatewayMetrics* metrics = gateway_.metrics()) {
    for (const Endpoint& e : plan_.attempts) {
      metrics->Circuit(e.name(), e.state->Read(core::internal::WallNow()).circuit);
    }
  }
  if (attempts_ == 0) {
    return Fail(503, absl::StrCat("no healthy candidate for `", plan_.target, "`: ", tried),
                "service_unavailable", "no_healthy_candidate", std::move(headers), overhead_us);
  }
  if (rate_limited_ == attempts_) {
    if (min_retry_after_) {
      headers.emplace_back("Retry-After", absl::StrCat(std::max<int64_t>(
                                              1, absl::ToInt64Seconds(*min_retry_after_))));
    }
    return Fail(429, absl::StrCat("every candidate is rate limited: ", tried),
                "rate_limit_exceeded", "upstream_rate_limited", std::move(headers), overhead_us);
  }
  if (timed_out_ == attempts_) {
    return Fail(504, absl::StrCat("every attempt timed out: ", tried), "upstream_error",
                "upstream_timeout", std::move(headers), overhead_us);
  }
  Fail(502, absl::StrCat("every attempt failed: ", tried), "upstream_error", "upstream_failed",
       std::move(headers), overhead_us);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(PolicyEngine& policy, KeyStore& keys,
                                                         core::HttpClient& client,
                                                         core::EventLoops* loops,
                                                         const GatewayGovernance& governance) {
  return std::make_unique<GatewayImpl>(policy, keys, client, loops, governance);
}

std::vector<std::string> Gateway::Routes() {
  std::vector<std::string> routes = {"GET /v1/models"};
  for (const auto& [path, operation] : Operations()) routes.push_back(absl::StrCat("POST ", path));
  return routes;
}

}  // namespace flowork::router
