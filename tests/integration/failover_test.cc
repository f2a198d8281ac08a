// Every failover rule of the gateway, process against process: flowork-router
// in front of two flowork-mockllm processes whose faults are set by flags.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::ClientResponse;
using ::flowork::testing::ServerProcess;
using ::flowork::testing::StartOrAbort;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kChat[] = R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})";
constexpr char kChatStream[] =
    R"({"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]})";

// What differs between the tests: the mocks' flags and the route's settings.
struct Faults {
  std::vector<std::string> primary_flags;
  std::vector<std::string> backup_flags;
  std::string primary_timeouts = "{first_byte: 5s}";
  std::string primary_extra;  // More fields of the primary's provider.
  std::string backup_capabilities = "[chat]";
  std::string retry = "{same_endpoint: 1, backoff: 10ms}";
  std::string route_extra;  // More fields of route "chat".
};

class FailoverProcessTest : public ::testing::Test {
 protected:
  void Run(const Faults& setup) {
    std::vector<std::string> primary = {"--http", "127.0.0.1:0"};
    primary.insert(primary.end(), setup.primary_flags.begin(), setup.primary_flags.end());
    std::vector<std::string> backup = {"--http", "127.0.0.1:0"};
    backup.insert(backup.end(), setup.backup_flags.begin(), setup.backup_flags.end());
    primary_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, primary));
    backup_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, backup));
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(
        dir + "/router.yaml",
        absl::StrCat("listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\n"
                     "auth: {mode: none}\n"
                     "providers:\n"
                     "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:",
                     primary_->http_port(), "/v1\", timeouts: ", setup.primary_timeouts,
                     setup.primary_extra,
                     "}\n"
                     "  - {name: p2, kind: openai, base_url: \"http://127.0.0.1:",
                     backup_->http_port(),
                     "/v1\"}\n"
                     "models:\n"
                     "  - {name: primary, provider: p1, upstream_model: mock-primary, "
                     "context_window: 8192, capabilities: [chat]}\n"
                     "  - {name: backup, provider: p2, upstream_model: mock-backup, "
                     "context_window: 128000, capabilities: ",
                     setup.backup_capabilities,
                     "}\n"
                     "routes:\n"
                     "  - {name: chat, candidates: [primary, backup], "
                     "retry: ",
                     setup.retry, setup.route_extra, "}\n"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
  }

  ClientResponse Post(const std::string& body) {
    auto r = testing::HttpCall(router_->http_port(), "POST", "/v1/chat/completions", body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ClientResponse{};
  }

  std::optional<ServerProcess> primary_;
  std::optional<ServerProcess> backup_;
  std::optional<ServerProcess> router_;
};

// The text of every content delta in an OpenAI SSE body, joined.
std::string StreamedText(const std::string& sse) {
  std::string text;
  for (absl::string_view line : absl::StrSplit(sse, '\n')) {
    if (!absl::ConsumePrefix(&line, "data: ") || line == "[DONE]") continue;
    size_t at = line.find(R"("content":")");
    if (at == absl::string_view::npos) continue;
    at += 11;
    const size_t end = line.find('"', at);
    absl::string_view piece = line.substr(at, end - at);
    text.append(piece.data(), piece.size());
  }
  return text;
}

// Rule 1: a transient failure is retried on the same endpoint first.
TEST_F(FailoverProcessTest, Rule1TransientFailureIsRetriedOnTheSameEndpoint) {
  Run({.primary_flags = {"--fail_first", "1"}});
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
}

// Rule 1: then the next candidate.
TEST_F(FailoverProcessTest, Rule1PersistentServerErrorsMoveToTheNextCandidate) {
  Run({.primary_flags = {"--status", "503"}});
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
}

// Rule 1: a Retry-After longer than max_wait cools the endpoint down.
TEST_F(FailoverProcessTest, Rule1LongRetryAfterMovesOnAtOnce) {
  Run({.primary_flags = {"--status", "429", "--retry_after", "60"}});
  const absl::Time start = absl::Now();
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// Rule 2: a silent primary is answered by the backup within first_byte + 1 s.
TEST_F(FailoverProcessTest, Rule2SilentPrimaryIsAnsweredByTheBackupWithinFirstBytePlusOneSecond) {
  Run({.primary_flags = {"--hang"}, .primary_timeouts = "{first_byte: 500ms}"});
  const absl::Time start = absl::Now();
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
}

// Rule 2: a late first token abandons the stream before anything reached the caller.
TEST_F(FailoverProcessTest, Rule2LateFirstTokenMovesOnBeforeAnythingReachedTheCaller) {
  Run({.primary_flags = {"--late_first_token_ms", "5000"},
       .primary_timeouts = "{first_byte: 5s, first_token: 300ms}"});
  const absl::Time start = absl::Now();
  ClientResponse r = Post(kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1300));
}

// Rule 3: the caller's own fault comes back as it is.
TEST_F(FailoverProcessTest, Rule3InvalidRequestIsReturnedAtOnce) {
  Run({.primary_flags = {"--status", "400"}});
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_THAT(r.body, HasSubstr(R"("error")"));
}

// Rule 3: context length may move on only to a larger window.
TEST_F(FailoverProcessTest, Rule3ContextLengthMovesToALargerWindow) {
  Run({.primary_flags = {"--status", "400", "--error_code", "context_length_exceeded"}});
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
}

// Rule 4: a cut after content is continued on a prefill-capable candidate.
TEST_F(FailoverProcessTest, Rule4ACutStreamIsContinuedOnAPrefillCandidate) {
  Run({.primary_flags = {"--cut_after", "2", "--tokens", "8"},
       .backup_flags = {"--tokens", "8"},
       .backup_capabilities = "[chat, prefill]",
       .route_extra = ", fallback: {continue_on_cut: true}"});
  ClientResponse r = Post(kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_THAT(r.body, Not(HasSubstr("upstream_error")));
  EXPECT_EQ(StreamedText(r.body), "Mock answer to: hi. Mock answer to: hi.");
}

// Rule 4: without a continuation, an error event names the cut; no [DONE].
TEST_F(FailoverProcessTest, Rule4ACutStreamWithoutContinuationEndsWithAnErrorEvent) {
  Run({.primary_flags = {"--cut_after", "2"}});
  ClientResponse r = Post(kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("the upstream stream from primary@p1 broke"));
  EXPECT_THAT(r.body, Not(HasSubstr("[DONE]")));
}

// Rule 5: a malformed event is dropped, never forwarded.
TEST_F(FailoverProcessTest, Rule5MalformedEventsAreDropped) {
  Run({.primary_flags = {"--malformed_chunk", "2"}});
  ClientResponse r = Post(kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  for (absl::string_view line : absl::StrSplit(r.body, '\n', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&line, "data: ") || line == "[DONE]") continue;
    EXPECT_TRUE(absl::StartsWith(line, "{") && absl::EndsWith(line, "}")) << line;
  }
}

// Rule 6: a hedge races a late first token; the first content wins.
TEST_F(FailoverProcessTest, Rule6AHedgeAnswersWhenTheFirstTokenIsLate) {
  Run({.primary_flags = {"--late_first_token_ms", "5000"},
       .primary_timeouts = "{first_byte: 10s, first_token: 10s}",
       .route_extra = ", hedge: {after: 200ms}"});
  const absl::Time start = absl::Now();
  ClientResponse r = Post(kChatStream);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-flowork-endpoint"), "backup@p2");
  EXPECT_THAT(r.body, HasSubstr("data: [DONE]"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

// Rule 7: the circuit opens after consecutive failures, then a recovered
// primary gets its traffic back after open_for.
TEST_F(FailoverProcessTest, Rule7CircuitOpensThenARecoveredPrimaryGetsTrafficBack) {
  Run({.primary_flags = {"--fail_first", "2"},
       .primary_extra = ", circuit: {consecutive_failures: 2, open_for: 1s}",
       .retry = "{same_endpoint: 0}"});
  EXPECT_EQ(Post(kChat).Header("x-flowork-endpoint"), "backup@p2");  // Failure 1.
  EXPECT_EQ(Post(kChat).Header("x-flowork-endpoint"), "backup@p2");  // Failure 2: open.
  // The primary would answer now, but its circuit is open: not tried.
  EXPECT_EQ(Post(kChat).Header("x-flowork-endpoint"), "backup@p2");
  absl::SleepFor(absl::Milliseconds(1200));  // open_for passes: a probe is allowed.
  EXPECT_EQ(Post(kChat).Header("x-flowork-endpoint"), "primary@p1");
  EXPECT_EQ(Post(kChat).Header("x-flowork-endpoint"), "primary@p1");
}

// Rule 8: the answer names the model that actually answered.
TEST_F(FailoverProcessTest, Rule8TheAnswerNamesTheModelThatAnswered) {
  Run({.primary_flags = {"--status", "503"}});
  ClientResponse r = Post(kChat);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(R"("model":"mock-backup")"));
}

}  // namespace
}  // namespace flowork
