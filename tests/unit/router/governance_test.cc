// The gateway's governance in one process: keys and zones, limits and
// budgets, the audit trail and metrics, in front of flowork-mockllm servers.
#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/core/config_loader.h"
#include "flowork/core/metrics.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "flowork/router/audit_log.h"
#include "flowork/router/gateway.h"
#include "flowork/router/key_ring.h"
#include "flowork/router/key_store.h"
#include "flowork/router/usage_governor.h"
#include "flowork/testing/fake_clock.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::flowork::mockllm::MockLlmServer;
using ::flowork::testing::ClientResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kChat[] = R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})";
constexpr char kChatStream[] =
    R"({"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]})";

std::unique_ptr<MockLlmServer> StartMock() {
  auto server = MockLlmServer::Create({});
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
                  .body = R"({"id":"x","object":"chat.completion","model":"m","choices":[]})"});
  }
  core::HttpRequest last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  absl::Mutex mu_;
  core::HttpRequest last_;
};

// A port nothing listens on.
int ClosedPort() {
  CapturingUpstream nobody;
  auto server = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, nobody);
  const int port = (*server)->port();
  (*server)->Shutdown(absl::ZeroDuration());
  return port;
}

std::string KeyYaml(const std::string& name, const std::string& key, const std::string& extra) {
  return absl::StrCat("  - {name: ", name, ", sha256: ", KeyRing::Sha256Hex(key), extra, "}\n");
}

// The router under test with a real audit log, an in-memory governor on a
// fake clock and a metrics registry.
class GovernanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A fresh directory per test (mkdtemp): a name made of the gtest seed and
    // the fixture's address was shared by two test processes started in the
    // same millisecond, and the second could not open the audit log.
    dir_ = testing::MakeTempDir();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(2));
    server_.reset();
    gateway_.reset();
    audit_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Serve(const std::string& yaml) {
    v1::RouterConfig config;
    absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
    ASSERT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
    auto policy = PolicyEngine::Create(config, core::Clock::Real());
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    auto client = core::HttpClient::Create({});
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
    auto audit = AuditLog::Open({.path = (dir_ / "audit.db").string()});
    ASSERT_TRUE(audit.ok()) << audit.status();
    audit_ = *std::move(audit);
    governor_ = NewInMemoryUsageGovernor(clock_);
    metrics_ = core::MetricsRegistry::Create();
    keys_ = *KeyStore::Open({}, *policy_);
    auto gateway = Gateway::Create(
        *policy_, *keys_, *client_, nullptr,
        {.usage = governor_.get(), .audit = audit_.get(), .metrics = metrics_.get()});
    ASSERT_TRUE(gateway.ok());
    gateway_ = *std::move(gateway);
    auto server = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, *gateway_);
    ASSERT_TRUE(server.ok());
    server_ = *std::move(server);
  }

  ClientResponse Post(const std::string& body, const std::string& key,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!key.empty()) headers.emplace_back("authorization", "Bearer " + key);
    auto response =
        testing::HttpCall(server_->port(), "POST", "/v1/chat/completions", body, headers);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : ClientResponse{};
  }

  // Every committed entry, oldest first.
  std::vector<v1::AuditEntry> Entries() {
    EXPECT_TRUE(audit_->Flush().ok());
    v1::QueryAuditRequest query;
    query.set_limit(1000);
    auto found = audit_->Query(query);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok()) return {};
    return {found->entries().begin(), found->entries().end()};
  }

  std::filesystem::path dir_;
  testing::FakeClock clock_;
  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<core::HttpClient> client_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<UsageGovernor> governor_;
  std::unique_ptr<core::MetricsRegistry> metrics_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<core::HttpServer> server_;
};

// "local" at `local_port`, "remote" at `remote_port`, route chat over both
// (local first), and keys: "local-only" (zones [local]) and "any".
std::string ZonesYaml(int local_port, int remote_port) {
  return absl::StrCat(
      "providers:\n"
      "  - {name: here, kind: mock, base_url: \"http://127.0.0.1:",
      local_port, "/v1\", zone: local, timeouts: {connect: 1s}}\n",
      "  - {name: cloud, kind: mock, base_url: \"http://127.0.0.1:", remote_port,
      "/v1\", zone: remote}\n",
      "models:\n"
      "  - {name: small, provider: here, capabilities: [chat]}\n"
      "  - {name: big, provider: cloud, capabilities: [chat]}\n"
      "routes:\n"
      "  - {name: chat, candidates: [small, big], retry: {same_endpoint: 0}}\n"
      "keys:\n",
      KeyYaml("local-only", "sk-local", ", tenant: acme, zones: [local]"),
      KeyYaml("any", "sk-any", ", tenant: acme"));
}

TEST_F(GovernanceTest, LocalOnlyKeyNeverReachesARemoteEndpointEvenWhenLocalsAreDown) {
  auto remote = StartMock();
  Serve(ZonesYaml(ClosedPort(), remote->port()));
  // The local endpoint is down: the key may not fail over to the remote one.
  std::string first_overhead;
  for (int i = 0; i < 8; ++i) {
    ClientResponse r = Post(kChat, "sk-local");
    EXPECT_GE(r.status, 500) << r.body;
    if (i == 0) first_overhead = r.Header("x-flowork-overhead-us");
  }
  // Once its circuit is open nothing is left for this key: 503, and why.
  ClientResponse r = Post(kChat, "sk-local");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(remote->calls(), 0);
  // The header narrows an unrestricted key the same way.
  ClientResponse narrowed = Post(kChat, "sk-any", {{"x-flowork-zone", "local"}});
  EXPECT_GE(narrowed.status, 500);
  EXPECT_EQ(remote->calls(), 0);
  // Without the restriction the remote endpoint answers.
  ClientResponse open = Post(kChat, "sk-any");
  EXPECT_EQ(open.status, 200) << open.body;
  EXPECT_EQ(remote->calls(), 1);

  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_GE(entries.size(), 11u);
  // A failure, too, audits the overhead its caller was told.
  EXPECT_EQ(entries[0].status(), 502);
  EXPECT_EQ(absl::StrCat(entries[0].overhead_us()), first_overhead);
  const v1::AuditEntry& refused = entries[8];
  EXPECT_EQ(refused.key(), "local-only");
  EXPECT_EQ(refused.status(), 503);
  EXPECT_EQ(refused.outcome(), "rejected");
  bool says_why = false;
  for (const v1::AuditCandidate& c : refused.candidates()) {
    if (c.endpoint() == "big@cloud") {
      EXPECT_FALSE(c.kept());
      says_why = absl::StrContains(c.reason(), "zone");
    }
  }
  EXPECT_TRUE(says_why) << refused.DebugString();
  for (const v1::AuditEntry& e : entries) {
    for (const v1::AuditAttempt& a : e.attempts()) {
      if (e.key() == "local-only" || absl::StrContains(e.DebugString(), "x-flowork-zone")) {
        EXPECT_NE(a.endpoint(), "big@cloud");
      }
    }
  }
}

std::string LimitsYaml(int port, const std::string& key_extra, const std::string& tenants = "") {
  return absl::StrCat(
      "providers:\n"
      "  - {name: p, kind: mock, base_url: \"http://127.0.0.1:",
      port, "/v1\", zone: local}\n",
      "models:\n"
      "  - {name: chat, provider: p, capabilities: [chat],\n"
      "     price: {input_per_mtok: 100000, output_per_mtok: 200000}}\n"
      "keys:\n",
      KeyYaml("k1", "sk-1", absl::StrCat(", tenant: acme", key_extra)),
      KeyYaml("k2", "sk-2", ", tenant: acme"), tenants);
}

TEST_F(GovernanceTest, RateLimitAnswers429WithRetryAfterAndRecovers) {
  auto mock = StartMock();
  Serve(LimitsYaml(mock->port(), ", limits: {rpm: 2}"));
  EXPECT_EQ(Post(kChat, "sk-1").status, 200);
  EXPECT_EQ(Post(kChat, "sk-1").status, 200);
  ClientResponse limited = Post(kChat, "sk-1");
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_THAT(limited.body, HasSubstr("requests per minute"));
  int64_t retry_after = 0;
  ASSERT_TRUE(absl::SimpleAtoi(limited.Header("Retry-After"), &retry_after)) << limited.body;
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 60);
  // Another key of the tenant is not limited by k1's limit.
  EXPECT_EQ(Post(kChat, "sk-2").status, 200);
  EXPECT_EQ(mock->calls(), 3);
  clock_.Advance(absl::Seconds(retry_after));
  EXPECT_EQ(Post(kChat, "sk-1").status, 200);
  EXPECT_THAT(metrics_->TextExposition(), HasSubstr("flowork_router_limiter_rejections_total"));
}

TEST_F(GovernanceTest, TenantLimitIsSharedByItsKeys) {
  auto mock = StartMock();
  Serve(LimitsYaml(mock->port(), "", "tenants:\n  - {name: acme, limits: {rpm: 2}}\n"));
  EXPECT_EQ(Post(kChat, "sk-1").status, 200);
  EXPECT_EQ(Post(kChat, "sk-2").status, 200);
  ClientResponse limited = Post(kChat, "sk-1");
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_THAT(limited.body, HasSubstr("acme"));
}

TEST_F(GovernanceTest, BudgetStopsSpendingAndCountsStreams) {
  auto mock = StartMock();
  // Prices of $0.1 and $0.2 per token: a handful of requests spend $1.
  Serve(LimitsYaml(mock->port(), ", budget: {usd_per_day: 1}"));
  int streamed_ok = 0;
  ClientResponse last;
  for (int i = 0; i < 50; ++i) {
    last = Post(kChatStream, "sk-1");
    if (last.status != 200) break;
    ++streamed_ok;
  }
  EXPECT_EQ(last.status, 429) << "streams were never counted against the budget";
  EXPECT_GE(streamed_ok, 1);
  EXPECT_THAT(last.body, HasSubstr("budget"));
  const int64_t calls = mock->calls();
  EXPECT_EQ(Post(kChat, "sk-1").status, 429);
  EXPECT_EQ(mock->calls(), calls);  // Nothing more was spent upstream.
  // The streaming entries carry their tokens and cost.
  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_FALSE(entries.empty());
  EXPECT_TRUE(entries.front().stream());
  EXPECT_GT(entries.front().completion_tokens(), 0);
  EXPECT_GT(entries.front().cost_usd(), 0);
  // The next UTC day has a fresh budget.
  clock_.Advance(absl::Hours(24));
  EXPECT_EQ(Post(kChat, "sk-1").status, 200);
}

TEST_F(GovernanceTest, AuditsSuccessFailoverAndRejection) {
  auto backup = StartMock();
  Serve(ZonesYaml(ClosedPort(), backup->port()));
  ClientResponse failover = Post(kChat, "sk-any", {{"x-request-id", "req-failover"}});
  ASSERT_EQ(failover.status, 200) << failover.body;
  ClientResponse refused = Post(kChat, "sk-wrong", {{"x-request-id", "req-refused"}});
  ASSERT_EQ(refused.status, 401);

  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_EQ(entries.size(), 2u);
  const v1::AuditEntry& ok = entries[0];
  EXPECT_EQ(ok.request_id(), "req-failover");
  EXPECT_EQ(ok.outcome(), "ok");
  EXPECT_EQ(ok.status(), 200);
  EXPECT_EQ(ok.key(), "any");
  EXPECT_EQ(ok.tenant(), "acme");
  EXPECT_EQ(ok.api(), "openai.chat");
  EXPECT_EQ(ok.model(), "chat");
  EXPECT_EQ(ok.target(), "chat");
  EXPECT_EQ(ok.endpoint(), "big@cloud");
  EXPECT_EQ(ok.candidates_size(), 2);
  ASSERT_EQ(ok.attempts_size(), 2);
  EXPECT_EQ(ok.attempts(0).endpoint(), "small@here");
  EXPECT_EQ(ok.attempts(0).error_class(), "connect");
  EXPECT_EQ(ok.attempts(1).endpoint(), "big@cloud");
  EXPECT_EQ(ok.attempts(1).status(), 200);
  EXPECT_EQ(ok.attempts(1).error_class(), "");
  EXPECT_GT(ok.prompt_tokens(), 0);
  EXPECT_GT(ok.duration_us(), 0);
  // The overhead audited is the one the caller was told.
  EXPECT_EQ(absl::StrCat(ok.overhead_us()), failover.Header("x-flowork-overhead-us"));
  const v1::AuditEntry& rejected = entries[1];
  EXPECT_EQ(rejected.request_id(), "req-refused");
  EXPECT_EQ(rejected.outcome(), "rejected");
  EXPECT_EQ(rejected.status(), 401);
  EXPECT_EQ(rejected.attempts_size(), 0);
  auto verified = audit_->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->ok()) << verified->reason();
}

// An upstream that answers every request 503 and counts them.
class UnavailableUpstream final : public core::HttpHandler {
 public:
  void Handle(core::HttpRequest, std::unique_ptr<core::HttpResponseWriter> writer) override {
    requests_.fetch_add(1);
    writer->Send({.status = 503,
                  .headers = {{"Content-Type", "application/json"}},
                  .body = R"({"error":{"message":"busy","type":"server_error"}})"});
  }
  int requests() const { return requests_.load(); }

 private:
  std::atomic<int> requests_{0};
};

// A request waiting out a retry's backoff when the router stops is audited
// as stopped by the router, not as left by its caller.
TEST_F(GovernanceTest, ARetryPendingWhenTheRouterStopsIsAuditedAsStoppedByTheRouter) {
  UnavailableUpstream busy;
  auto upstream = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, busy);
  ASSERT_TRUE(upstream.ok());
  Serve(
      absl::StrCat("providers:\n"
                   "  - {name: here, kind: mock, base_url: \"http://127.0.0.1:",
                   (*upstream)->port(), "/v1\", zone: local}\n",
                   "models:\n"
                   "  - {name: small, provider: here, capabilities: [chat]}\n"
                   "routes:\n"
                   "  - {name: chat, candidates: [small],"
                   " retry: {same_endpoint: 1, backoff: 60s, max_wait: 5s}}\n"
                   "auth: {mode: none}\n"));
  std::thread caller([&] {
    // Cut when the router stops: no answer to check.
    (void)testing::HttpCall(server_->port(), "POST", "/v1/chat/completions", kChat,
                            {{"x-request-id", "req-stopped"}});
  });
  for (int i = 0; i < 1000 && busy.requests() == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(busy.requests(), 1);
  absl::SleepFor(absl::Milliseconds(50));  // The 503 reached the router; the retry waits.
  server_->Shutdown(absl::ZeroDuration());
  caller.join();
  server_.reset();
  gateway_.reset();  // Drops the waiting retry.
  EXPECT_EQ(busy.requests(), 1);

  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].request_id(), "req-stopped");
  EXPECT_EQ(entries[0].outcome(), "cancelled");
  EXPECT_EQ(entries[0].status(), 503);
  EXPECT_THAT(entries[0].error(), HasSubstr("the router stopped"));
  ASSERT_EQ(entries[0].attempts_size(), 1);
  EXPECT_EQ(entries[0].attempts(0).status(), 503);
}

TEST_F(GovernanceTest, PassesTraceparentUpstreamAndAuditsItsTraceId) {
  CapturingUpstream capture;
  auto upstream = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, capture);
  ASSERT_TRUE(upstream.ok());
  Serve(LimitsYaml((*upstream)->port(), ""));
  const std::string traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  ClientResponse r = Post(kChat, "sk-1", {{"traceparent", traceparent}});
  EXPECT_EQ(r.status, 200) << r.body;
  const core::HttpRequest first = capture.last();
  const std::string* seen = first.FindHeader("traceparent");
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(*seen, traceparent);
  // A malformed one is neither passed on nor audited.
  EXPECT_EQ(Post(kChat, "sk-1", {{"traceparent", "00-zz-bad-01"}}).status, 200);
  const core::HttpRequest second = capture.last();
  EXPECT_EQ(second.FindHeader("traceparent"), nullptr);
  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(entries[1].trace_id(), "");
  (*upstream)->Shutdown(absl::ZeroDuration());
}

TEST_F(GovernanceTest, MetricsCountRequestsTokensAndCost) {
  auto mock = StartMock();
  Serve(LimitsYaml(mock->port(), ""));
  ASSERT_EQ(Post(kChatStream, "sk-1").status, 200);
  ASSERT_EQ(Post(kChat, "sk-1").status, 200);
  const std::string text = metrics_->TextExposition();
  EXPECT_THAT(text, HasSubstr("flowork_router_requests_total{code=\"200\",endpoint=\"chat@p\","
                              "model=\"chat\"} 2"));
  EXPECT_THAT(text, HasSubstr("flowork_router_tokens_total"));
  EXPECT_THAT(text, HasSubstr("flowork_router_cost_usd_total"));
  EXPECT_THAT(text, HasSubstr("flowork_router_ttft_seconds_count{endpoint=\"chat@p\","
                              "model=\"chat\"} 1"));
  EXPECT_THAT(text, HasSubstr("flowork_router_circuit_state{endpoint=\"chat@p\"} 0"));
  EXPECT_THAT(text, HasSubstr("flowork_router_audit_queue_depth"));
}

TEST_F(GovernanceTest, MetricsNeverLabelAModelTheConfigDoesNotName) {
  auto mock = StartMock();
  Serve(LimitsYaml(mock->port(), ""));
  for (const char* model : {"made-up-1", "made-up-2"}) {
    const std::string body = absl::StrCat(R"({"model":")", model, R"(","messages":[]})");
    ASSERT_EQ(Post(body, "sk-1").status, 404);
  }
  const std::string text = metrics_->TextExposition();
  EXPECT_THAT(text, Not(HasSubstr("made-up")));
  EXPECT_THAT(text,
              HasSubstr(R"(flowork_router_requests_total{code="404",endpoint="",model=""} 2)"));
}

TEST_F(GovernanceTest, CapturesRedactedBodiesOnlyWhenTurnedOn) {
  auto mock = StartMock();
  const std::string body =
      R"({"model":"chat","messages":[{"role":"user","content":"hi"}],"user":{"password":"hunter2"}})";
  Serve(LimitsYaml(mock->port(), ""));
  ASSERT_EQ(Post(body, "sk-1").status, 200);
  std::vector<v1::AuditEntry> entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].request_body(), "");
  EXPECT_EQ(entries[0].response_body(), "");

  server_->Shutdown(absl::Seconds(1));
  TearDown();
  SetUp();
  Serve(LimitsYaml(mock->port(), "") + "audit: {capture_bodies: true}\n");
  ASSERT_EQ(Post(body, "sk-1").status, 200);
  entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_THAT(entries[0].request_body(), HasSubstr("[REDACTED]"));
  EXPECT_THAT(entries[0].request_body(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(entries[0].response_body(), HasSubstr("Mock answer to: hi."));
}

}  // namespace
}  // namespace flowork::router
