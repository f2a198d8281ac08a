// flowork-router in front of flowork-mockllm processes on loopback, called as
// an OpenAI client would.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::HttpCall;
using ::flowork::testing::ServerProcess;
using ::flowork::testing::StartOrAbort;
using ::testing::HasSubstr;

// A router over a failing primary mock and a healthy backup mock.
class GatewayProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_.emplace(
        StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--status", "503"}));
    backup_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--chunks", "3"}));
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(dir + "/router.yaml",
                       absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
auth: {mode: none}
providers:
  - {name: flaky, kind: mock, base_url: "http://127.0.0.1:)yaml",
                                    primary_->http_port(), R"yaml(/v1", zone: local}
  - {name: steady, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                    backup_->http_port(), R"yaml(/v1", zone: local}
models:
  - {name: m1, provider: flaky, upstream_model: mock-1, capabilities: [chat]}
  - {name: m2, provider: steady, upstream_model: mock-1, capabilities: [chat]}
routes:
  - {name: chat, candidates: [m1, m2], retry: {same_endpoint: 1, backoff: 10ms}}
)yaml"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
  }

  std::optional<ServerProcess> primary_;
  std::optional<ServerProcess> backup_;
  std::optional<ServerProcess> router_;
};

TEST_F(GatewayProcessTest, ChatFailsOverToTheBackupAndNamesIt) {
  auto r =
      HttpCall(router_->http_port(), "POST", "/v1/chat/completions",
               R"({"model":"chat","temperature":0,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body << router_->log();
  EXPECT_EQ(r->Header("x-flowork-endpoint"), "m2@steady");
  EXPECT_THAT(r->body, HasSubstr("Mock answer to: hi."));
  EXPECT_THAT(r->body, HasSubstr(R"("usage")"));
}

TEST_F(GatewayProcessTest, StreamsServerSentEventsEndingInDone) {
  auto r =
      HttpCall(router_->http_port(), "POST", "/v1/chat/completions",
               R"({"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Type"), "text/event-stream");
  EXPECT_THAT(r->body, HasSubstr("chat.completion.chunk"));
  EXPECT_THAT(r->body, HasSubstr("data: [DONE]"));
}

TEST_F(GatewayProcessTest, ListsModelsAndRejectsUnknownOnes) {
  auto models = HttpCall(router_->http_port(), "GET", "/v1/models");
  EXPECT_THAT(models->body, HasSubstr(R"("id":"chat")"));
  auto unknown = HttpCall(router_->http_port(), "POST", "/v1/chat/completions",
                          R"({"model":"gpt-x","messages":[]})");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_THAT(unknown->body, HasSubstr("model_not_found"));
}

TEST_F(GatewayProcessTest, StopsCleanlyWhileServing) {
  EXPECT_EQ(router_->Stop(SIGTERM, absl::Seconds(5)).value_or(-2), 0) << router_->log();
  EXPECT_EQ(primary_->Stop(SIGTERM, absl::Seconds(5)).value_or(-2), 0);
  EXPECT_EQ(backup_->Stop(SIGTERM, absl::Seconds(5)).value_or(-2), 0);
}

}  // namespace
}  // namespace flowork
