// The gateway in one process: HttpServer + Gateway + HttpClient in front of
// flowork-mockllm servers (and a capturing upstream where the exact bytes
// matter).
#include "flowork/router/gateway.h"

#include "flowork/router/key_ring.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "flowork/core/config_loader.h"
#include "flowork/core/event_loops.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "flowork/testing/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::flowork::mockllm::MockKnobs;
using ::flowork::mockllm::MockLlmServer;
using ::flowork::testing::ClientResponse;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kChat[] = R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})";
constexpr char kChatStream[] =
    R"({"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]})";

std::unique_ptr<MockLlmServer> StartMock(MockKnobs knobs = {}) {
  mockllm::MockLlmOptions options;
  options.knobs = std::move(knobs);
  auto server = MockLlmServer::Create(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// An upstream that records the request it got and answers a canned body.
class CapturingUpstream final : public core::HttpHandler {
 public:
  void Handle(core::HttpRequest request,
              std::unique_ptr<core::HttpResponseWriter> writer) override {
    {
      absl::MutexLock lock(&mu_);
      last_ = request;
    }
    writer->Send({.status = 200,
                  .headers = {{"Content-Type", "application/json"}},
                  .body = R"({"id":"x","object":"chat.completion","model":"upstream-name"})"});
  }
  core::HttpRequest last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  absl::Mutex mu_;
  core::HttpRequest last_;
};

// The router under test over upstreams on the given ports: "primary" then
// "backup", each a model of its own provider, and route "chat" over both.
class GatewayTest : public ::testing::Test {
 protected:
  void Start(int primary_port, int backup_port, const std::string& extra_route_yaml = "",
             const std::string& primary_timeouts = "{first_byte: 5s}",
             uint32_t primary_context = 8192) {
    const std::string yaml = absl::StrCat(
        R"yaml(
providers:
  - {name: p1, kind: mock, base_url: "http://127.0.0.1:)yaml",
        primary_port, R"yaml(/v1", zone: local, timeouts: )yaml", primary_timeouts, R"yaml(}
  - {name: p2, kind: openai, base_url: "http://127.0.0.1:)yaml",
        backup_port,
        R"yaml(/v1", zone: local}
models:
  - {name: primary, provider: p1, upstream_model: upstream-primary, context_window: )yaml",
        primary_context, R"yaml(, capabilities: [chat, tools, embeddings]}
  - {name: backup, provider: p2, context_window: 128000, capabilities: [chat, tools, embeddings]}
routes:
  - {name: chat, candidates: [primary, backup], retry: {same_endpoint: 1, backoff: 10ms, max_wait: 2s}}
)yaml",
        extra_route_yaml);
    Serve(yaml);
  }

  // The router under test, serving the config in `yaml` (open to callers
  // without keys unless it says otherwise).
  void Serve(std::string yaml) {
    if (!absl::StrContains(yaml, "auth:")) yaml = "auth: {mode: none}\n" + yaml;
    v1::RouterConfig config;
    absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
    ASSERT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
    auto policy = PolicyEngine::Create(config, core::Clock::Real());
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    auto client = core::HttpClient::Create({});
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
    keys_ = *KeyStore::Open({}, *policy_);
    auto gateway = Gateway::Create(*policy_, *keys_, *client_);
    ASSERT_TRUE(gateway.ok());
    gateway_ = *std::move(gateway);
    auto server = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, *gateway_);
    ASSERT_TRUE(server.ok());
    server_ = *std::move(server);
  }

  // One provider of `kind` at `base_url` serving model "m" (route "chat"),
  // and a healthy OpenAI backup behind it when `backup_port` is set.
  void StartKind(const std::string& kind, const std::string& base_url,
                 const std::string& timeouts = "{first_byte: 5s}", int backup_port = 0) {
    std::string yaml = absl::StrCat("providers:\n  - {name: up, kind: ", kind, ", base_url: \"",
                                    base_url, "\", zone: local, timeouts: ", timeouts, "}\n");
    if (backup_port) {
      absl::StrAppend(&yaml,
                      "  - {name: p2, kind: openai, base_url: \"http://127.0.0.1:", backup_port,
                      "/v1\", zone: local}\n");
    }
    absl::StrAppend(&yaml, "models:\n  - {name: m, provider: up, upstream_model: mock-1, ",
                    "capabilities: [chat, tools]}\n");
    if (backup_port) {
      absl::StrAppend(&yaml, "  - {name: backup, provider: p2, capabilities: [chat, tools]}\n");
    }
    absl::StrAppend(&yaml, "routes:\n  - {name: chat, candidates: [m",
                    backup_port ? ", backup" : "", "]}\n");
    Serve(yaml);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(2));
  }

  ClientResponse Post(const std::string& path, const std::string& body,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto response = testing::HttpCall(server_->port(), "POST", path, body, std::move(headers));
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : ClientResponse{};
  }

  EndpointReading Reading(const std::string& id) {
    return policy_->stats().Find(id)->Read(absl::Now());
  }

  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<core::HttpClient> client_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<core::HttpServer> server_;
};

// A port nothing listens on.
int ClosedPort() {
  CapturingUpstream nobody;
  auto server = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, nobody);
  const int port = (*server)->port();
  (*server)->Shutdown(absl::ZeroDuration());
  return port;
}

TEST_F(GatewayTest, PassesTheBodyThroughRewritingOnlyTheModel) {
  CapturingUpstream capture;
  auto upstream = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, capture);
  ASSERT_TRUE(upstream.ok());
  Start((*upstream)->port(), (*upstream)->port());
  const std::string body =
      R"({"temperature": 0, "model" : "chat", "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"x_vendor":{"a":[1,2.50,null]},"n":0})";
  ClientResponse r = Post("/v1/chat/completions", body, {{"x-request-id", "req-42"}});
  EXPECT_EQ(r.status, 200) << r.body;
  core::HttpRequest seen = capture.last();
  EXPECT_EQ(seen.path(), "/v1/chat/completions");
  EXPECT_EQ(
      seen.body,
      R"({"temperature": 0, "model" : "upstream-primary", "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"x_vendor":{"a":[1,2.50,null]},"n":0})");
  EXPECT_EQ(*seen.FindHeader("x-request-id"), "req-42");
  EXPECT_EQ(r.Header("x-request-id"), "req-42");
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_FALSE(r.Header("x-flowork-overhead-us").empty());
  // The answer names the model that answered, as the upstream named it.
  EXPECT_THAT(r.body, HasSubstr(R"("model":"upstream-name")"));
  (*upstream)->Shutdown(absl::ZeroDuration());
}

TEST_F(GatewayTest, AnswersChatThroughTheMock) {
  auto primary = StartMock();
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("Mock answer to: hi."));
  // A made-up id: "req_" and 11 base64url digits, new for every request.
  EXPECT_THAT(r.Header("x-request-id"), MatchesRegex("req_[A-Za-z0-9_-]{11}"));
  EXPECT_NE(Post("/v1/chat/completions", kChat).Header("x-request-id"), r.Header("x-request-id"));
  EXPECT_EQ(backup->calls(), 0);
}

TEST_F(GatewayTest, StreamsChunksAsTheyArrive) {
  MockKnobs knobs;
  knobs.chunk_interval = absl::Milliseconds(150);
  auto primary = StartMock(knobs);
  auto backup = StartMock();
  Start(primary->port(), backup->port());

  // Read with the streaming client: the first chunk must come well before the last.
  class Timestamps final : public core::HttpResponseObserver {
   public:
    void OnHead(int status, const core::HttpHeaders&) override { status_ = status; }
    void OnBody(std::string_view piece) override {
      absl::MutexLock lock(&mu_);
      if (!absl::StrContains(body_, "Mock")) first_content_ = absl::Now();
      body_.append(piece);
    }
    void OnDone(const core::HttpCallOutcome& outcome) override {
      absl::MutexLock lock(&mu_);
      ok_ = outcome.ok();
      done_at_ = absl::Now();
      done_.Notify();
    }
    absl::Mutex mu_;
    int status_ = 0;
    std::string body_;
    absl::Time first_content_ = absl::InfiniteFuture();
    absl::Time done_at_;
    bool ok_ = false;
    absl::Notification done_;
  };
  auto observer = std::make_shared<Timestamps>();
  client_->Start({.method = "POST",
                  .url = absl::StrCat("http://127.0.0.1:", server_->port(), "/v1/chat/completions"),
                  .body = kChatStream},
                 observer);
  ASSERT_TRUE(observer->done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&observer->mu_);
  EXPECT_TRUE(observer->ok_);
  EXPECT_EQ(observer->status_, 200);
  EXPECT_THAT(observer->body_, HasSubstr("data: [DONE]"));
  // 4 deltas 150 ms apart: the first arrived at least ~300 ms before the end.
  EXPECT_GE(observer->done_at_ - observer->first_content_, absl::Milliseconds(300));
}

TEST_F(GatewayTest, OverheadExcludesUpstreamTime) {
  MockKnobs slow;
  slow.latency = absl::Milliseconds(300);
  slow.ttft = absl::Milliseconds(300);
  auto primary = StartMock(slow);
  Start(primary->port(), primary->port());
  for (const char* body : {kChat, kChatStream}) {
    ClientResponse r = Post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    int64_t overhead_us = 0;
    ASSERT_TRUE(absl::SimpleAtoi(r.Header("x-flowork-overhead-us"), &overhead_us));
    // The upstream took 300-600 ms; the router's own share is far below that.
    EXPECT_LT(overhead_us, 150'000) << body;
  }
}

class GatewayKeysTest : public GatewayTest {
 protected:
  // Key "alpha" (team-a) may use route chat with local data only; key "beta"
  // may use anything. Route chat tries a local provider, then a remote one;
  // route cloud is remote only. The local provider may be down
  // (`local_port` closed).
  void StartWithKeys(int port, int local_port = 0) {
    Serve(absl::StrCat(
        "auth: {mode: keys}\n"
        "providers:\n"
        "  - {name: here, kind: openai, base_url: \"http://127.0.0.1:",
        local_port ? local_port : port,
        "/v1\", zone: local}\n"
        "  - {name: there, kind: openai, base_url: \"http://127.0.0.1:",
        port,
        "/v1\", zone: remote}\n"
        "models:\n"
        "  - {name: near, provider: here, upstream_model: mock-1, capabilities: [chat]}\n"
        "  - {name: far, provider: there, upstream_model: mock-1, capabilities: [chat]}\n"
        "routes:\n"
        "  - {name: chat, candidates: [near, far]}\n"
        "  - {name: cloud, candidates: [far]}\n"
        "keys:\n"
        "  - {name: team-a, sha256: \"",
        KeyRing::Sha256Hex("alpha"),
        "\", tenant: a, allow: [chat], zones: [local]}\n"
        "  - {name: team-b, sha256: \"",
        KeyRing::Sha256Hex("beta"), "\", tenant: b}\n"));
  }
};

TEST_F(GatewayKeysTest, MissingOrUnknownKeysAre401) {
  auto mock = StartMock();
  StartWithKeys(mock->port());
  ClientResponse none = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(none.status, 401);
  EXPECT_THAT(none.body, HasSubstr(R"("code":"invalid_api_key")"));
  ClientResponse wrong = Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);
  ClientResponse anthropic =
      Post("/v1/messages", R"({"model":"chat","max_tokens":8,"messages":[]})");
  EXPECT_EQ(anthropic.status, 401);
  EXPECT_THAT(anthropic.body, HasSubstr(R"("type":"authentication_error")"));
  EXPECT_EQ(mock->calls(), 0);
}

TEST_F(GatewayKeysTest, AKnownKeyGetsItsAllowedRoutesOnly) {
  auto mock = StartMock();
  StartWithKeys(mock->port());
  ClientResponse ok = Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer alpha"}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  ClientResponse x_api_key = Post("/v1/chat/completions", kChat, {{"x-api-key", "alpha"}});
  EXPECT_EQ(x_api_key.status, 200);
  ClientResponse forbidden = Post(
      "/v1/chat/completions", R"({"model":"cloud","messages":[{"role":"user","content":"hi"}]})",
      {{"Authorization", "Bearer alpha"}});
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_THAT(forbidden.body, HasSubstr("key team-a may not use `cloud`"));
  auto models = testing::HttpCall(server_->port(), "GET", "/v1/models", "",
                                  {{"Authorization", "Bearer alpha"}});
  EXPECT_THAT(models->body, HasSubstr(R"("id":"chat")"));
  EXPECT_THAT(models->body, Not(HasSubstr(R"("id":"cloud")")));
}

TEST_F(GatewayKeysTest, ALocalOnlyKeyNeverReachesARemoteEndpointEvenWhenLocalIsDown) {
  auto remote = StartMock();
  StartWithKeys(remote->port(), /*local_port=*/ClosedPort());
  ClientResponse r = Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer alpha"}});
  EXPECT_GE(r.status, 500) << r.body;
  EXPECT_THAT(r.body, HasSubstr("near@here"));
  EXPECT_EQ(remote->calls(), 0);  // The remote candidate was never tried.
  ClientResponse other = Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer beta"}});
  EXPECT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(other.Header("x-flowork-endpoint"), "far@there");
}

TEST_F(GatewayTest, RejectsAmbiguousOrTrailingBodies) {
  auto primary = StartMock();
  Start(primary->port(), primary->port());
  ClientResponse twice =
      Post("/v1/chat/completions", R"({"model":"chat","messages":[],"model":"backup"})");
  EXPECT_EQ(twice.status, 400);
  EXPECT_THAT(twice.body, HasSubstr("more than one"));
  ClientResponse trailing = Post("/v1/chat/completions", R"({"model":"chat","messages":[]} {})");
  EXPECT_EQ(trailing.status, 400);
  EXPECT_THAT(trailing.body, HasSubstr("data after its JSON object"));
  EXPECT_EQ(primary->calls(), 0);
}

// As flowork-router runs it: server and upstream client on one set of loops.
TEST(GatewaySharedLoopsTest, ServesOnTheAcceptingLoopAndSurvivesAnUnusableUrl) {
  auto mock = StartMock();
  auto loops = core::EventLoops::Create(1);
  ASSERT_TRUE(loops.ok());
  v1::RouterConfig config;
  ASSERT_TRUE(core::ParseConfigText(
                  absl::StrCat("auth: {mode: none}\n"
                               "providers:\n"
                               "  - {name: ok, kind: openai, base_url: \"HTTP://127.0.0.1:",
                               mock->port(),
                               "/v1\"}\n"
                               "models: [{name: m, provider: ok, upstream_model: mock-1, "
                               "capabilities: [chat]}]\n"),
                  "router.yaml", &config)
                  .ok());
  auto policy = PolicyEngine::Create(config, core::Clock::Real());
  ASSERT_TRUE(policy.ok());
  auto client = core::HttpClient::Create({.loops = loops->get()});
  auto keys = KeyStore::Open({}, **policy);
  auto gateway = Gateway::Create(**policy, **keys, **client, loops->get());
  auto server =
      core::HttpServer::Create({.address = "127.0.0.1:0", .loops = loops->get()}, **gateway);
  ASSERT_TRUE(server.ok());
  for (int i = 0; i < 3; ++i) {
    // Each request fails once upstream, so its retry runs too (on this loop).
    auto r =
        testing::HttpCall((*server)->port(), "POST", "/v1/chat/completions",
                          R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
                          {{"x-mock-fail-first", "1"}, {"x-mock-fail-key", absl::StrCat(i)}}, 5000);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(mock->calls("/v1/chat/completions"), 6);
  (*server)->Shutdown(absl::Seconds(1));
}

TEST_F(GatewayTest, UnknownModelIs404AndBadJsonIs400InOpenAiShape) {
  auto primary = StartMock();
  Start(primary->port(), primary->port());
  ClientResponse unknown = Post("/v1/chat/completions", R"({"model":"gpt-x","messages":[]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body, HasSubstr(R"("code":"model_not_found")"));
  ClientResponse bad = Post("/v1/chat/completions", R"({"model":"chat",)");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr(R"({"error":{"message":"the request body is not valid JSON)"));
  ClientResponse no_model = Post("/v1/chat/completions", R"({"messages":[]})");
  EXPECT_EQ(no_model.status, 400);
  EXPECT_THAT(no_model.body, HasSubstr("no \\\"model\\\""));
}

TEST_F(GatewayTest, ListsModelsAndRoutesInOpenAiShape) {
  auto primary = StartMock();
  Start(primary->port(), primary->port());
  auto r = testing::HttpCall(server_->port(), "GET", "/v1/models");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr(R"("object":"list")"));
  EXPECT_THAT(r->body, HasSubstr(R"({"id":"chat","object":"model")"));
  EXPECT_THAT(r->body, HasSubstr(R"({"id":"backup","object":"model")"));
}

TEST_F(GatewayTest, ServerErrorsAreRetriedOnceThenTheBackupAnswers) {
  MockKnobs failing;
  failing.status = 503;
  auto primary = StartMock(failing);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 2);  // The attempt and one retry.
  EXPECT_EQ(backup->calls("/v1/chat/completions"), 1);
}

TEST_F(GatewayTest, ATransientFailureRecoversOnTheSameEndpoint) {
  MockKnobs flaky;
  flaky.fail_first = 1;
  auto primary = StartMock(flaky);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 2);
  EXPECT_EQ(backup->calls(), 0);
}

TEST_F(GatewayTest, ClientErrorIsReturnedWithoutTryingTheNextEndpoint) {
  MockKnobs refusing;
  refusing.status = 400;
  auto primary = StartMock(refusing);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr(R"("error")"));
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
  EXPECT_EQ(backup->calls(), 0);
}

TEST_F(GatewayTest, ContextLengthErrorMovesOnlyToALargerWindow) {
  MockKnobs too_long;
  too_long.status = 400;
  too_long.error_code = "context_length_exceeded";
  auto primary = StartMock(too_long);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
}

TEST_F(GatewayTest, ContextLengthErrorIsReturnedWhenNoLargerWindowExists) {
  MockKnobs too_long;
  too_long.status = 400;
  too_long.error_code = "context_length_exceeded";
  auto primary = StartMock(too_long);
  auto backup = StartMock();
  Start(primary->port(), backup->port(), "", "{first_byte: 5s}", /*primary_context=*/200000);
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("context_length_exceeded"));
  EXPECT_EQ(backup->calls(), 0);
}

TEST_F(GatewayTest, LongRetryAfterCoolsTheEndpointDownAndMovesOn) {
  MockKnobs limited;
  limited.status = 429;
  limited.retry_after_seconds = 60;  // Longer than max_wait (2s).
  auto primary = StartMock(limited);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));  // Not waited out.
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
  EXPECT_GT(Reading("primary@p1").cooldown_until, absl::Now() + absl::Seconds(50));
  // The next request goes straight to the backup.
  Post("/v1/chat/completions", kChat);
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
}

TEST_F(GatewayTest, SilentPrimaryIsAbandonedAtFirstByteTimeoutWithoutARetry) {
  MockKnobs silent;
  silent.hang = true;
  auto primary = StartMock(silent);
  auto backup = StartMock();
  Start(primary->port(), backup->port(), "", "{first_byte: 300ms}");
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300) + absl::Seconds(1));
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
}

TEST_F(GatewayTest, RefusedConnectionsFailOverToTheBackup) {
  auto backup = StartMock();
  Start(ClosedPort(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
}

TEST_F(GatewayTest, EveryCandidateFailingIsA502NamingEachAttempt) {
  MockKnobs failing;
  failing.status = 500;
  auto primary = StartMock(failing);
  auto backup = StartMock(failing);
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 502);
  EXPECT_THAT(r.body, HasSubstr("every attempt failed: primary@p1: 500"));
  EXPECT_THAT(r.body, HasSubstr("backup@p2: 500"));
  // max_attempts 3 in all: primary, its retry, backup.
  EXPECT_EQ(primary->calls() + backup->calls(), 3);
}

TEST_F(GatewayTest, AStreamCutAfterContentEndsWithAnErrorEventNotASilentSwitch) {
  MockKnobs cutting;
  cutting.cut_after = 2;
  auto primary = StartMock(cutting);
  auto backup = StartMock();
  Start(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("Mock answer"));
  EXPECT_THAT(r.body, HasSubstr(R"("type":"upstream_error")"));
  EXPECT_THAT(r.body, Not(HasSubstr("[DONE]")));
  EXPECT_EQ(backup->calls(), 0);
}

TEST_F(GatewayTest, EmbeddingsGoToTheEmbeddingsEndpoint) {
  auto primary = StartMock();
  Start(primary->port(), primary->port());
  ClientResponse r = Post("/v1/embeddings", R"({"model":"primary","input":"hello"})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("object":"embedding")"));
  EXPECT_EQ(primary->calls("/v1/embeddings"), 1);
}

constexpr char kShort[] = "4";  // x-mock-tokens: "Mock answer to: hi." exactly.

TEST_F(GatewayTest, AnthropicCallersGetAnthropicAnswersFromAnOpenAiUpstream) {
  auto mock = StartMock();
  StartKind("openai", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  ClientResponse r = Post("/v1/messages",
                          R"({"model":"chat","max_tokens":64,"system":"Be brief.",)"
                          R"("messages":[{"role":"user","content":"hi"}]})",
                          {{"x-mock-tokens", kShort}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("type":"message")"));
  EXPECT_THAT(r.body, HasSubstr(R"({"type":"text","text":"Mock answer to: hi."})"));
  EXPECT_THAT(r.body, HasSubstr(R"("stop_reason":"end_turn")"));
  EXPECT_EQ(mock->calls("/v1/chat/completions"), 1);

  ClientResponse stream = Post("/v1/messages",
                               R"({"model":"chat","max_tokens":64,"stream":true,)"
                               R"("messages":[{"role":"user","content":"hi"}]})",
                               {{"x-mock-tokens", kShort}});
  EXPECT_EQ(stream.status, 200);
  EXPECT_THAT(stream.body, HasSubstr("event: message_start"));
  EXPECT_THAT(stream.body, HasSubstr("event: content_block_delta"));
  EXPECT_THAT(stream.body, HasSubstr("event: message_stop"));
  EXPECT_THAT(stream.body, Not(HasSubstr("[DONE]")));
}

TEST_F(GatewayTest, OpenAiCallersGetOpenAiAnswersFromAnAnthropicUpstream) {
  auto mock = StartMock();
  StartKind("anthropic", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  ClientResponse r = Post("/v1/chat/completions", kChat, {{"x-mock-tokens", kShort}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("object":"chat.completion")"));
  EXPECT_THAT(r.body, HasSubstr(R"("content":"Mock answer to: hi.")"));
  EXPECT_EQ(mock->calls("/v1/messages"), 1);

  ClientResponse stream = Post("/v1/chat/completions", kChatStream, {{"x-mock-tokens", kShort}});
  EXPECT_EQ(stream.status, 200);
  EXPECT_THAT(stream.body, HasSubstr("chat.completion.chunk"));
  EXPECT_THAT(stream.body, HasSubstr("data: [DONE]"));
}

TEST_F(GatewayTest, ToolCallsCrossFromAnthropicUpstreamsToOpenAiCallers) {
  auto mock = StartMock();
  StartKind("anthropic", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  const std::string body =
      R"({"model":"chat","messages":[{"role":"user","content":"call:search cheap flights"}],)"
      R"("tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object"}}}]})";
  ClientResponse r = Post("/v1/chat/completions", body);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("finish_reason":"tool_calls")"));
  EXPECT_THAT(r.body, HasSubstr(R"("name":"search")"));
  ClientResponse stream = Post("/v1/chat/completions",
                               absl::StrCat(body.substr(0, body.size() - 1), R"(,"stream":true})"));
  EXPECT_THAT(stream.body, HasSubstr(R"("tool_calls")"));
  EXPECT_THAT(stream.body, HasSubstr("data: [DONE]"));
}

TEST_F(GatewayTest, ToolCallsCrossFromOpenAiUpstreamsToAnthropicCallers) {
  auto mock = StartMock();
  StartKind("openai", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  ClientResponse r =
      Post("/v1/messages", R"({"model":"chat","max_tokens":64,)"
                           R"("messages":[{"role":"user","content":"call:search cheap flights"}],)"
                           R"("tools":[{"name":"search","input_schema":{"type":"object"}}]})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("type":"tool_use")"));
  EXPECT_THAT(r.body, HasSubstr(R"("stop_reason":"tool_use")"));
}

TEST_F(GatewayTest, OllamaNdjsonBecomesServerSentEvents) {
  auto mock = StartMock();
  StartKind("ollama", absl::StrCat("http://127.0.0.1:", mock->port()));
  ClientResponse stream = Post("/v1/chat/completions", kChatStream, {{"x-mock-tokens", kShort}});
  EXPECT_EQ(stream.status, 200) << stream.body;
  EXPECT_EQ(stream.Header("Content-Type"), "text/event-stream");
  EXPECT_THAT(stream.body, HasSubstr("data: {"));
  EXPECT_THAT(stream.body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(mock->calls("/api/chat"), 1);
  ClientResponse whole = Post("/v1/chat/completions", kChat, {{"x-mock-tokens", kShort}});
  EXPECT_THAT(whole.body, HasSubstr(R"("content":"Mock answer to: hi.")"));
}

TEST_F(GatewayTest, UsageReachesStreamCallersOnlyWhenTheyAskForIt) {
  auto mock = StartMock();
  StartKind("openai", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  ClientResponse plain = Post("/v1/chat/completions", kChatStream);
  EXPECT_THAT(plain.body, Not(HasSubstr(R"("usage")")));
  ClientResponse asked = Post(
      "/v1/chat/completions",
      R"({"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_THAT(asked.body, HasSubstr(R"("usage")"));
}

TEST_F(GatewayTest, MalformedStreamEventsAreDroppedNotForwarded) {
  auto mock = StartMock();
  StartKind("openai", absl::StrCat("http://127.0.0.1:", mock->port(), "/v1"));
  ClientResponse r = Post("/v1/chat/completions", kChatStream, {{"x-mock-malformed-chunk", "2"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  for (absl::string_view line : absl::StrSplit(r.body, '\n')) {
    if (!absl::StartsWith(line, "data: {")) continue;
    EXPECT_TRUE(absl::EndsWith(line, "}")) << line;
  }
}

TEST_F(GatewayTest, ALateFirstTokenMovesToTheNextCandidateBeforeAnythingReachedTheCaller) {
  MockKnobs slow;
  slow.ttft = absl::Seconds(3);
  auto primary = StartMock(slow);
  auto backup = StartMock();
  StartKind("openai", absl::StrCat("http://127.0.0.1:", primary->port(), "/v1"),
            "{first_byte: 5s, first_token: 300ms}", backup->port());
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
}

class HedgingTest : public GatewayTest {
 protected:
  // Route "chat" over primary@p1 then backup@p2, hedged after `after`.
  void StartHedged(int primary_port, int backup_port, const std::string& after) {
    Serve(
        absl::StrCat("providers:\n"
                     "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:",
                     primary_port,
                     "/v1\", timeouts: {first_byte: 10s, first_token: 10s}}\n"
                     "  - {name: p2, kind: openai, base_url: \"http://127.0.0.1:",
                     backup_port,
                     "/v1\", timeouts: {first_byte: 10s, first_token: 10s}}\n"
                     "models:\n"
                     "  - {name: primary, provider: p1, upstream_model: mock-1, "
                     "capabilities: [chat]}\n"
                     "  - {name: backup, provider: p2, upstream_model: mock-1, "
                     "capabilities: [chat]}\n"
                     "routes:\n"
                     "  - {name: chat, candidates: [primary, backup]",
                     after.empty() ? "" : absl::StrCat(", hedge: {after: ", after, "}"), "}\n"));
  }
};

TEST_F(HedgingTest, ALateFirstTokenStartsAHedgeThatWinsAndTheFirstIsCancelled) {
  MockKnobs slow;
  slow.late_first_token = absl::Seconds(5);
  auto primary = StartMock(slow);
  auto backup = StartMock();
  StartHedged(primary->port(), backup->port(), "200ms");
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // Not the primary's 5 s.
  EXPECT_EQ(primary->calls("/v1/chat/completions"), 1);
  EXPECT_EQ(backup->calls("/v1/chat/completions"), 1);
  // The loser was cancelled, not left running, and not blamed for losing.
  for (int i = 0; i < 200 && Reading("primary@p1").in_flight != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(Reading("primary@p1").in_flight, 0);
  EXPECT_EQ(Reading("primary@p1").circuit, CircuitState::kClosed);
  EXPECT_EQ(Reading("backup@p2").in_flight, 0);
}

TEST_F(HedgingTest, TheFirstAttemptStillWinsWhenItsContentComesFirst) {
  MockKnobs late;
  late.late_first_token = absl::Milliseconds(400);
  auto primary = StartMock(late);
  MockKnobs later;
  later.late_first_token = absl::Seconds(5);
  auto backup = StartMock(later);
  StartHedged(primary->port(), backup->port(), "100ms");
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));     // The hedge's 5 s were not waited for.
  EXPECT_EQ(backup->calls("/v1/chat/completions"), 1);  // The hedge did start.
  for (int i = 0; i < 200 && Reading("backup@p2").in_flight != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(Reading("backup@p2").in_flight, 0);
}

TEST_F(HedgingTest, NonStreamingAnswersAreHedgedToo) {
  MockKnobs slow;
  slow.latency = absl::Seconds(5);
  auto primary = StartMock(slow);
  auto backup = StartMock();
  StartHedged(primary->port(), backup->port(), "150ms");
  const absl::Time start = absl::Now();
  ClientResponse r = Post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(HedgingTest, AFailingHedgeLeavesTheFirstAttemptToAnswer) {
  MockKnobs late;
  late.late_first_token = absl::Milliseconds(500);
  auto primary = StartMock(late);
  MockKnobs broken;
  broken.status = 500;
  auto backup = StartMock(broken);
  StartHedged(primary->port(), backup->port(), "100ms");
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
}

TEST_F(HedgingTest, WithoutHedgeASlowFirstTokenIsWaitedFor) {
  MockKnobs late;
  late.late_first_token = absl::Milliseconds(400);
  auto primary = StartMock(late);
  auto backup = StartMock();
  StartHedged(primary->port(), backup->port(), "");
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_EQ(backup->calls("/v1/chat/completions"), 0);
}

// The text of every content delta in an OpenAI SSE body, joined.
std::string StreamedText(const std::string& sse) {
  std::string text;
  for (absl::string_view line : absl::StrSplit(sse, '\n')) {
    if (!absl::ConsumePrefix(&line, "data: ") || line == "[DONE]") continue;
    size_t at = line.find(R"("content":")");
    if (at == absl::string_view::npos) continue;
    at += 11;
    size_t end = line.find('"', at);
    absl::string_view piece = line.substr(at, end - at);
    text.append(piece.data(), piece.size());
  }
  return text;
}

class ContinueOnCutTest : public GatewayTest {
 protected:
  void StartPair(int primary_port, int backup_port) {
    const std::string yaml = absl::StrCat(
        "providers:\n"
        "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:",
        primary_port,
        "/v1\"}\n"
        "  - {name: p2, kind: openai, base_url: \"http://127.0.0.1:",
        backup_port,
        "/v1\"}\n"
        "models:\n"
        "  - {name: primary, provider: p1, upstream_model: mock-1, capabilities: [chat]}\n"
        "  - {name: backup, provider: p2, upstream_model: mock-1, capabilities: [chat, prefill]}\n"
        "routes:\n"
        "  - {name: chat, candidates: [primary, backup], fallback: {continue_on_cut: true}}\n");
    Serve(yaml);
  }
};

TEST_F(ContinueOnCutTest, ACutStreamIsContinuedOnAPrefillCapableCandidate) {
  MockKnobs cutting;
  cutting.cut_after = 2;
  auto primary = StartMock(cutting);
  auto backup = StartMock();
  StartPair(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChatStream, {{"x-mock-tokens", "8"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_THAT(r.body, Not(HasSubstr("upstream_error")));
  EXPECT_EQ(StreamedText(r.body), "Mock answer to: hi. Mock answer to: hi.");
  EXPECT_EQ(backup->calls("/v1/chat/completions"), 1);
}

TEST_F(ContinueOnCutTest, ARefusedContinuationEndsWithAnErrorNamingTheOriginalCut) {
  MockKnobs cutting;
  cutting.cut_after = 2;
  auto primary = StartMock(cutting);
  MockKnobs refusing;
  refusing.refuse_prefill = true;
  auto backup = StartMock(refusing);
  StartPair(primary->port(), backup->port());
  ClientResponse r = Post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("the upstream stream from primary@p1 broke"));
  EXPECT_THAT(r.body, HasSubstr("continuing on backup@p2 failed: answered 400"));
  EXPECT_THAT(r.body, Not(HasSubstr("[DONE]")));
}

}  // namespace
}  // namespace flowork::router
